"""rosbag2 reading and writing with the pure-Python ``rosbags`` library (no ROS install needed).

* :func:`make_typestore`: the ROS 2 standard types plus ``talk2dino_ros`` (from the package's
  ``msg/*.msg``) and ``vision_msgs/LabelInfo`` + ``VisionClass``, so that bags written here carry the
  same type names, definitions and RIHS01 hashes as the live node's topics.
* :func:`open_bag`, :func:`image_connections`: open a bag (a rosbag2 folder, or a single ``.db3`` /
  ``.mcap`` file) and find an image topic, with errors that list what the bag does hold.
* :func:`deserialize`: CDR bytes -> message, or :class:`BadMessageError` with the reason when the bytes
  are not a valid message of their type (a bag with one corrupt message is still read to the end).
* :func:`decode_image`: a ``sensor_msgs/Image`` (any encoding of the node) or ``CompressedImage`` message
  from the bag -> its header and an RGB uint8 array, through the node's own converter.
* builders for the messages written back: :func:`image_msg`, :func:`class_info_msg`,
  :func:`label_info_msg`, :func:`header_msg`.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from talk2dino_ros.errors import Talk2DinoError
from talk2dino_ros.model.types import BACKGROUND

IMAGE_TYPE = 'sensor_msgs/msg/Image'
COMPRESSED_TYPE = 'sensor_msgs/msg/CompressedImage'
CLASS_INFO_TYPE = 'talk2dino_ros/msg/ClassInfo'
LABEL_INFO_TYPE = 'vision_msgs/msg/LabelInfo'
STORAGES = ('sqlite3', 'mcap')

POINT_CLOUD_TYPE = 'sensor_msgs/msg/PointCloud2'
CAMERA_INFO_TYPE = 'sensor_msgs/msg/CameraInfo'
DETECTION2D_ARRAY_TYPE = 'vision_msgs/msg/Detection2DArray'
DETECTION3D_ARRAY_TYPE = 'vision_msgs/msg/Detection3DArray'

# vision_msgs (ros-perception/vision_msgs 4.x) field lists: only the fields matter for the type hash,
# so the definitions are kept here instead of depending on a package that pip cannot install.
_VISION_MSGS = {
    'vision_msgs/msg/VisionClass': 'uint16 class_id\nstring class_name\n',
    'vision_msgs/msg/LabelInfo': ('std_msgs/Header header\nvision_msgs/VisionClass[] class_map\n'
                                  'float32 threshold\n'),
}


class BagError(Talk2DinoError):
    """A bag that cannot be read or written as asked (missing topic, wrong type, bad path...)."""


class BadMessageError(BagError):
    """One message whose bytes are not valid CDR of its type: skipped and reported, never fatal."""


# ------------------------------------------------------------------------------------------ types
def msg_dir() -> Path:
    """The folder with talk2dino_ros' ``.msg`` files (source tree, pip install or colcon install)."""
    here = Path(__file__).resolve().parent
    candidates = [here.parent / 'msg', Path(sys.prefix) / 'share' / 'talk2dino_ros' / 'msg']
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / 'share' / 'talk2dino_ros' / 'msg')
    for folder in candidates:
        if (folder / 'ClassInfo.msg').is_file():
            return folder
    raise BagError('cannot find talk2dino_ros message definitions (ClassInfo.msg); looked in '
                   + ', '.join(str(c) for c in candidates))


_TYPESTORE = None


def make_typestore():
    """ROS 2 Kilted standard types + talk2dino_ros + vision_msgs/LabelInfo (built once, cached)."""
    global _TYPESTORE
    if _TYPESTORE is None:
        from rosbags.typesys import Stores, get_types_from_msg, get_typestore

        store = get_typestore(Stores.ROS2_KILTED)
        types: Dict[str, Any] = {}
        for path in sorted(msg_dir().glob('*.msg')):
            types.update(get_types_from_msg(path.read_text(encoding='utf-8'),
                                            f'talk2dino_ros/msg/{path.stem}'))
        from talk2dino_ros.spatial.messages import VISION_MSGS_DEFINITIONS

        for name, text in {**_VISION_MSGS, **VISION_MSGS_DEFINITIONS}.items():
            types.update(get_types_from_msg(text, name))
        store.register(types)
        _TYPESTORE = store
    return _TYPESTORE


