"""Known geometry end to end: a floor, a wall and upright panels rendered to labels + a registered depth
image, through decoding, back-projection and the robust boxes."""
import numpy as np
import pytest

from talk2dino_ros.spatial.cloud import read_cloud
from talk2dino_ros.spatial.depth import depth_to_metres, metres_to_depth
from talk2dino_ros.spatial.intrinsics import Intrinsics
from talk2dino_ros.spatial.scene import SpatialOptions, build_spatial
from talk2dino_ros.spatial.synthetic import FLOOR_ID, WALL_ID, Panel, Scene, confidence_for, default_scene

COLOUR = Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)
NAMES = ['floor', 'wall', 'box a', 'box b', 'box c']
CONF = [0.0, 0.9, 0.8, 0.7, 0.6, 0.5]


def _frame(scene, depth_size, encoding, options=SpatialOptions()):
    labels, _ = scene.render(COLOUR)
    _, depth = scene.render(COLOUR.scaled_to(*depth_size))
    metres = depth_to_metres(metres_to_depth(depth, encoding), encoding, options.depth_max_m)
    return labels, build_spatial(labels, confidence_for(labels, CONF), NAMES, metres, COLOUR, options)


@pytest.mark.parametrize('encoding', ['16UC1', '32FC1'])
@pytest.mark.parametrize('depth_size', [(640, 480), (320, 240)], ids=['equal', 'half'])
def test_panel_boxes_match_the_truth(encoding, depth_size):
    scene = default_scene()
    _, frame = _frame(scene, depth_size, encoding)
    by_class = {}
    for det in frame.detections:
        by_class.setdefault(det.class_id, []).append(det)
    for panel in scene.panels:
        (det,) = by_class[panel.class_id]
        assert det.name == NAMES[panel.class_id - 1]
        assert det.score == pytest.approx(CONF[panel.class_id])
        np.testing.assert_allclose(det.center, panel.center, atol=0.01)
        np.testing.assert_allclose(det.size, panel.size, atol=0.02)
    # the floor lies at the camera height (y down) and is flat
    floor = max(by_class[FLOOR_ID], key=lambda d: d.pixels)
    assert floor.center[1] == pytest.approx(scene.camera_height, abs=0.01)
    assert floor.size[1] < 0.02
    (wall,) = by_class[WALL_ID]
    assert wall.center[2] == pytest.approx(scene.wall_z, abs=0.01)
    assert 0 not in by_class  # background is never a detection


@pytest.mark.parametrize('depth_size', [(640, 480), (320, 240)], ids=['equal', 'half'])
def test_points_lie_on_the_surface_of_their_label(depth_size):
    scene = default_scene()
    labels, frame = _frame(scene, depth_size, '32FC1')
    pts = read_cloud(frame.cloud.fields, frame.cloud.point_step, frame.cloud.data.tobytes(), frame.cloud.width)
    assert set(np.unique(pts['label'])) <= set(np.unique(labels))
    for panel in scene.panels:
        on = pts['label'] == panel.class_id
        z = pts['z'][on]
        # a panel pixel's depth is the panel's (never the floor or wall behind it) apart from a thin
        # outline where a half-resolution depth pixel straddles the edge
        share = np.mean(np.abs(z - panel.z) < 1e-3)
        assert share == 1.0 if depth_size == (640, 480) else share > 0.9


def test_edge_pixels_never_get_another_class_id():
    # classes 1 and 3 side by side: an interpolating resampler would invent class 2 along the edge
    labels = np.ones((60, 80), np.uint8)
    labels[:, 40:] = 3
    for depth_shape in [(60, 80), (30, 40), (45, 61)]:
        d = np.full(depth_shape, 2.0, np.float32)
        frame = build_spatial(labels, np.ones(labels.shape, np.float32), ['a', 'b', 'c'], d,
                              Intrinsics(80., 80., 39.5, 29.5, 80, 60), SpatialOptions(min_region_pixels=1))
        got = read_cloud(frame.cloud.fields, frame.cloud.point_step, frame.cloud.data.tobytes(), frame.cloud.width)
        assert set(np.unique(got['label'])) == {1, 3}
        # and each point's label is the class on its side of the edge (x < 0 is the left half)
        assert np.all(got['label'][got['x'] < -0.05] == 1) and np.all(got['label'][got['x'] > 0.05] == 3)


