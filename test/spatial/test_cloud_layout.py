"""The PointCloud2 bytes, field by field, and the PLY file, read back by readers written from the specs."""
import struct

import numpy as np
import pytest

from talk2dino_ros.spatial import cloud as C
from talk2dino_ros.spatial.ply import read_ply, write_ply


def _sample(n=5, seed=0):
    rng = np.random.default_rng(seed)
    xyz = rng.normal(size=(n, 3)).astype(np.float32)
    labels = rng.integers(0, 700, n).astype(np.uint16)
    conf = rng.random(n).astype(np.float32)
    rgb = rng.integers(0, 256, (n, 3)).astype(np.uint8)
    return xyz, labels, conf, rgb


def test_field_table_offsets_and_step():
    xyz, labels, conf, rgb = _sample()
    plain = C.pack_cloud(xyz, labels, conf)
    assert [(f.name, f.offset, f.datatype, f.count) for f in plain.fields] == [
        ('x', 0, 7, 1), ('y', 4, 7, 1), ('z', 8, 7, 1), ('confidence', 12, 7, 1), ('label', 16, 4, 1)]
    assert plain.point_step == 20 and plain.row_step == 100 and plain.width == 5 and plain.height == 1
    assert plain.is_dense and not plain.is_bigendian and plain.data.dtype == np.uint8
    coloured = C.pack_cloud(xyz, labels, conf, rgb)
    assert coloured.fields[-1] == C.FieldSpec('rgb', 20, C.FLOAT32) and coloured.point_step == 24


def test_bytes_by_hand_match_the_field_table():
    xyz, labels, conf, rgb = _sample()
    cloud = C.pack_cloud(xyz, labels, conf, rgb)
    raw = cloud.data.tobytes()
    for i in range(5):
        row = raw[i * 24:(i + 1) * 24]
        x, y, z, c = struct.unpack_from('<4f', row, 0)
        (label,) = struct.unpack_from('<H', row, 16)
        (packed,) = struct.unpack_from('<I', row, 20)
        assert (x, y, z) == tuple(float(v) for v in xyz[i]) and c == float(conf[i]) and label == labels[i]
        assert packed == (int(rgb[i, 0]) << 16) | (int(rgb[i, 1]) << 8) | int(rgb[i, 2])
        assert row[18:20] == b'\0\0'  # padding is deterministic


def test_reader_round_trip_and_foreign_layouts():
    xyz, labels, conf, rgb = _sample(50)
    cloud = C.pack_cloud(xyz, labels, conf, rgb)
    got = C.read_cloud(cloud.fields, cloud.point_step, cloud.data.tobytes(), cloud.width)
    np.testing.assert_array_equal(np.stack([got['x'], got['y'], got['z']], 1), xyz)
    np.testing.assert_array_equal(got['label'], labels)
    np.testing.assert_array_equal(C.unpack_rgb(got['rgb']), rgb)
    # a big-endian cloud with a float64 and a count-3 field (not our layout): the reader follows the table
    fields = [C.FieldSpec('t', 0, C.FLOAT64), C.FieldSpec('v', 8, C.INT16, 3)]
    data = struct.pack('>d3h', 1.5, -1, 2, -3) + struct.pack('>d3h', 2.5, 4, 5, 6)
    got = C.read_cloud(fields, 14, data, 2, is_bigendian=True)
    np.testing.assert_array_equal(got['t'], [1.5, 2.5])
    np.testing.assert_array_equal(got['v'], [[-1, 2, -3], [4, 5, 6]])
    with pytest.raises(ValueError, match='need'):
        C.read_cloud(fields, 14, data[:-1], 2, is_bigendian=True)


def test_ply_round_trip(tmp_path):
    xyz, labels, conf, rgb = _sample(20)
    path = tmp_path / 'cloud.ply'
    write_ply(path, xyz, labels, conf, rgb, comment='frame 0\nvocabulary: a, b')
    head = path.read_bytes().split(b'end_header\n')[0].decode()
    assert 'property ushort label' in head and 'property float confidence' in head and 'comment frame 0' in head
    got = read_ply(path)
    np.testing.assert_array_equal(np.stack([got['x'], got['y'], got['z']], 1), xyz)
    np.testing.assert_array_equal(got['label'], labels)
    np.testing.assert_array_equal(got['confidence'], conf)
    np.testing.assert_array_equal(np.stack([got['red'], got['green'], got['blue']], 1), rgb)