# ------------------------------------------------------------------------------------------ reading
def open_bag(path: os.PathLike | str):
    """An open ``rosbags`` Reader; :class:`BagError` naming the path when it is not a readable bag."""
    from rosbags.rosbag2 import Reader

    p = Path(path).expanduser()
    if not p.exists():
        raise BagError(f'bag {p} does not exist')
    try:
        reader = Reader(p)
        reader.open()
    except BagError:
        raise
    except Exception as exc:  # rosbags raises ReaderError, yaml and sqlite errors, KeyError...
        raise BagError(f'cannot read bag {p}: {type(exc).__name__}: {_first_line(exc)}') from None
    return reader


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def storage_of(reader) -> str:
    """'mcap' or 'sqlite3': the storage plugin of an open reader."""
    # a rosbag2 folder holds one storage reader per file; a bare .mcap/.db3 file is its own storage
    storages = getattr(reader.storage, 'storages', None) or [reader.storage]
    return 'mcap' if 'mcap' in type(storages[0]).__name__.lower() else 'sqlite3'


def describe_topics(reader) -> str:
    """'/a (sensor_msgs/msg/Image, 20 msgs), /b (...)' for error messages."""
    topics = reader.topics
    if not topics:
        return '(none: the bag is empty)'
    return ', '.join(f'{name} ({info.msgtype}, {info.msgcount} msgs)' for name, info in sorted(topics.items()))


def image_connections(reader, topic: str) -> List[Any]:
    """Connections of ``topic``; :class:`BagError` listing the bag's topics when it is missing or not
    an image topic."""
    conns = [c for c in reader.connections if c.topic == topic]
    if not conns:
        raise BagError(f'topic {topic!r} is not in bag {reader.path}; topics present: {describe_topics(reader)}')
    bad = sorted({c.msgtype for c in conns if c.msgtype not in (IMAGE_TYPE, COMPRESSED_TYPE)})
    if bad:
        raise BagError(f'topic {topic!r} in bag {reader.path} has type {", ".join(bad)}; expected '
                       f'{IMAGE_TYPE} or {COMPRESSED_TYPE}')
    return conns


def deserialize(raw: bytes, msgtype: str) -> Any:
    """The message in ``raw``; :class:`BadMessageError` saying why when it is not valid CDR of ``msgtype``."""
    try:
        return make_typestore().deserialize_cdr(raw, msgtype)
    except Exception as exc:  # rosbags' decoder fails on bad bytes with struct, index, unicode, value errors...
        raise BadMessageError(f'not a valid {msgtype} message ({type(exc).__name__}: {_first_line(exc)})') from None


def decode_image(raw: bytes, msgtype: str, max_pixels: Optional[int] = None) -> Tuple[Any, np.ndarray]:
    """(header, RGB uint8 [H, W, 3]) of a serialized Image or CompressedImage.

    Frames are measured before decoding with the node's limits (``max_pixels``, default the node's
    ``max_input_pixels`` default; sides up to what the engine takes), so a decompression bomb in a bag is
    refused like one on a topic. Raises ``ImageConversionError`` (a Talk2DinoError) for an unsupported
    encoding, a broken or a too-large image.
    """
    from talk2dino_ros.ros.image_conversion import (DEFAULT_MAX_INPUT_PIXELS, MAX_INPUT_SIDE, decode_compressed,
                                                    to_rgb8)

    limits = dict(max_pixels=DEFAULT_MAX_INPUT_PIXELS if max_pixels is None else max_pixels, max_side=MAX_INPUT_SIDE)
    msg = deserialize(raw, msgtype)
    rgb = decode_compressed(msg, **limits) if msgtype == COMPRESSED_TYPE else to_rgb8(msg, **limits)
    return msg.header, rgb


def stamp_ns(header: Any) -> int:
    """A header's stamp in nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


# ------------------------------------------------------------------------------------------ building
def header_msg(sec: int, nanosec: int, frame_id: str):
    """A rosbags std_msgs/Header."""
    types = make_typestore().types
    Time = types['builtin_interfaces/msg/Time']
    return types['std_msgs/msg/Header'](stamp=Time(sec=int(sec), nanosec=int(nanosec)), frame_id=str(frame_id))


def image_msg(header: Any, pixels: np.ndarray, encoding: str):
    """A rosbags sensor_msgs/Image of ``pixels`` (dense rows, native byte order)."""
    from talk2dino_ros.ros.image_conversion import encoding_info

    dtype, channels = encoding_info(encoding)
    pixels = np.ascontiguousarray(pixels)
    if pixels.dtype != dtype:
        raise BagError(f'{encoding} needs dtype {dtype}, got {pixels.dtype}')
    if (channels == 1 and pixels.ndim != 2) or (channels > 1 and (pixels.ndim != 3 or pixels.shape[2] != channels)):
        raise BagError(f'{encoding} needs {channels} channel(s), got an array of shape {pixels.shape}')
    height, width = pixels.shape[:2]
    return make_typestore().types[IMAGE_TYPE](
        header=header, height=int(height), width=int(width), encoding=encoding,
        is_bigendian=int(sys.byteorder == 'big' and dtype.itemsize > 1),
        step=int(width * channels * dtype.itemsize), data=pixels.reshape(-1).view(np.uint8))


def class_info_msg(header: Any, version: int, method: str, names: Sequence[str], colors: np.ndarray,
                   background_threshold: float):
    """talk2dino_ros/ClassInfo exactly as the node fills it (id 0 = background, then 1..N)."""
    types = make_typestore().types
    Color = types['std_msgs/msg/ColorRGBA']
    all_names = [BACKGROUND] + list(names)
    return types[CLASS_INFO_TYPE](
        header=header, vocabulary_version=int(version), method=str(method),
        class_ids=np.arange(len(all_names), dtype=np.uint16), class_names=all_names,
        colors=[Color(r=float(c[0]) / 255.0, g=float(c[1]) / 255.0, b=float(c[2]) / 255.0, a=1.0)
                for c in colors[:len(all_names)]],
        background_threshold=float(background_threshold))


def label_info_msg(header: Any, names: Sequence[str], threshold: float):
    """vision_msgs/LabelInfo for the label image (same ids and threshold rule as the node)."""
    from talk2dino_ros.ros.label_info import label_info_threshold

    types = make_typestore().types
    VisionClass = types['vision_msgs/msg/VisionClass']
    return types[LABEL_INFO_TYPE](
        header=header,
        class_map=[VisionClass(class_id=i, class_name=n) for i, n in enumerate([BACKGROUND] + list(names))],
        threshold=label_info_threshold(threshold))


class RosbagsKit:
    """The message kit of :mod:`talk2dino_ros.spatial.messages` for rosbags' classes."""

    def make(self, type_name: str, **fields: Any) -> Any:
        return make_typestore().types[type_name](**fields)

    def byte_array(self, data: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)


