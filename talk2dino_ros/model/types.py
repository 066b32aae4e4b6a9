"""Plain data passed between the stages of the pipeline and returned to front ends."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import torch

BACKGROUND = 'background'


def confidence_mono8(confidence: np.ndarray) -> np.ndarray:
    """Scores clipped to 0..1 and scaled to 0..255 (rounded): the mono8 confidence image Nav2 reads."""
    return np.rint(np.clip(confidence, 0.0, 1.0) * 255.0).astype(np.uint8)


@dataclass(frozen=True)
class InferenceOptions:
    """Per-call post-processing switches shared by every method.

    ``background``: add a background class at index 0 (Talk2DINO: a constant channel equal to
    ``background_threshold``; CLIP-DINOiser: the text class 'background' plus its saliency rule).
    ``background_rule``: CLIP-DINOiser only; False keeps 'background' as a plain text class without the
    saliency rule (the authors' Pascal Context-60 protocol).
    """

    background: bool = False
    background_threshold: float = 0.55
    background_rule: bool = True
    bg_clean: bool = False
    pamr: bool = False
    pamr_iterations: int = 10
    pamr_dilations: Tuple[int, ...] = (1, 2, 4, 8, 12, 24)


@dataclass(frozen=True)
class Vocabulary:
    """An immutable vocabulary with its text embeddings; swapped atomically by the segmenter.

    ``names``: the user's classes (never containing the background). ``text_names``: the strings the
    method actually encoded, in score-channel order before any constant background channel.
    """

    names: Tuple[str, ...]
    text_names: Tuple[str, ...]
    embeddings: torch.Tensor  # [len(text_names), D], on the model device
    background: bool
    version: int

    @property
    def class_names(self) -> Tuple[str, ...]:
        """Names of the score channels, 'background' first when a background class is present."""
        return ((BACKGROUND,) + self.names) if self.background else self.names


class SegmentationResult:
    """Output of :meth:`Segmenter.segment` for one image, at the image's (or the requested output) size.

    ``scores``: float32 [C, H, W] final per-class scores before the (monotonic) softmax/argmax;
    channel 0 is the background when ``has_background``. ``labels``: int32 [H, W] argmax of ``scores``.

    Built either from host arrays (``scores``/``labels``) or lazily from a :class:`~talk2dino_ros.model.
    score_maps.ScoreMaps` (``maps``): then nothing is copied to the host and no full-resolution per-class map
    is made until an attribute or method asks for it, and only for the channels it needs. Safe to read
    from several threads.
    """

    def __init__(self, scores: Optional[np.ndarray] = None, labels: Optional[np.ndarray] = None,
                 class_names: Tuple[str, ...] = (), has_background: bool = False, vocabulary_version: int = 0,
                 timings: Optional[Dict[str, float]] = None, *, maps=None):
        if maps is None and (scores is None or labels is None):
            raise ValueError('SegmentationResult needs scores and labels, or lazy score maps')
        self._scores = scores
        self._labels = labels
        self._maps = maps
        self.class_names = tuple(class_names)
        self.has_background = bool(has_background)
        self.vocabulary_version = vocabulary_version
        self.timings: Dict[str, float] = dict(timings or {})
        self._cache: Dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (f'SegmentationResult(classes={self.class_names!r}, has_background={self.has_background}, '
                f'vocabulary_version={self.vocabulary_version}, size={self.size})')

    @property
    def size(self) -> Tuple[int, int]:
        """(height, width) of the label map."""
        if self._maps is not None:
            return self._maps.output_size
        return tuple(self._labels.shape[-2:])  # type: ignore[union-attr,return-value]

    def _cached(self, key: str, make) -> np.ndarray:
        with self._lock:
            value = self._cache.get(key)
            if value is None:
                value = make()
                self._cache[key] = value
            return value

    @property
    def scores(self) -> np.ndarray:
        """float32 [C, H, W] on the host (made and copied on first access when lazy)."""
        if self._scores is not None:
            return self._scores
        return self._cached('scores', lambda: self._maps.full_resolution().cpu().numpy())

    @property
    def labels(self) -> np.ndarray:
        """int32 [H, W] argmax of the scores, on the host."""
        if self._labels is not None:
            return self._labels
        return self._cached('labels', lambda: self._maps.labels().cpu().numpy())

    def labels_with_background_zero(self) -> np.ndarray:
        """Label map where 0 = background and vocabulary class i is i + 1 (the ROS label convention)."""
        if self.has_background:
            return self.labels
        return self.labels + 1

    def class_scores(self) -> np.ndarray:
        """Scores of the vocabulary classes only, [N, H, W]."""
        first = 1 if self.has_background else 0
        if self._maps is None or 'scores' in self._cache:
            return self.scores[first:]
        return self._cached('class_scores', lambda: self._maps.full_resolution(first).cpu().numpy())

    def confidence(self) -> np.ndarray:
        """Max vocabulary-class score per pixel, float32 [H, W]."""
        if self._maps is None or 'scores' in self._cache:
            return self.class_scores().max(axis=0).astype(np.float32, copy=False)
        first = 1 if self.has_background else 0
        return self._cached('confidence', lambda: self._maps.channel_max(first).cpu().numpy())

    def background_probability(self) -> np.ndarray:
        """Background map: the background channel if present, else 1 - max class score."""
        if self.has_background:
            if self._maps is None or 'scores' in self._cache:
                return self.scores[0].astype(np.float32, copy=False)
            return self._cached('background', lambda: self._maps.full_resolution(0, 1)[0].cpu().numpy())
        return (1.0 - self.confidence()).astype(np.float32, copy=False)
