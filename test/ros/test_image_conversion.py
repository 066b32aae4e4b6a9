"""sensor_msgs/Image <-> numpy: every encoding, row padding, endianness, and malformed messages."""
import array
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sensor_msgs.msg import CompressedImage, Image

from talk2dino_ros.errors import Talk2DinoError
from talk2dino_ros.ros.image_conversion import (
    RGB8_INPUT_ENCODINGS, ImageConversionError, decode_compressed, encode_compressed, encoding_info,
    image_to_numpy, numpy_to_image, to_rgb8)

NAMED = ['mono8', 'mono16', 'rgb8', 'bgr8', 'rgba8', 'bgra8', 'rgb16', 'bgr16', 'rgba16', 'bgra16']
GENERIC = [f'{d}C{c}' for d in ('8U', '8S', '16U', '16S', '32S', '32F', '64F') for c in (1, 2, 3, 4)]
ALL = NAMED + GENERIC


def make_msg(pixels: np.ndarray, encoding: str, pad: int = 0, big: bool = False, cut: int = 0) -> Image:
    """Hand-built message (independent of numpy_to_image): rows padded with `pad` junk bytes."""
    dtype, channels = encoding_info(encoding)
    arr = pixels.reshape(pixels.shape[0], pixels.shape[1], channels).astype(dtype.newbyteorder('>' if big else '<'))
    rows = [arr[r].tobytes() + bytes([0xAB]) * pad for r in range(arr.shape[0])]
    data = b''.join(rows)
    msg = Image(height=arr.shape[0], width=arr.shape[1], encoding=encoding, is_bigendian=int(big),
                step=arr.shape[1] * channels * dtype.itemsize + pad)
    msg.data = data[:len(data) - cut] if cut else data
    return msg


def random_pixels(rng, encoding, h, w):
    dtype, channels = encoding_info(encoding)
    shape = (h, w) if channels == 1 else (h, w, channels)
    if dtype.kind == 'f':
        return rng.standard_normal(shape).astype(dtype) * 1000
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


@pytest.mark.parametrize('encoding', ALL)
@pytest.mark.parametrize('big', [False, True])
def test_every_encoding_decodes_with_padding_and_byte_order(encoding, big):
    rng = np.random.default_rng(0)
    pixels = random_pixels(rng, encoding, 3, 5)
    out = image_to_numpy(make_msg(pixels, encoding, pad=3, big=big))
    assert out.dtype == encoding_info(encoding)[0]
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, pixels)


@pytest.mark.parametrize('encoding', ALL)
def test_numpy_to_image_round_trip(encoding):
    pixels = random_pixels(np.random.default_rng(1), encoding, 4, 7)
    msg = numpy_to_image(pixels, encoding)
    dtype, channels = encoding_info(encoding)
    assert (msg.height, msg.width, msg.encoding) == (4, 7, encoding)
    assert msg.step == 7 * channels * dtype.itemsize
    assert len(msg.data) == msg.step * 4
    assert msg.is_bigendian == int(sys.byteorder == 'big' and dtype.itemsize > 1)
    np.testing.assert_array_equal(image_to_numpy(msg), pixels)


def test_native_image_is_a_read_only_zero_copy_view():
    msg = make_msg(np.arange(24, dtype=np.uint8).reshape(4, 6), 'mono8', pad=2)
    out = image_to_numpy(msg)
    assert not out.flags.writeable
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))


@pytest.mark.parametrize('encoding', RGB8_INPUT_ENCODINGS)
def test_to_rgb8_colour_order_and_scaling(encoding):
    rng = np.random.default_rng(2)
    dtype, channels = encoding_info(encoding)
    pixels = random_pixels(rng, encoding, 3, 4)
    rgb = to_rgb8(make_msg(pixels, encoding, pad=1, big=dtype.itemsize > 1))
    assert rgb.dtype == np.uint8 and rgb.shape == (3, 4, 3) and rgb.flags.c_contiguous and rgb.flags.writeable
    eight = (pixels >> 8).astype(np.uint8) if dtype.itemsize == 2 else pixels
    if channels == 1:
        expected = np.stack([eight] * 3, axis=2)
    elif encoding.startswith('bgr'):
        expected = eight[:, :, [2, 1, 0]]
    else:
        expected = eight[:, :, :3]
    np.testing.assert_array_equal(rgb, expected)


def test_to_rgb8_known_pixel():
    msg = make_msg(np.array([[[10, 20, 30, 40]]], np.uint8), 'bgra8')
    assert to_rgb8(msg)[0, 0].tolist() == [30, 20, 10]
    msg16 = make_msg(np.array([[0x1234, 0xFFFF]], np.uint16), 'mono16', big=True)
    assert to_rgb8(msg16)[0, :, 0].tolist() == [0x12, 0xFF]