def camera_info_msg(header: Any, fx: float, fy: float, cx: float, cy: float, width: int, height: int):
    """A rosbags sensor_msgs/CameraInfo of an undistorted pinhole camera."""
    types = make_typestore().types
    roi = types['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    k = np.array([fx, 0, cx, 0, fy, cy, 0, 0, 1], np.float64)
    p = np.array([fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0], np.float64)
    return types[CAMERA_INFO_TYPE](header=header, height=int(height), width=int(width), distortion_model='plumb_bob',
                                   d=np.zeros(5), k=k, r=np.eye(3).reshape(-1), p=p, binning_x=0, binning_y=0,
                                   roi=roi)


def serialize(msg: Any) -> bytes:
    """CDR bytes of a rosbags message."""
    return bytes(make_typestore().serialize_cdr(msg, msg.__msgtype__))


# ------------------------------------------------------------------------------------------ writing
def open_writer(path: os.PathLike | str, storage: str):
    """A new, open rosbag2 writer (format version 9) at ``path`` (which must not exist)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    if storage not in STORAGES:
        raise BagError(f'storage must be one of {", ".join(STORAGES)}, got {storage!r}')
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    try:
        writer = Writer(Path(path), version=9, storage_plugin=plugin)
        writer.open()
    except Exception as exc:
        raise BagError(f'cannot create bag {path}: {_first_line(exc)}') from None
    return writer


def copy_connection(writer, conn) -> Optional[Any]:
    """Add an input connection to ``writer`` unchanged (definition, hash, QoS); None when impossible
    (an old bag without a stored definition of a type this typestore does not know)."""
    ext = conn.ext
    kwargs = dict(serialization_format=getattr(ext, 'serialization_format', 'cdr'),
                  offered_qos_profiles=list(getattr(ext, 'offered_qos_profiles', []) or []))
    msgdef = getattr(conn.msgdef, 'data', '') if conn.msgdef is not None else ''
    try:
        if msgdef and conn.digest:
            return writer.add_connection(conn.topic, conn.msgtype, msgdef=msgdef, rihs01=conn.digest, **kwargs)
        store = make_typestore()
        if conn.msgtype in store.types:
            return writer.add_connection(conn.topic, conn.msgtype, typestore=store, **kwargs)
    except Exception as exc:
        raise BagError(f'cannot copy topic {conn.topic} ({conn.msgtype}): {_first_line(exc)}') from None
    return None


def add_output_connection(writer, topic: str, msgtype: str, latched: bool = False):
    """A connection for one of our outputs; ``latched``: offered as reliable + transient-local
    (so ``ros2 bag play`` republishes the legend for late subscribers, as the node does)."""
    qos = [latched_qos()] if latched else []
    return writer.add_connection(topic, msgtype, typestore=make_typestore(), offered_qos_profiles=qos)


def latched_qos():
    """rosbags' QoS record for reliable + transient-local + keep last 1."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    default = QosTime(sec=0, nsec=0)  # rosbag2 writes 0/0 for "default (infinite)"
    return Qos(history=QosHistory.KEEP_LAST, depth=1, reliability=QosReliability.RELIABLE,
               durability=QosDurability.TRANSIENT_LOCAL, deadline=default, lifespan=default,
               liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=default,
               avoid_ros_namespace_conventions=False)
