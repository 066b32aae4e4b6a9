"""Frames read from a bag are measured before decoding, with the node's limits (decompression bombs)."""
import struct

import numpy as np
import pytest

from talk2dino_ros.bags import bag_io
from talk2dino_ros.ros.image_conversion import ImageTooLargeError


def _jpeg_header(width: int, height: int) -> bytes:
    """SOI, a baseline SOF0 claiming width x height, EOI: no pixel data at all."""
    sof = b'\xff\xc0' + struct.pack('>HBHHB', 17, 8, height, width, 3) + bytes(9)
    return b'\xff\xd8' + sof + b'\xff\xd9'


def _compressed(data: bytes) -> bytes:
    types = bag_io.make_typestore().types
    msg = types[bag_io.COMPRESSED_TYPE](header=bag_io.header_msg(1, 0, 'cam'), format='jpeg',
                                        data=np.frombuffer(data, dtype=np.uint8))
    return bag_io.serialize(msg)


def test_a_jpeg_claiming_65000_squared_is_refused_from_its_header():
    with pytest.raises(ImageTooLargeError):
        bag_io.decode_image(_compressed(_jpeg_header(65000, 65000)), bag_io.COMPRESSED_TYPE)


def test_raw_frames_follow_max_pixels():
    raw = bag_io.serialize(bag_io.image_msg(bag_io.header_msg(1, 0, 'cam'), np.zeros((40, 50, 3), np.uint8), 'rgb8'))
    header, rgb = bag_io.decode_image(raw, bag_io.IMAGE_TYPE)
    assert rgb.shape == (40, 50, 3) and header.frame_id == 'cam'
    with pytest.raises(ImageTooLargeError):
        bag_io.decode_image(raw, bag_io.IMAGE_TYPE, max_pixels=40 * 50 - 1)
