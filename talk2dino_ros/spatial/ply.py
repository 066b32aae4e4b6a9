"""PLY files of the semantic cloud (binary little-endian; MeshLab, CloudCompare and Open3D read them).

Vertex properties: ``x y z`` (float, metres), ``label`` (ushort class id), ``confidence`` (float) and, with
colour, ``red green blue`` (uchar).
"""
from __future__ import annotations

import os
from typing import Dict, Optional

import numpy as np

from talk2dino_ros.atomic_files import atomic_write_bytes

_PROPS = [('x', '<f4', 'float'), ('y', '<f4', 'float'), ('z', '<f4', 'float'), ('label', '<u2', 'ushort'),
          ('confidence', '<f4', 'float')]
_RGB = [('red', 'u1', 'uchar'), ('green', 'u1', 'uchar'), ('blue', 'u1', 'uchar')]
_PLY_TYPES = {'float': '<f4', 'float32': '<f4', 'double': '<f8', 'float64': '<f8', 'uchar': 'u1', 'uint8': 'u1',
              'char': 'i1', 'int8': 'i1', 'ushort': '<u2', 'uint16': '<u2', 'short': '<i2', 'int16': '<i2',
              'uint': '<u4', 'uint32': '<u4', 'int': '<i4', 'int32': '<i4'}


def ply_bytes(xyz: np.ndarray, labels: np.ndarray, confidence: np.ndarray, rgb: Optional[np.ndarray] = None,
              comment: str = '') -> bytes:
    """The whole file as bytes."""
    props = _PROPS + (_RGB if rgb is not None else [])
    n = int(xyz.shape[0])
    rows = np.zeros(n, dtype=[(name, dt) for name, dt, _ in props])
    rows['x'], rows['y'], rows['z'] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    rows['label'] = labels
    rows['confidence'] = confidence
    if rgb is not None:
        rows['red'], rows['green'], rows['blue'] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    lines = ['ply', 'format binary_little_endian 1.0']
    lines += [f'comment {line}' for line in comment.splitlines() if line.strip()]
    lines.append(f'element vertex {n}')
    lines += [f'property {ply} {name}' for name, _, ply in props]
    lines.append('end_header')
    return ('\n'.join(lines) + '\n').encode('ascii') + rows.tobytes()


def write_ply(path: os.PathLike | str, xyz: np.ndarray, labels: np.ndarray, confidence: np.ndarray,
              rgb: Optional[np.ndarray] = None, comment: str = '') -> None:
    """Write the cloud (atomically: a reader never sees half a file)."""
    atomic_write_bytes(path, ply_bytes(xyz, labels, confidence, rgb, comment))


def read_ply(path: os.PathLike | str) -> Dict[str, np.ndarray]:
    """Property name -> array of a binary little-endian PLY with one vertex element (for checks and tests)."""
    data = open(path, 'rb').read()
    end = data.index(b'end_header\n') + len(b'end_header\n')
    header = data[:end].decode('ascii').splitlines()
    if header[0] != 'ply' or header[1] != 'format binary_little_endian 1.0':
        raise ValueError(f'{path}: not a binary little-endian PLY')
    count = 0
    fields = []
    for line in header:
        parts = line.split()
        if parts[:2] == ['element', 'vertex']:
            count = int(parts[2])
        elif parts and parts[0] == 'property':
            fields.append((parts[2], _PLY_TYPES[parts[1]]))
    rows = np.frombuffer(data, dtype=np.dtype(fields), count=count, offset=end)
    return {name: rows[name].copy() for name, _ in fields}
