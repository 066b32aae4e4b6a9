"""The ROS-free frame builder (one label rule, only wanted outputs) and the camera naming of several cameras."""
import numpy as np
import pytest

from talk2dino_ros.model.types import SegmentationResult, confidence_mono8
from talk2dino_ros.outputs import frame
from talk2dino_ros.ros.cameras import CameraConfigError, configure_cameras, derive_camera_names


def result_for(n, h=5, w=7, background=True, seed=0):
    rng = np.random.default_rng(seed)
    channels = n + (1 if background else 0)
    scores = rng.random((channels, h, w), dtype=np.float32)
    names = (('background',) if background else ()) + tuple(f'c{i}' for i in range(n))
    return SegmentationResult(scores=scores, labels=scores.argmax(0), class_names=names,
                              has_background=background, vocabulary_version=1)


class Recording:
    """A result that records which of its host arrays were asked for."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []
        self.class_names, self.has_background = inner.class_names, inner.has_background

    def __getattr__(self, name):
        self.calls.append(name)
        return getattr(self.inner, name)


def test_one_label_rule_for_every_front_end():
    assert frame.label_dtype(255) is np.uint8 and frame.label_dtype(256) is np.uint16
    assert (frame.label_encoding(255), frame.label_encoding(256)) == ('mono8', 'mono16')
    with pytest.raises(ValueError):
        frame.label_dtype(70000)
    # the node's label ids run to N (0 = background): 255 names fit mono8, 256 do not
    assert frame.build_frame_outputs(result_for(255, 2, 3)).labels.dtype == np.uint8
    assert frame.build_frame_outputs(result_for(256, 2, 3)).label_encoding == 'mono16'
    # segment_image stores channel indices 0..C-1: 256 channels fit uint8, 257 do not
    from talk2dino_ros.cli.segment_image import save_result
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as tmp:
        for n, dtype in ((255, np.uint8), (256, np.uint16)):
            save_result(Path(tmp), f'r{n}', result_for(n, 2, 3), None)
            assert np.load(Path(tmp) / f'r{n}.npz')['labels'].dtype == dtype


@pytest.mark.parametrize('background', [True, False])
def test_outputs_match_their_definitions(background):
    result = result_for(3, background=background)
    rgb = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    colors = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    images = frame.build_frame_outputs(result, set(frame.OUTPUT_NAMES), rgb=rgb, colors=colors)
    labels = result.labels_with_background_zero()
    np.testing.assert_array_equal(images.labels, labels)
    np.testing.assert_array_equal(images.confidence, result.confidence())
    np.testing.assert_array_equal(images.confidence_mono8, confidence_mono8(result.confidence()))
    np.testing.assert_array_equal(images.background, result.background_probability())
    assert sorted(images.masks) == [1, 2, 3]
    for class_id, mask in images.masks.items():
        np.testing.assert_array_equal(mask, (labels == class_id) * 255)
    from talk2dino_ros.outputs.overlay import make_overlay
    np.testing.assert_array_equal(images.overlay, make_overlay(rgb, labels, colors, ('background', 'c0', 'c1', 'c2')))
    scores = frame.build_frame_outputs(result, {frame.MASKS}, mask_ids=[2], mask_type='score').masks
    assert list(scores) == [2]
    np.testing.assert_array_equal(scores[2], result.class_scores()[1])


def test_only_wanted_outputs_are_built():
    rec = Recording(result_for(2))
    images = frame.build_frame_outputs(rec, {frame.LABELS})
    assert images.confidence is None and images.background is None and images.overlay is None and not images.masks
    assert rec.calls == ['labels_with_background_zero']
    rec = Recording(result_for(2))
    images = frame.build_frame_outputs(rec, {frame.CONFIDENCE_MONO8})
    assert images.confidence is None and images.confidence_mono8 is not None
    assert 'background_probability' not in rec.calls and 'class_scores' not in rec.calls
    with pytest.raises(ValueError, match='unknown outputs'):
        frame.build_frame_outputs(result_for(2), {'depth'})
    with pytest.raises(ValueError, match='overlay needs'):
        frame.build_frame_outputs(result_for(2), {frame.OVERLAY})
    with pytest.raises(ValueError, match='engine returned labels'):
        frame.build_frame_outputs(result_for(2), rgb=np.zeros((4, 4, 3), np.uint8))


def test_camera_names_from_topics():
    assert derive_camera_names(['/front/camera/image_raw', '/rear/camera/image_raw']) == ['front', 'rear']
    assert derive_camera_names(['/left/front/image_raw', '/right/front/image_raw']) == ['left_front', 'right_front']
    assert derive_camera_names(['/camera/color/image_raw', '/cam_2/image']) == ['camera0', 'cam_2']
    assert derive_camera_names(['3d/image', 'zed-left/image_rect_color']) == ['cam_3d', 'zed_left']
    assert derive_camera_names(['/a/x/image', '/a/x/image_raw']) == ['a_x', 'camera1']
    cams = configure_cameras(['/front/image', '/rear/image'], ['f', 'r'])
    assert [(c.name, c.topic, c.prefix) for c in cams] == [('f', '/front/image', '~/f'), ('r', '/rear/image', '~/r')]
    assert configure_cameras([], None)[0].prefix == '~'
    for topics, names, needle in ((['/a', '/a'], None, 'repeats a topic'), (['/a', ''], None, 'empty topic'),
                                  (['/a'], ['x', 'y'], '2 names for 1'), (['/a', '/b'], ['x', 'x'], 'repeats a name'),
                                  (['/a'], ['1x'], 'not valid'), ([], ['x'], 'image_topics is empty')):
        with pytest.raises(CameraConfigError, match=needle):
            configure_cameras(topics, names)


def test_camera_topics_are_checked_and_compared_as_ros_resolves_them():
    # an invalid name is refused with the entry and the rule it breaks (no rclpy traceback)
    for topic, rule in (('/bad topic', 'must not contain characters'), ('1abc/image', 'must not start with a number'),
                        ('/a//b', "repeated '/'"), ('/rear/image_raw/', 'must not end with a forward slash')):
        with pytest.raises(CameraConfigError) as info:
            configure_cameras(['/front/image_raw', topic], None)
        assert f"image_topics entry {topic!r} is not a valid topic name" in str(info.value)
        assert rule in str(info.value) and 'expand_topic_name.c' not in str(info.value)
    # resolved names: relative and absolute spellings of one topic are one camera, listed twice
    resolve = {'front/image': '/robot/front/image', '/robot/front/image': '/robot/front/image',
               '/rear/image': '/rear/image'}.__getitem__
    with pytest.raises(CameraConfigError, match="'front/image' and '/robot/front/image' are both '/robot/front/image'"):
        configure_cameras(['front/image', '/robot/front/image'], None, resolve=resolve)
    cams = configure_cameras(['front/image', '/rear/image'], None, resolve=resolve)
    assert [(c.name, c.topic, c.resolved) for c in cams] == [('front', 'front/image', '/robot/front/image'),
                                                             ('rear', '/rear/image', '/rear/image')]
