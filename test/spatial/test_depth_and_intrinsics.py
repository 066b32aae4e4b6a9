"""Depth decoding, intrinsics (scaling, CameraInfo), nearest-neighbour sampling, stamp pairing."""
from types import SimpleNamespace

import numpy as np
import pytest

from talk2dino_ros.spatial.depth import DepthError, depth_to_metres, metres_to_depth
from talk2dino_ros.spatial.intrinsics import Intrinsics, intrinsics_from_camera_info, parse_intrinsics
from talk2dino_ros.spatial.pairing import StampPairer
from talk2dino_ros.spatial.projection import back_project
from talk2dino_ros.spatial.sampling import nearest_indices, sample_nearest


def test_16uc1_is_millimetres_and_zero_is_no_measurement():
    mm = np.array([[0, 1000, 2500], [65535, 9999, 10001]], np.uint16)
    m = depth_to_metres(mm, '16UC1', depth_max_m=10.0)
    assert m.dtype == np.float32
    np.testing.assert_allclose(m[0, 1:], [1.0, 2.5])
    assert m[1, 1] == pytest.approx(9.999)
    assert np.isnan(m[0, 0]) and np.isnan(m[1, 0]) and np.isnan(m[1, 2])  # 0, beyond depth_max_m


def test_32fc1_drops_nan_inf_zero_negative_and_far():
    raw = np.array([[np.nan, np.inf, -np.inf, 0.0, -1.0, 1.5, 12.0]], np.float32)
    m = depth_to_metres(raw, '32FC1', depth_max_m=10.0)
    assert np.isnan(m[0, :5]).all() and m[0, 5] == pytest.approx(1.5) and np.isnan(m[0, 6])
    assert not np.shares_memory(m, raw)  # the message's buffer is never written


@pytest.mark.parametrize('encoding,dtype', [('mono16', np.uint16), ('16UC1', np.float32), ('32FC1', np.uint16)])
def test_other_encodings_and_dtypes_are_refused_by_name(encoding, dtype):
    with pytest.raises(DepthError, match=encoding):
        depth_to_metres(np.zeros((2, 2), dtype), encoding)


def test_metres_round_trip_through_16uc1():
    m = np.array([[1.2344, np.nan]], np.float32)
    back = depth_to_metres(metres_to_depth(m, '16UC1'), '16UC1')
    assert back[0, 0] == pytest.approx(1.234) and np.isnan(back[0, 1])


def test_scaling_keeps_the_same_rays():
    full = Intrinsics(500.0, 510.0, 319.5, 239.5, 640, 480)
    half = full.scaled_to(320, 240)
    assert (half.fx, half.fy, half.cx, half.cy) == (250.0, 255.0, 159.5, 119.5)
    # the centre of half-res pixel (u, v) is the corner shared by four full-res pixels: same ray
    u, v = 10, 20
    assert (u - half.cx) / half.fx == pytest.approx((2 * u + 0.5 - full.cx) / full.fx)
    assert (v - half.cy) / half.fy == pytest.approx((2 * v + 0.5 - full.cy) / full.fy)


def test_back_projection_formula_and_size_check():
    intr = Intrinsics(100.0, 200.0, 1.0, 2.0, 4, 5)
    depth = np.full((5, 4), np.nan, np.float32)
    depth[4, 3] = 2.0
    proj = back_project(depth, intr)
    np.testing.assert_allclose(proj.xyz, [[(3 - 1.0) * 2.0 / 100, (4 - 2.0) * 2.0 / 200, 2.0]])
    with pytest.raises(DepthError, match='scale them'):
        back_project(np.ones((10, 8), np.float32), intr)


def _info(**kw):
    roi = SimpleNamespace(x_offset=0, y_offset=0, width=0, height=0)
    base = dict(k=[500., 0, 320., 0, 500., 240., 0, 0, 1], p=[0.] * 12, width=640, height=480, binning_x=0,
                binning_y=0, roi=roi)
    base.update(kw)
    return SimpleNamespace(**base)


def test_camera_info_k_binning_roi_and_p_fallback():
    assert intrinsics_from_camera_info(_info()) == Intrinsics(500., 500., 320., 240., 640, 480)
    binned = intrinsics_from_camera_info(_info(binning_x=2, binning_y=2))
    assert (binned.fx, binned.cx, binned.width, binned.height) == (250., 160., 320, 240)
    roi = intrinsics_from_camera_info(_info(roi=SimpleNamespace(x_offset=100, y_offset=50, width=200, height=100)))
    assert (roi.cx, roi.cy, roi.width, roi.height) == (220., 190., 200, 100)
    p_only = intrinsics_from_camera_info(_info(k=[0.] * 9, p=[400., 0, 300., 0, 0, 410., 200., 0, 0, 0, 1, 0]))
    assert (p_only.fx, p_only.fy, p_only.cx, p_only.cy) == (400., 410., 300., 200.)
    with pytest.raises(DepthError, match='no usable calibration'):
        intrinsics_from_camera_info(_info(k=[0.] * 9))


def test_parse_intrinsics():
    assert parse_intrinsics('500, 500,319.5,239.5', 640, 480) == Intrinsics(500, 500, 319.5, 239.5, 640, 480)
    for bad in ['500,500,1', 'a,b,c,d', '0,500,1,1']:
        with pytest.raises(DepthError):
            parse_intrinsics(bad, 640, 480)


def test_nearest_neighbour_sampling_copies_values():
    img = np.arange(12, dtype=np.uint16).reshape(3, 4)
    np.testing.assert_array_equal(sample_nearest(img, 3, 4), img)
    np.testing.assert_array_equal(nearest_indices(4, 2), [1, 3])
    up = sample_nearest(img, 6, 8)
    assert set(np.unique(up)) == set(np.unique(img))
    np.testing.assert_array_equal(up[::2, ::2], img)


def test_pairing_takes_the_nearest_within_tolerance_and_counts_the_rest():
    p = StampPairer(tolerance_ns=10, capacity=3)
    for stamp in (100, 133, 166):
        p.add(stamp, f'd{stamp}')
    assert p.take(50) is None                      # nothing within 10 ns
    assert p.take(131) == 'd133'                   # nearest; d100 is dropped as passed over
    assert p.take(140) is None                     # d133 already used
    p.add(200, 'd200')
    p.add(233, 'd233')
    p.add(266, 'd266')                             # capacity 3: d166 pushed out
    assert p.take(266) == 'd266'
    c = p.counters()
    assert c == {'depth_received': 6, 'depth_paired': 2, 'colour_unpaired': 2, 'depth_unpaired': 4}


def test_pairing_restarts_when_stamps_jump_back():
    p = StampPairer(tolerance_ns=5)
    p.add(1000, 'late')
    p.add(10, 'replayed')
    assert p.take(1000) is None and p.take(10) == 'replayed'
