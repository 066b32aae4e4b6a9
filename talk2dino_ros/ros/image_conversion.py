"""sensor_msgs/Image and CompressedImage <-> numpy, without cv_bridge.

ROS 2's cv_bridge is not installable from pip, and the PyPI look-alikes ignore row padding, so the node
carries this small converter. It reads only the message fields (``height``, ``width``, ``encoding``,
``step``, ``is_bigendian``, ``data``), so messages from ``rosbags`` work as well as rclpy ones.

Conventions:
* ``image_to_numpy`` returns ``[H, W]`` for one channel and ``[H, W, C]`` otherwise, in native byte
  order. When no byte swap is needed the result is a zero-copy, read-only view of ``msg.data``.
* ``to_rgb8`` is what the segmenter consumes: a fresh, C-contiguous ``uint8 [H, W, 3]`` RGB array.
  16-bit inputs (mono16, rgb16, ...) keep their top 8 bits (``value >> 8``), which maps the full
  16-bit range onto 0..255 (cv_bridge divides by 256 and rounds; the two differ by at most 1).
* Messages longer than ``step * height`` are accepted (the tail is ignored); anything shorter,
  a ``step`` below ``width * pixel size``, a zero-size image or an unknown encoding raises
  :class:`ImageConversionError`, whose message names the encoding and what is wrong.
* Size limits: :func:`to_rgb8` and :func:`decode_compressed` take ``max_pixels`` / ``max_side``. A raw
  frame is measured from ``width x height``, a compressed one from its file header (PNG IHDR, JPEG SOF,
  other formats through Pillow's header reader) **before** anything is decoded, so a 200 kB PNG that
  claims 16000x16000 costs microseconds, not gigabytes. Too large raises :class:`ImageTooLargeError`.
"""
from __future__ import annotations

import array
import io
import re
import struct
import sys
import warnings
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from talk2dino_ros.contract.parameters import DEFAULT_MAX_INPUT_PIXELS, MAX_INPUT_SIDE  # noqa: F401
from talk2dino_ros.errors import Talk2DinoError


class ImageConversionError(Talk2DinoError, ValueError):
    """An image message that cannot be converted (bad encoding, size, step or data length).

    ``reason`` is a short machine-readable word for counters (``unsupported_encoding``, ``malformed``,
    ``undecodable``, ``too_large``).
    """

    def __init__(self, message: str, reason: str = 'malformed') -> None:
        super().__init__(message)
        self.reason = reason


