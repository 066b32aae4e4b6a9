"""The semantic point cloud's ``sensor_msgs/PointCloud2`` layout, its bytes, and a reader written from the spec.

Layout (little-endian, unorganised: ``height`` 1, ``width`` N, ``is_dense`` true since invalid points are
left out):

=========== ====== ======== ================================================================
field       offset datatype meaning
=========== ====== ======== ================================================================
x, y, z     0 4 8  FLOAT32  metres in the depth image's optical frame (x right, y down, z forward)
confidence  12     FLOAT32  the pixel's max class score
label       16     UINT16   class id of the legend (0 = background, class i = i + 1)
rgb         20     FLOAT32  only with colour: 0x00RRGGBB packed into the float's 4 bytes (PCL)
=========== ====== ======== ================================================================

``point_step`` is 20 (2 bytes of padding after ``label``, so every float stays 4-byte aligned) or 24 with
``rgb``; ``row_step`` = ``point_step * width``. No sensor_msgs_py needed: a numpy structured dtype with
these offsets is the message's ``data``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

# sensor_msgs/PointField datatypes
INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64 = range(1, 9)
_NUMPY = {INT8: 'i1', UINT8: 'u1', INT16: 'i2', UINT16: 'u2', INT32: 'i4', UINT32: 'u4', FLOAT32: 'f4',
          FLOAT64: 'f8'}


@dataclass(frozen=True)
class FieldSpec:
    """One ``sensor_msgs/PointField``."""

    name: str
    offset: int
    datatype: int
    count: int = 1


FIELDS: Sequence[FieldSpec] = (FieldSpec('x', 0, FLOAT32), FieldSpec('y', 4, FLOAT32), FieldSpec('z', 8, FLOAT32),
                               FieldSpec('confidence', 12, FLOAT32), FieldSpec('label', 16, UINT16))
RGB_FIELD = FieldSpec('rgb', 20, FLOAT32)
POINT_STEP = 20
POINT_STEP_RGB = 24


@dataclass
class CloudData:
    """Everything a PointCloud2 message needs besides its header."""

    fields: List[FieldSpec]
    point_step: int
    width: int
    data: np.ndarray  # uint8 [width * point_step]
    height: int = 1
    is_dense: bool = True
    is_bigendian: bool = False

    @property
    def row_step(self) -> int:
        return self.point_step * self.width


def _dtype(with_rgb: bool) -> np.dtype:
    fields = list(FIELDS) + ([RGB_FIELD] if with_rgb else [])
    return np.dtype({'names': [f.name for f in fields], 'formats': ['<' + _NUMPY[f.datatype] for f in fields],
                     'offsets': [f.offset for f in fields],
                     'itemsize': POINT_STEP_RGB if with_rgb else POINT_STEP})


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """uint8 [N, 3] -> float32 [N] whose bytes are 0x00RRGGBB (the PCL/RViz ``rgb`` convention)."""
    c = np.asarray(rgb, dtype=np.uint32)
    return ((c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]).astype('<u4').view('<f4')


def pack_cloud(xyz, labels: np.ndarray, confidence: np.ndarray, rgb: Optional[np.ndarray] = None) -> CloudData:
    """The bytes of an unorganised cloud of N points.

    ``xyz``: float32 [N, 3], or the three columns (x, y, z); ``rgb``: uint8 [N, 3], or None for no colour field.
    """
    x, y, z = (xyz[:, 0], xyz[:, 1], xyz[:, 2]) if isinstance(xyz, np.ndarray) else xyz
    n = int(x.shape[0])
    if labels.shape[0] != n or confidence.shape[0] != n or (rgb is not None and rgb.shape[0] != n):
        raise ValueError('xyz, labels, confidence (and rgb) must have one row per point')
    if n and int(labels.max()) > np.iinfo(np.uint16).max:
        raise ValueError('label ids above 65535 do not fit the uint16 label field')
    dtype = _dtype(rgb is not None)
    points = np.zeros(n, dtype=dtype)  # zeros: the padding bytes are deterministic
    points['x'] = x
    points['y'] = y
    points['z'] = z
    points['confidence'] = confidence
    points['label'] = labels
    if rgb is not None:
        points['rgb'] = pack_rgb(rgb)
    fields = list(FIELDS) + ([RGB_FIELD] if rgb is not None else [])
    return CloudData(fields, dtype.itemsize, n, points.view(np.uint8).reshape(-1))


def read_cloud(fields: Sequence[object], point_step: int, data: bytes, width: int, height: int = 1,
               is_bigendian: bool = False) -> Dict[str, np.ndarray]:
    """Field name -> array of a PointCloud2 by its own field table (any layout, not only ours).

    ``fields``: objects with ``name``, ``offset``, ``datatype``, ``count`` (PointField or :class:`FieldSpec`).
    A field with ``count`` > 1 comes back as [N, count]. Rows are ``point_step`` bytes each, ``width *
    height`` of them (``row_step`` padding is not supported: no known driver writes it for clouds).
    """
    order = '>' if is_bigendian else '<'
    raw = np.frombuffer(bytes(data), dtype=np.uint8)
    n = int(width) * int(height)
    if raw.size < n * point_step:
        raise ValueError(f'cloud data has {raw.size} bytes, {n} points of {point_step} need {n * point_step}')
    rows = raw[:n * point_step].reshape(n, point_step)
    out: Dict[str, np.ndarray] = {}
    for f in fields:
        dt = np.dtype(order + _NUMPY[int(f.datatype)])
        count = max(1, int(f.count))
        end = int(f.offset) + dt.itemsize * count
        if end > point_step:
            raise ValueError(f'field {f.name} ends at byte {end}, beyond point_step {point_step}')
        values = np.ascontiguousarray(rows[:, int(f.offset):end]).view(dt)
        out[str(f.name)] = (values.reshape(n) if count == 1 else values.reshape(n, count)).astype(dt.newbyteorder('='))
    return out


def unpack_rgb(rgb_field: np.ndarray) -> np.ndarray:
    """float32 [N] packed 0x00RRGGBB -> uint8 [N, 3]."""
    u = np.ascontiguousarray(rgb_field, dtype='<f4').view('<u4')
    return np.stack([(u >> 16) & 255, (u >> 8) & 255, u & 255], axis=1).astype(np.uint8)