@pytest.mark.parametrize('encoding', ['32FC1', '8UC3', '16UC1', 'yuv422', 'bayer_rggb8', 'jpeg', ''])
def test_to_rgb8_rejects_non_colour_encodings_naming_them(encoding):
    msg = Image(height=1, width=1, encoding=encoding, step=64)
    msg.data = bytes(64)
    with pytest.raises(ImageConversionError, match=repr(encoding).replace('[', r'\[')):
        to_rgb8(msg)


@pytest.mark.parametrize('fields, needle', [
    (dict(height=0, width=4, step=12), 'zero size'),
    (dict(height=4, width=0, step=0), 'zero size'),
    (dict(height=2, width=4, step=11), 'step >= 12'),
    (dict(height=2, width=4, step=12, data=bytes(23)), 'too short: 23 bytes'),
    (dict(height=2, width=4, step=12, encoding='rgb9'), "unsupported image encoding 'rgb9'"),
    (dict(height=2, width=4, step=12, encoding='8UC5'), "unsupported image encoding '8UC5'"),
])
def test_malformed_messages_name_encoding_and_fault(fields, needle):
    msg = Image(encoding=fields.pop('encoding', 'rgb8'), **{k: v for k, v in fields.items() if k != 'data'})
    msg.data = fields.get('data', bytes(msg.step * msg.height))
    with pytest.raises(ImageConversionError, match=needle) as err:
        image_to_numpy(msg)
    assert isinstance(err.value, Talk2DinoError)
    assert msg.encoding in str(err.value)


def test_longer_data_than_needed_is_accepted():
    msg = make_msg(np.full((2, 3), 7, np.uint8), 'mono8')
    msg.data = bytes(msg.data) + b'\x01\x02'
    np.testing.assert_array_equal(image_to_numpy(msg), np.full((2, 3), 7))


@pytest.mark.parametrize('pixels, encoding, needle', [
    (np.zeros((2, 2), np.float64), '32FC1', 'dtype float32'),
    (np.zeros((2, 2, 3), np.uint8), 'mono8', r'\[H, W\] array'),
    (np.zeros((2, 2), np.uint8), 'rgb8', r'\[H, W, 3\]'),
    (np.zeros((0, 2), np.uint8), 'mono8', 'zero size'),
    (np.zeros((2, 2), np.uint8), 'mono9', 'unsupported'),
])
def test_numpy_to_image_rejects_mismatches(pixels, encoding, needle):
    with pytest.raises(ImageConversionError, match=needle):
        numpy_to_image(pixels, encoding)


def test_numpy_to_image_keeps_header():
    from std_msgs.msg import Header
    header = Header(frame_id='cam')
    header.stamp.sec, header.stamp.nanosec = 12, 345
    msg = numpy_to_image(np.zeros((2, 3), np.float32), '32FC1', header=header)
    assert (msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec) == ('cam', 12, 345)


def test_compressed_png_round_trip_is_exact_and_rgb_ordered():
    rgb = np.zeros((6, 9, 3), np.uint8)
    rgb[..., 0] = 200  # red
    rgb[2:4, 3:7] = (0, 0, 255)
    msg = encode_compressed(rgb, 'png')
    assert msg.format == 'rgb8; png compressed bgr8'
    np.testing.assert_array_equal(decode_compressed(msg), rgb)


def test_compressed_jpeg_round_trip_is_close():
    rgb = np.full((16, 16, 3), (250, 30, 30), np.uint8)
    out = decode_compressed(encode_compressed(rgb, 'jpeg', quality=95))
    assert np.abs(out.astype(int) - rgb).max() <= 8


def test_compressed_grey_decodes_to_three_channels():
    grey = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
    out = decode_compressed(encode_compressed(grey, 'png'))
    np.testing.assert_array_equal(out, np.stack([grey] * 3, axis=2))


@pytest.mark.parametrize('data, fmt, needle', [
    (b'', 'jpeg', 'no data'),
    (b'not an image at all', 'jpeg', 'could not decode'),
    (b'\x89PNG\r\n\x1a\n' + bytes(20), 'png', 'could not decode'),
    (b'xx', '16UC1; compressedDepth png', 'depth'),
])
def test_compressed_bad_data(data, fmt, needle):
    msg = CompressedImage(format=fmt)
    msg.data = data
    with pytest.raises(ImageConversionError, match=needle):
        decode_compressed(msg)