class ImageTooLargeError(ImageConversionError):
    """A frame larger than the configured limits (refused before it is decoded)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason='too_large')




def check_input_size(width: int, height: int, max_pixels: Optional[int] = None,
                     max_side: Optional[int] = MAX_INPUT_SIDE, what: str = 'image') -> None:
    """Raise :class:`ImageTooLargeError` when ``width x height`` exceeds ``max_side`` or ``max_pixels``.

    ``None`` (or a value <= 0) disables that limit.
    """
    if max_side and max_side > 0 and max(width, height) > max_side:
        raise ImageTooLargeError(
            f'{what} of {width}x{height} refused: a side above {max_side} px is more than the engine takes')
    if max_pixels and max_pixels > 0 and width * height > max_pixels:
        raise ImageTooLargeError(
            f'{what} of {width}x{height} ({width * height / 1e6:.1f} MP) refused: above max_input_pixels '
            f'({max_pixels}, {max_pixels / 1e6:.1f} MP)')


# name -> (numpy dtype, channels) for the named encodings of sensor_msgs/image_encodings.hpp
_NAMED: Dict[str, Tuple[np.dtype, int]] = {
    'mono8': (np.dtype(np.uint8), 1),
    'mono16': (np.dtype(np.uint16), 1),
    'rgb8': (np.dtype(np.uint8), 3),
    'bgr8': (np.dtype(np.uint8), 3),
    'rgba8': (np.dtype(np.uint8), 4),
    'bgra8': (np.dtype(np.uint8), 4),
    'rgb16': (np.dtype(np.uint16), 3),
    'bgr16': (np.dtype(np.uint16), 3),
    'rgba16': (np.dtype(np.uint16), 4),
    'bgra16': (np.dtype(np.uint16), 4),
}
_GENERIC_DTYPES = {
    '8U': np.uint8, '8S': np.int8, '16U': np.uint16, '16S': np.int16,
    '32S': np.int32, '32F': np.float32, '64F': np.float64,
}
_GENERIC = re.compile(r'^(8U|8S|16U|16S|32S|32F|64F)C([1-4])$')

#: encodings :func:`to_rgb8` accepts (what a camera driver publishes for colour or grey images)
RGB8_INPUT_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16',
                        'rgb16', 'bgr16', 'rgba16', 'bgra16')


def encoding_info(encoding: str) -> Tuple[np.dtype, int]:
    """(dtype, channels) of a ROS image encoding; :class:`ImageConversionError` when unsupported."""
    if encoding in _NAMED:
        return _NAMED[encoding]
    match = _GENERIC.match(encoding)
    if match is None:
        raise ImageConversionError(
            f'unsupported image encoding {encoding!r}: expected one of '
            f'{", ".join(_NAMED)} or 8U/8S/16U/16S/32S/32F/64F C1..C4 (e.g. 32FC1)', 'unsupported_encoding')
    return np.dtype(_GENERIC_DTYPES[match.group(1)]), int(match.group(2))


def _byte_view(data: Any) -> np.ndarray:
    """uint8 view of a message's ``data`` (array.array, bytes, bytearray, memoryview or list)."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    if isinstance(data, (bytes, bytearray, memoryview, array.array)):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8)  # a plain list of ints (rare; copies)


def image_to_numpy(msg: Any) -> np.ndarray:
    """Pixels of a ``sensor_msgs/Image`` as ``[H, W]`` or ``[H, W, C]`` in native byte order.

    Honours ``step`` (row padding) and ``is_bigendian``. Returns a read-only view of ``msg.data``
    when possible; copy it before writing.
    """
    encoding = str(msg.encoding)
    dtype, channels = encoding_info(encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f'{encoding} image has zero size ({width}x{height})')
    pixel_bytes = dtype.itemsize * channels
    row_bytes = width * pixel_bytes
    if step < row_bytes:
        raise ImageConversionError(
            f'{encoding} image of width {width} needs step >= {row_bytes} bytes '
            f'({pixel_bytes} per pixel), got step {step}')
    raw = _byte_view(msg.data)
    needed = step * height
    if raw.size < needed:
        raise ImageConversionError(
            f'{encoding} image data too short: {raw.size} bytes for {width}x{height} with step '
            f'{step} (needs {needed})')
    big = bool(msg.is_bigendian)
    stored = dtype.newbyteorder('>' if big else '<') if dtype.itemsize > 1 else dtype
    # A strided view over the padded rows: no copy; numpy copes with unaligned item strides.
    pixels = np.ndarray(shape=(height, width, channels), dtype=stored, buffer=raw[:needed],
                        strides=(step, pixel_bytes, dtype.itemsize))
    if stored.isnative:
        pixels.flags.writeable = False
    else:
        pixels = pixels.astype(dtype)  # byte swap to native order (copies)
    return pixels[:, :, 0] if channels == 1 else pixels


def to_rgb8(msg: Any, max_pixels: Optional[int] = None, max_side: Optional[int] = None) -> np.ndarray:
    """A fresh C-contiguous ``uint8 [H, W, 3]`` RGB copy of an image in :data:`RGB8_INPUT_ENCODINGS`.

    ``max_pixels`` / ``max_side``: refuse (:class:`ImageTooLargeError`) larger frames before copying.
    """
    encoding = str(msg.encoding)
    if encoding not in RGB8_INPUT_ENCODINGS:
        raise ImageConversionError(
            f'cannot use a {encoding!r} image as a colour input: expected one of '
            f'{", ".join(RGB8_INPUT_ENCODINGS)}', 'unsupported_encoding')
    check_input_size(int(msg.width), int(msg.height), max_pixels, max_side, f'{encoding} image')
    pixels = image_to_numpy(msg)
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    if pixels.ndim == 2:
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if encoding.startswith('bgr'):
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    return np.ascontiguousarray(pixels[:, :, :3])


