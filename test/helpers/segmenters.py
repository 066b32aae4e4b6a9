"""Stand-ins for the engine's Segmenter: a fast striped fake for the node tests, an oracle for the demo scene.

FakeSegmenter labels pixel (y, x) of a W-wide image with vocabulary class ``x * N // W`` (vertical
stripes), except that pixels whose red channel is below 10 are background when the background class
is enabled. So a test can predict every label from the RGB image it sent.
"""
from __future__ import annotations

import threading
import time
from dataclasses import fields, replace
from typing import Dict, Tuple

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


class OracleSegmenter:
    """Labels a demo-bag frame by its nearest palette colour, so its mIoU on the demo bag is 100."""

    def __init__(self, palette: Dict[str, Tuple[int, int, int]]):
        self.palette = palette
        self.options = InferenceOptions()
        self.calls = 0
        self._version = 0

    def set_vocabulary(self, names):
        self._version += 1
        return Vocabulary(tuple(names), tuple(names), torch.zeros(len(names), 1), False, self._version)

    def segment(self, image, *, vocabulary=None, options=None, output_size=None):
        self.calls += 1
        colours = np.array([self.palette[n] for n in vocabulary.names], np.float32)
        dist = ((image[:, :, None, :].astype(np.float32) - colours[None, None]) ** 2).sum(-1)
        scores = -np.moveaxis(dist, 2, 0)
        return SegmentationResult(scores, scores.argmax(0).astype(np.int32), vocabulary.names, False,
                                  vocabulary.version)