def test_encode_compressed_rejects_bad_arrays():
    with pytest.raises(ImageConversionError, match='uint8'):
        encode_compressed(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ImageConversionError, match='unsupported compression'):
        encode_compressed(np.zeros((2, 2, 3), np.uint8), 'webp')


# ---------------------------------------------------------------- property tests
def reference_decode(msg):
    """Row-by-row decoding, written independently of the strided view in the module."""
    dtype, channels = encoding_info(msg.encoding)
    stored = dtype.newbyteorder('>' if msg.is_bigendian else '<')
    data = bytes(msg.data)
    rows = []
    for r in range(msg.height):
        start = r * msg.step
        row = np.frombuffer(data[start:start + msg.width * channels * dtype.itemsize], dtype=stored)
        rows.append(row.astype(dtype).reshape(msg.width, channels))
    out = np.stack(rows)
    return out[:, :, 0] if channels == 1 else out


@st.composite
def raw_messages(draw):
    encoding = draw(st.sampled_from(ALL) | st.text(max_size=8))
    h = draw(st.integers(0, 5))
    w = draw(st.integers(0, 5))
    try:
        dtype, channels = encoding_info(encoding)
        row = w * channels * dtype.itemsize
    except ImageConversionError:
        row = w * 3
    step = draw(st.integers(max(0, row - 3), row + 9))
    full = step * h
    size = draw(st.sampled_from([full, max(0, full - 1), full + 5]) | st.integers(0, full + 16))
    data = draw(st.binary(min_size=size, max_size=size))
    msg = Image(height=h, width=w, encoding=encoding, step=step, is_bigendian=draw(st.integers(0, 1)))
    msg.data = data
    return msg


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_messages())
def test_property_decode_is_correct_or_raises_the_documented_error(msg):
    valid = True
    try:
        dtype, channels = encoding_info(msg.encoding)
    except ImageConversionError:
        valid = False
    else:
        valid = (msg.height > 0 and msg.width > 0 and msg.step >= msg.width * channels * dtype.itemsize
                 and len(msg.data) >= msg.step * msg.height)
    if not valid:
        with pytest.raises(ImageConversionError):
            image_to_numpy(msg)
        return
    out = image_to_numpy(msg)
    expected = reference_decode(msg)
    assert out.dtype == expected.dtype and out.shape == expected.shape
    assert out.tobytes() == expected.tobytes()  # bit for bit, NaN payloads included


@settings(max_examples=200, deadline=None)
@given(raw_messages())
def test_property_to_rgb8_never_raises_anything_else(msg):
    try:
        rgb = to_rgb8(msg)
    except ImageConversionError as exc:
        assert str(exc)
        return
    assert rgb.shape == (msg.height, msg.width, 3) and rgb.dtype == np.uint8


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64), st.sampled_from(['jpeg', 'png', '', 'rgb8; jpeg compressed bgr8']))
def test_property_decode_compressed_garbage(data, fmt):
    msg = CompressedImage(format=fmt)
    msg.data = array.array('B', data)
    try:
        out = decode_compressed(msg)
    except ImageConversionError:
        return
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3


# ---------------------------------------------------------------- size limits (measured before decoding)
import resource  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402

from talk2dino_ros.ros.image_conversion import (  # noqa: E402
    DEFAULT_MAX_INPUT_PIXELS, MAX_INPUT_SIDE, ImageTooLargeError, compressed_size)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack('>I', len(payload)) + kind + payload + struct.pack('>I', zlib.crc32(kind + payload))