def numpy_to_image(pixels: np.ndarray, encoding: str, header: Any = None,
                   msg_factory: Optional[Callable[[], Any]] = None) -> Any:
    """A ``sensor_msgs/Image`` holding ``pixels`` (any encoding of :func:`encoding_info`).

    ``pixels`` must have the encoding's dtype and ``[H, W]`` (one channel) or ``[H, W, C]`` shape;
    written densely (``step = width * pixel size``) in native byte order. ``msg_factory`` builds the
    empty message (default: ``sensor_msgs.msg.Image``).
    """
    dtype, channels = encoding_info(encoding)
    pixels = np.asarray(pixels)
    if pixels.dtype != dtype:
        raise ImageConversionError(f'{encoding} needs dtype {dtype}, got an array of {pixels.dtype}')
    shape_ok = (pixels.ndim == 2 and channels == 1) or (pixels.ndim == 3 and pixels.shape[2] == channels)
    if not shape_ok:
        raise ImageConversionError(
            f'{encoding} needs a [H, W{"" if channels == 1 else f", {channels}"}] array, '
            f'got shape {pixels.shape}')
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ImageConversionError(f'{encoding} image has zero size ({pixels.shape[1]}x{pixels.shape[0]})')
    if msg_factory is None:
        from sensor_msgs.msg import Image
        msg_factory = Image
    msg = msg_factory()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(sys.byteorder == 'big' and dtype.itemsize > 1)
    msg.step = msg.width * channels * dtype.itemsize
    buf = array.array('B')
    buf.frombytes(memoryview(np.ascontiguousarray(pixels)).cast('B'))  # ~10x faster than a list
    msg.data = buf
    return msg


_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic); C4/C8/CC are DHT/JPG/DAC
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# markers without a length field: TEM, RST0-7, SOI
_JPEG_STANDALONE = frozenset([0x01, 0xD8]) | frozenset(range(0xD0, 0xD8))


def _png_size(data: memoryview) -> Optional[Tuple[int, int]]:
    """(width, height) from a PNG's IHDR chunk, which the format requires to come first."""
    if len(data) < 24 or bytes(data[12:16]) != b'IHDR':
        return None
    width, height = struct.unpack('>II', data[16:24])
    return (width, height) if width > 0 and height > 0 else None


def _jpeg_size(data: memoryview) -> Optional[Tuple[int, int]]:
    """(width, height) from the first start-of-frame segment of a JPEG (walks the marker segments)."""
    pos, end = 2, len(data)
    while pos < end:
        if data[pos] != 0xFF:
            return None  # not at a marker: corrupt stream
        while pos < end and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= end:
            return None
        marker = data[pos]
        pos += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (0xD9, 0xDA) or pos + 2 > end:  # end of image / start of scan before any frame header
            return None
        length = (data[pos] << 8) | data[pos + 1]
        if marker in _JPEG_SOF:
            if length < 7 or pos + 7 > end:
                return None
            height, width = struct.unpack('>HH', data[pos + 3:pos + 7])
            # height 0 means "given later in a DNL segment": the size is unknown before decoding
            return (width, height) if width > 0 and height > 0 else None
        if length < 2:
            return None
        pos += length
    return None


def _other_size(data: memoryview) -> Optional[Tuple[int, int]]:
    """(width, height) of any other format Pillow recognises, from its header alone (no pixel decoding)."""
    try:
        from PIL import Image as PILImage
    except ImportError:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # Pillow's own bomb warning: our limits decide
            with PILImage.open(io.BytesIO(data)) as image:
                width, height = image.size
    except PILImage.DecompressionBombError as exc:  # Pillow measured it above 179 MP (twice its limit)
        raise ImageTooLargeError(f'compressed image refused: {exc}') from None
    except Exception:  # not an image Pillow knows (its open raises several types): size unknown
        return None
    return (int(width), int(height)) if width > 0 and height > 0 else None