def test_a_few_background_pixels_at_the_edge_do_not_stretch_the_box():
    scene = Scene([Panel(3, -0.3, 0.3, -0.2, 0.2, 2.0)], wall_z=5.0)
    labels, depth = scene.render(COLOUR)
    # smear the panel's label one pixel to the right along its whole right edge: those pixels see the wall
    cols = np.flatnonzero((labels == 3).any(axis=0))
    rows = np.flatnonzero((labels == 3).any(axis=1))
    labels[rows, cols[-1] + 1] = 3
    frame = build_spatial(labels, None, NAMES, depth, COLOUR)
    (det,) = [d for d in frame.detections if d.class_id == 3]
    np.testing.assert_allclose(det.center, (0.0, 0.0, 2.0), atol=0.01)
    np.testing.assert_allclose(det.size, (0.6, 0.4, 0.0), atol=0.02)


def test_without_depth_detections_are_2d_only_and_there_is_no_cloud():
    labels, _ = default_scene().render(COLOUR)
    frame = build_spatial(labels, confidence_for(labels, CONF), NAMES)
    assert frame.cloud is None and not frame.has_depth
    assert frame.detections and all(d.center is None for d in frame.detections)
    panel = next(d for d in frame.detections if d.class_id == 3)
    ys, xs = np.nonzero(labels == 3)
    assert (panel.center_x, panel.center_y) == ((xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2)
    assert (panel.size_x, panel.size_y) == (xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)


def test_stride_and_voxel_thin_the_cloud_but_keep_whole_points():
    labels, full = _frame(default_scene(), (640, 480), '32FC1')
    _, strided = _frame(default_scene(), (640, 480), '32FC1', SpatialOptions(stride=2))
    _, voxel = _frame(default_scene(), (640, 480), '32FC1', SpatialOptions(voxel_size=0.1))
    assert strided.cloud.width == pytest.approx(full.cloud.width / 4, rel=0.02)
    assert voxel.cloud.width < full.cloud.width / 10
    read = lambda c: read_cloud(c.fields, c.point_step, c.data.tobytes(), c.width)  # noqa: E731
    f, v = read(full.cloud), read(voxel.cloud)
    # every voxel point is one of the full cloud's points, label and confidence included (no averaging)
    full_rows = {tuple(r) for r in np.stack([f['x'], f['y'], f['z'], f['label']], 1).tolist()}
    assert all(tuple(r) in full_rows for r in np.stack([v['x'], v['y'], v['z'], v['label']], 1).tolist())
    cells = np.floor(np.stack([v['x'], v['y'], v['z']], 1) / 0.1).astype(int)
    assert len({tuple(c) for c in cells.tolist()}) == v['x'].size  # one point per voxel


def test_small_regions_are_not_detections():
    labels = np.zeros((40, 40), np.uint8)
    labels[2:6, 2:6] = 1      # 16 pixels
    labels[10:30, 10:30] = 1  # 400 pixels
    labels[35:38, 35:38] = 2  # 9 pixels
    frame = build_spatial(labels, None, ['a', 'b'], options=SpatialOptions(min_region_pixels=20))
    assert [(d.class_id, d.pixels) for d in frame.detections] == [(1, 400)]


@pytest.mark.parametrize('regions', [1, 3, 12])
def test_region_scores_are_exact_means_however_many_regions_a_class_has(regions):
    rng = np.random.default_rng(regions)
    labels = np.zeros((60, 200), np.uint8)
    for k in range(regions):  # separate squares of class 2
        labels[10:20, 15 * k + 2:15 * k + 12] = 2
    labels[40:55, 5:60] = 1
    confidence = rng.random(labels.shape).astype(np.float32)
    frame = build_spatial(labels, confidence, ['a', 'b'], options=SpatialOptions(min_region_pixels=20))
    assert sorted(d.class_id for d in frame.detections) == [1] + [2] * regions
    from talk2dino_ros.spatial.regions import find_regions
    found = find_regions(labels, confidence, 20, with_index=True)
    for r in range(len(found)):
        pixels = found.index == r + 1
        assert found.scores[r] == pytest.approx(float(confidence[pixels].mean()), rel=1e-5)
