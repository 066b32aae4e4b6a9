"""A fast stand-in for the engine's Segmenter and helpers to run nodes under pytest.

FakeSegmenter labels pixel (y, x) of a W-wide image with vocabulary class ``x * N // W`` (vertical
stripes), except that pixels whose red channel is below 10 are background when the background class
is enabled. So a test can predict every label from the RGB image it sent.
"""
from __future__ import annotations

import threading
import time
from dataclasses import fields, replace

import numpy as np
import torch

from talk2dino_ros.errors import CheckpointError, InputError
from talk2dino_ros.model.types import InferenceOptions, SegmentationResult, Vocabulary

_OPTION_FIELDS = {f.name for f in fields(InferenceOptions)}


class FakeSegmenter:
    """Implements the parts of talk2dino_ros.model.segmenter.Segmenter the node uses."""

    def __init__(self, settings=None, delay: float = 0.0, tag: str = 'fake') -> None:
        self.settings = settings
        self.device = torch.device('cpu')
        self.delay = delay
        self.tag = tag
        self.options = InferenceOptions()
        self.mode, self.resolution = 'whole', 448
        self._version = 0
        self._lock = threading.Lock()
        self._vocabulary = None
        self.encoded_names = []   # every name passed to set_vocabulary, in order
        self.built_names = []     # every vocabulary built without installing it
        self.segment_calls = 0

    @property
    def vocabulary(self):
        return self._vocabulary

    def with_options(self, *, vocabulary_names=None, **changes) -> None:
        unknown = set(changes) - _OPTION_FIELDS - {'mode', 'resolution'}
        if unknown:
            raise TypeError(f'unknown options {sorted(unknown)}')
        with self._lock:
            self.mode = changes.pop('mode', self.mode)
            self.resolution = changes.pop('resolution', self.resolution)
            self.options = replace(self.options, **changes)
        if vocabulary_names is not None:
            self.set_vocabulary(vocabulary_names)

    def set_vocabulary(self, names):
        names = tuple(names)
        if not names:
            raise InputError('empty vocabulary')
        with self._lock:
            self._version += 1
            self.encoded_names.extend(names)
            vocab = Vocabulary(names=names, text_names=names, embeddings=torch.zeros(len(names), 2),
                               background=self.options.background, version=self._version)
            self._vocabulary = vocab
            return vocab

    def build_vocabulary(self, names, background=None):
        """Encode without installing (what ~/locate uses for names outside the vocabulary)."""
        names = tuple(names)
        with self._lock:
            self._version += 1
            self.built_names.append(names)
            return Vocabulary(names=names, text_names=names, embeddings=torch.zeros(len(names), 2),
                              background=self.options.background if background is None else bool(background),
                              version=self._version)

    def segment(self, image, *, vocabulary=None, options=None, output_size=None):
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
                and image.shape[2] == 3):
            raise InputError('need uint8 [H, W, 3] RGB')
        self.segment_calls += 1
        vocab = vocabulary or self._vocabulary
        options = options or self.options
        if self.delay:
            time.sleep(self.delay)
        return expected_result(image, vocab, options)


def expected_labels(rgb: np.ndarray, num_classes: int, background: bool) -> np.ndarray:
    """Label image (0 = background, class i = i + 1) that FakeSegmenter produces for ``rgb``."""
    h, w = rgb.shape[:2]
    stripes = (np.arange(w) * num_classes // w) + 1
    labels = np.broadcast_to(stripes[None, :], (h, w)).copy()
    if background:
        labels[rgb[:, :, 0] < 10] = 0
    return labels


def expected_result(rgb, vocab, options) -> SegmentationResult:
    n = len(vocab.names)
    h, w = rgb.shape[:2]
    bg = bool(options.background)
    labels_bg0 = expected_labels(rgb, n, bg)
    scores = np.full((n + (1 if bg else 0), h, w), 0.1, np.float32)
    for k in range(n):
        scores[k + (1 if bg else 0)][labels_bg0 == k + 1] = 0.9
    if bg:
        scores[0] = options.background_threshold
    labels = labels_bg0 if bg else labels_bg0 - 1
    names = (('background',) if bg else ()) + tuple(vocab.names)
    return SegmentationResult(scores=scores, labels=labels, class_names=names, has_background=bg,
                              vocabulary_version=vocab.version)


class FakeFactory:
    """segmenter_factory for the node: counts loads, can fail for chosen weight paths."""

    def __init__(self, delay: float = 0.0, fail_paths=(), load_time: float = 0.0) -> None:
        self.delay = delay
        self.fail_paths = set(fail_paths)
        self.load_time = load_time
        self.loads = []

    def __call__(self, settings):
        if self.load_time:
            time.sleep(self.load_time)
        for path in settings.weights().values():
            if path in self.fail_paths:
                raise CheckpointError(f'{path}: not a checkpoint (truncated file)')
        seg = FakeSegmenter(settings, delay=self.delay, tag=f'load{len(self.loads) + 1}')
        self.loads.append(seg)
        return seg


def wait_for(predicate, timeout=10.0, period=0.01, what='condition'):
    """Poll ``predicate`` until it returns a truthy value; fail the test with ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(period)
    raise AssertionError(f'timed out after {timeout} s waiting for {what}')


# ---------------------------------------------------------------- rclpy side of the tests
import threading as _threading  # noqa: E402
from collections import defaultdict  # noqa: E402

from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header, String  # noqa: E402

from talk2dino_ros.ros.qos import latched_qos, output_qos  # noqa: E402

NODE = '/talk2dino'


class Probe(Node):
    """The test's side: publishes images and vocabularies, records every output by topic."""

    def __init__(self, context):
        super().__init__('probe', context=context)
        self.lock = _threading.Lock()
        self.msgs = defaultdict(list)
        self.image_pub = self.create_publisher(
            Image, '/image', QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
        self.compressed_pub = self.create_publisher(
            CompressedImage, '/image/compressed', QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self.vocab_pub = self.create_publisher(String, '/t2d/vocab', latched_qos())
        self.stamp = 0

    def listen(self, topic, msg_type, qos=None):
        def store(msg):
            with self.lock:
                self.msgs[topic].append(msg)
        return self.create_subscription(msg_type, topic, store, qos or output_qos(depth=50))

    def got(self, topic):
        with self.lock:
            return list(self.msgs[topic])

    def next_header(self, frame_id='camera'):
        self.stamp += 1
        header = Header(frame_id=frame_id)
        header.stamp.sec, header.stamp.nanosec = 1000 + self.stamp, 123456789
        return header

    def output_for(self, topic, header):
        for msg in self.got(topic):
            if msg.header.stamp == header.stamp and msg.header.frame_id == header.frame_id:
                return msg
        return None

    def send(self, msg, topic=NODE + '/labels', timeout=10.0, compressed=False):
        """Publish until the output for this frame arrives on ``topic`` (covers discovery)."""
        deadline = time.monotonic() + timeout
        pub = self.compressed_pub if compressed else self.image_pub
        while time.monotonic() < deadline:
            pub.publish(msg)
            try:
                return wait_for(lambda: self.output_for(topic, msg.header), timeout=0.3)
            except AssertionError:
                continue
        raise AssertionError(f'no {topic} for frame {msg.header.stamp}')