def compressed_size(data: Any) -> Optional[Tuple[int, int]]:
    """(width, height) of a compressed image read from its header only; None when it cannot be read."""
    view = memoryview(np.ascontiguousarray(_byte_view(data)))  # zero copy for message buffers
    head = bytes(view[:8])
    if head.startswith(_PNG_SIGNATURE):
        return _png_size(view)
    if head.startswith(b'\xff\xd8'):
        return _jpeg_size(view)
    return _other_size(view)


def decode_compressed(msg: Any, max_pixels: Optional[int] = None,
                      max_side: Optional[int] = None) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG/PNG/...) to ``uint8 [H, W, 3]`` RGB.

    The size is read from the header first: a header that cannot be read is refused as undecodable, and
    one above ``max_pixels`` / ``max_side`` raises :class:`ImageTooLargeError` without decoding.
    """
    fmt = str(getattr(msg, 'format', ''))
    if 'compresseddepth' in fmt.lower():
        raise ImageConversionError(f'CompressedImage format {fmt!r} is a depth image, not a colour image',
                                   'unsupported_encoding')
    raw = _byte_view(msg.data)
    if raw.size == 0:
        raise ImageConversionError(f'CompressedImage (format {fmt!r}) has no data', 'malformed')
    size = compressed_size(raw)
    if size is None:
        # refusing what cannot be measured keeps the size limit unconditional
        raise ImageConversionError(
            f'could not decode CompressedImage (format {fmt!r}, {raw.size} bytes): no readable image header',
            'undecodable')
    check_input_size(size[0], size[1], max_pixels, max_side, f'CompressedImage (format {fmt!r})')
    import cv2

    bgr = cv2.imdecode(raw, cv2.IMREAD_COLOR)  # always 3-channel BGR 8 bit
    if bgr is None or bgr.size == 0:
        raise ImageConversionError(
            f'could not decode CompressedImage (format {fmt!r}, {raw.size} bytes)', 'undecodable')
    return np.ascontiguousarray(bgr[:, :, ::-1])


def encode_compressed(rgb: np.ndarray, fmt: str = 'jpeg', header: Any = None, quality: int = 90,
                      msg_factory: Optional[Callable[[], Any]] = None) -> Any:
    """A ``sensor_msgs/CompressedImage`` of an RGB ``uint8 [H, W, 3]`` (or ``[H, W]`` grey) array.

    ``fmt``: 'jpeg' or 'png'. The ``format`` field follows image_transport's convention
    (e.g. ``'rgb8; jpeg compressed bgr8'``).
    """
    import cv2

    rgb = np.asarray(rgb)
    if fmt not in ('jpeg', 'png'):
        raise ImageConversionError(f'unsupported compression {fmt!r}: expected jpeg or png')
    if rgb.dtype != np.uint8 or not (rgb.ndim == 2 or (rgb.ndim == 3 and rgb.shape[2] == 3)):
        raise ImageConversionError(
            f'compression needs a uint8 [H, W, 3] RGB or [H, W] array, got {rgb.dtype} {rgb.shape}')
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageConversionError(f'cannot compress a zero-size image {rgb.shape}')
    grey = rgb.ndim == 2
    src = rgb if grey else rgb[:, :, ::-1]
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == 'jpeg' else []
    ok, encoded = cv2.imencode('.jpg' if fmt == 'jpeg' else '.png', np.ascontiguousarray(src), params)
    if not ok:
        raise ImageConversionError(f'cv2 could not encode a {rgb.shape} image as {fmt}')
    if msg_factory is None:
        from sensor_msgs.msg import CompressedImage
        msg_factory = CompressedImage
    msg = msg_factory()
    if header is not None:
        msg.header = header
    msg.format = f'{"mono8" if grey else "rgb8"}; {fmt} compressed {"mono8" if grey else "bgr8"}'
    buf = array.array('B')
    buf.frombytes(encoded.tobytes())
    msg.data = buf
    return msg
