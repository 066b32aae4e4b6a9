"""~/locate's answer (the logic under the service): names through the vocabulary's rules, names outside the
vocabulary looked for without installing them, 3D from the latest frame with depth, 2D without."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from talk2dino_ros.model.types import InferenceOptions, SegmentationResult, Vocabulary
from talk2dino_ros.ros.depth_inputs import camera_info_topic_for, depth_topic_for
from talk2dino_ros.ros.locate import LocateMemory, StoredFrame, camera_of, locate
from talk2dino_ros.ros.vocabulary import parse_vocabulary
from talk2dino_ros.spatial.intrinsics import Intrinsics
from talk2dino_ros.spatial.scene import SpatialOptions
from talk2dino_ros.spatial.synthetic import default_scene

INTR = Intrinsics(262.5, 262.5, 159.5, 119.5, 320, 240)
SCENE = default_scene()
#: what the fake model "sees": class name -> the scene's label id
SEES = {'floor': 1, 'wall': 2, 'door': 3, 'chair': 4, 'lamp': 5}


class SceneSegmenter:
    """Scores the rendered scene: a name's channel is high exactly where the scene has its object."""

    def __init__(self):
        self.labels, self.depth = SCENE.render(INTR)
        self.installed = []
        self.built = []

    def set_vocabulary(self, names):  # never called by locate: the published vocabulary must not change
        self.installed.append(tuple(names))

    def build_vocabulary(self, names, background=None):
        self.built.append(tuple(names))
        return Vocabulary(tuple(names), tuple(names), torch.zeros(len(names), 1), bool(background), 99)

    def segment(self, image, *, vocabulary=None, options=None, output_size=None):
        assert image.shape[:2] == self.labels.shape
        chans = [np.full(self.labels.shape, 0.55, np.float32)]  # background channel
        for name in vocabulary.names:
            chans.append(np.where(self.labels == SEES.get(name.lower(), -1), 0.9, 0.1).astype(np.float32))
        scores = np.stack(chans)
        return SegmentationResult(scores, scores.argmax(0).astype(np.int32), ('background',) + vocabulary.names, True,
                                  vocabulary.version)


def _state(names=('floor', 'wall', 'door')):
    seg = SceneSegmenter()
    vocab = Vocabulary(tuple(names), tuple(names), torch.zeros(len(names), 1), True, 1)
    return SimpleNamespace(names=tuple(names), vocabulary=vocab, segmenter=seg,
                           options=InferenceOptions(background=True)), seg


def _header(frame_id, sec):
    return SimpleNamespace(frame_id=frame_id, stamp=SimpleNamespace(sec=sec, nanosec=0))


def _frame(with_depth=True):
    return StoredFrame(colour=SimpleNamespace(header=_header('cam_color', 5)), compressed=False,
                       depth=SimpleNamespace(header=_header('cam_depth', 6)) if with_depth else None,
                       info=object() if with_depth else None)


def _ask(names, state, frame, options=SpatialOptions()):
    seg = state.segmenter if state is not None else None
    return locate(parse_vocabulary(names), state, frame, options,
                  decode_colour=lambda f: np.zeros(seg.labels.shape + (3,), np.uint8),
                  decode_depth=lambda f: (seg.depth, INTR))


def test_a_vocabulary_class_is_found_in_3d_at_its_place():
    state, seg = _state()
    answer = _ask(['door'], state, _frame())
    assert answer.success and answer.has_depth and answer.header.frame_id == 'cam_depth'
    (door,) = answer.results
    assert (door.name, door.in_vocabulary, door.class_id) == ('door', True, 3)
    (obj,) = door.objects
    panel = next(p for p in SCENE.panels if p.class_id == 3)
    np.testing.assert_allclose(obj.center, panel.center, atol=0.01)
    np.testing.assert_allclose(obj.size, panel.size, atol=0.02)
    assert obj.score == pytest.approx(0.9)
    assert seg.built == [] and seg.installed == []  # nothing new to encode, nothing installed


def test_names_outside_the_vocabulary_are_looked_for_without_changing_it():
    state, seg = _state()
    answer = _ask(['Lamp', 'unicorn', 'door'], state, _frame())
    assert answer.success
    lamp, unicorn, door = answer.results
    assert (lamp.in_vocabulary, lamp.class_id) == (False, 0) and len(lamp.objects) == 1
    panel = next(p for p in SCENE.panels if p.class_id == 5)
    np.testing.assert_allclose(lamp.objects[0].center, panel.center, atol=0.01)
    assert unicorn.objects == []  # not in view: an empty list, not an error
    assert door.in_vocabulary and door.objects
    # encoded once, with the vocabulary first (the requested classes compete with the published ones)
    assert seg.built == [('floor', 'wall', 'door', 'Lamp', 'unicorn')]
    assert seg.installed == [] and state.names == ('floor', 'wall', 'door')
    assert '2 of 3 names found, 3D' in answer.message


def test_invalid_names_are_refused_with_the_vocabulary_reasons():
    state, _ = _state()
    answer = _ask(['door', 'background', '', 'Door', 'a\u202eb'], state, _frame())
    assert answer.success and [r.name for r in answer.results] == ['door']
    assert len(answer.rejected) == 4
    assert "reserved: 'background'" in answer.message and 'duplicate' in answer.message
    nothing = _ask(['', 'background'], state, _frame())
    assert not nothing.success and 'no usable class name' in nothing.message and nothing.results == []


def test_without_depth_the_answer_is_2d_with_the_camera_header():
    state, _ = _state()
    answer = _ask(['door'], state, _frame(with_depth=False))
    assert answer.success and not answer.has_depth and answer.header.frame_id == 'cam_color'
    (obj,) = answer.results[0].objects
    assert obj.center is None and obj.size_x > 0 and obj.pixels > 0
    assert '2D (no depth frame)' in answer.message


def test_no_model_or_no_frame_is_a_clear_refusal():
    state, _ = _state()
    assert 'no camera frame' in _ask(['door'], state, None).message
    assert 'no model or vocabulary' in _ask(['door'], None, _frame()).message


def test_memory_prefers_the_latest_frame_with_depth():
    memory = LocateMemory()
    assert memory.frame_for('') is None
    with_depth, without = _frame(True), _frame(False)
    memory.remember('', without)
    assert memory.frame_for('') is without
    memory.remember('', with_depth)
    memory.remember('', _frame(False))
    assert memory.frame_for('') is with_depth


def test_camera_choice():
    cams = [SimpleNamespace(name='front'), SimpleNamespace(name='rear')]
    assert camera_of('', cams) == ('front', '') and camera_of('rear', cams) == ('rear', '')
    name, why = camera_of('side', cams)
    assert name is None and "unknown camera 'side'" in why and 'front, rear' in why


@pytest.mark.parametrize('colour, depth', [
    ('/camera/image_raw', '/camera/depth/image_raw'),
    ('/camera/camera/color/image_raw', '/camera/camera/depth/image_raw'),
    ('/front/rgb/image_rect_color', '/front/depth/image_raw'),
    ('image', 'depth/image_raw'),
])
def test_depth_topics_follow_the_camera_namespace(colour, depth):
    assert depth_topic_for(colour) == depth
    assert camera_info_topic_for(depth) == depth.rsplit('/', 1)[0] + '/camera_info' if '/' in depth else True