@pytest.fixture(scope='module')
def png_bomb() -> bytes:
    """A valid 16000x16000 grey PNG of ~250 kB: 256 MB of pixels once decoded (768 MB as BGR)."""
    side = 16000
    row = bytes(side + 1)  # filter byte + zeros
    compressor = zlib.compressobj(9)
    block = row * 1000
    idat = b''.join(compressor.compress(block) for _ in range(side // 1000)) + compressor.flush()
    ihdr = struct.pack('>IIBBBBB', side, side, 8, 0, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + _png_chunk(b'IHDR', ihdr) + _png_chunk(b'IDAT', idat)
            + _png_chunk(b'IEND', b''))


def _jpeg_header(width: int, height: int, app_bytes: int = 0) -> bytes:
    """SOI, an optional APP1 of filler, a baseline SOF0 claiming width x height, EOI (no pixel data)."""
    app = b'\xff\xe1' + struct.pack('>H', app_bytes + 2) + bytes(app_bytes) if app_bytes else b''
    sof = b'\xff\xc0' + struct.pack('>HBHHB', 17, 8, height, width, 3) + bytes(9)
    return b'\xff\xd8' + app + sof + b'\xff\xd9'


def test_png_bomb_is_refused_from_its_header_without_decoding(png_bomb):
    assert len(png_bomb) < 300_000
    msg = CompressedImage(format='png')
    msg.data = array.array('B', png_bomb)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match='16000x16000') as info:
        decode_compressed(msg, max_pixels=DEFAULT_MAX_INPUT_PIXELS, max_side=MAX_INPUT_SIDE)
    elapsed = time.perf_counter() - started
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert info.value.reason == 'too_large'
    assert elapsed < 0.2, f'took {elapsed:.2f} s: the image was decoded'
    assert grown_mb < 100, f'peak memory grew by {grown_mb:.0f} MB: the image was decoded'


def test_jpeg_header_claiming_65000_square_is_too_large_not_an_engine_failure():
    msg = CompressedImage(format='jpeg')
    msg.data = _jpeg_header(65000, 65000, app_bytes=5000)
    assert compressed_size(msg.data) == (65000, 65000)
    with pytest.raises(ImageTooLargeError, match=f'above {MAX_INPUT_SIDE} px'):
        decode_compressed(msg, max_side=MAX_INPUT_SIDE)
    with pytest.raises(ImageTooLargeError, match='max_input_pixels'):
        decode_compressed(msg, max_pixels=1000)


@pytest.mark.parametrize('ext', ['.png', '.jpg', '.bmp', '.webp', '.tiff'])
@pytest.mark.parametrize('shape', [(7, 13), (480, 640), (1, 300)])
def test_header_size_matches_the_decoded_size(ext, shape):
    import cv2
    rgb = np.random.default_rng(3).integers(0, 255, size=shape + (3,), dtype=np.uint8)
    ok, encoded = cv2.imencode(ext, rgb)
    assert ok
    msg = CompressedImage(format=ext[1:])
    msg.data = array.array('B', encoded.tobytes())
    assert compressed_size(msg.data) == (shape[1], shape[0])
    assert decode_compressed(msg, max_pixels=shape[0] * shape[1], max_side=max(shape)).shape == shape + (3,)
    with pytest.raises(ImageTooLargeError):
        decode_compressed(msg, max_pixels=shape[0] * shape[1] - 1)


@pytest.mark.parametrize('data', [
    b'\xff\xd8\xff\xd9',                                   # no frame header at all
    _jpeg_header(640, 0),                                  # height deferred to a DNL segment
    b'\xff\xd8\xff\xe0\x00',                               # truncated segment length
    b'\xff\xd8\x00\x00',                                   # not a marker
    b'\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00',       # truncated IHDR
])
def test_unmeasurable_headers_are_refused_as_undecodable(data):
    msg = CompressedImage(format='jpeg')
    msg.data = data
    with pytest.raises(ImageConversionError, match='could not decode') as info:
        decode_compressed(msg, max_pixels=DEFAULT_MAX_INPUT_PIXELS)
    assert info.value.reason == 'undecodable'


def test_raw_frames_are_measured_from_width_and_height_before_the_data():
    huge = Image(height=100_000, width=100_000, encoding='rgb8', step=300_000)  # no data at all
    with pytest.raises(ImageTooLargeError, match='100000x100000'):
        to_rgb8(huge, max_pixels=DEFAULT_MAX_INPUT_PIXELS)
    wide = make_msg(np.zeros((1, MAX_INPUT_SIDE + 1, 3), np.uint8), 'rgb8')
    with pytest.raises(ImageTooLargeError, match=f'above {MAX_INPUT_SIDE} px'):
        to_rgb8(wide, max_side=MAX_INPUT_SIDE)
    at_limit = make_msg(np.zeros((1, MAX_INPUT_SIDE, 3), np.uint8), 'rgb8')
    assert to_rgb8(at_limit, max_pixels=DEFAULT_MAX_INPUT_PIXELS, max_side=MAX_INPUT_SIDE).shape == (
        1, MAX_INPUT_SIDE, 3)
    assert to_rgb8(wide).shape == (1, MAX_INPUT_SIDE + 1, 3)  # no limits asked: none applied


def test_rejection_reasons_are_machine_readable():
    with pytest.raises(ImageConversionError) as info:
        to_rgb8(Image(height=1, width=1, encoding='32FC1', step=4, data=bytes(4)))
    assert info.value.reason == 'unsupported_encoding'
    with pytest.raises(ImageConversionError) as info:
        to_rgb8(Image(height=2, width=2, encoding='rgb8', step=6, data=bytes(3)))
    assert info.value.reason == 'malformed'


def test_side_limit_matches_the_engine():
    from talk2dino_ros.model.segmenter import MAX_IMAGE_SIDE
    assert MAX_INPUT_SIDE == MAX_IMAGE_SIDE
