"""Plain data passed between the stages of the pipeline and returned to front ends."""
from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass
class SegmentationResult:
    """Output of :meth:`Segmenter.segment` for one image, at the image's resolution.

    ``scores``: float32 [C, H, W] final per-class scores before the (monotonic) softmax/argmax;
    channel 0 is the background when ``has_background``. ``labels``: [H, W] argmax of ``scores``.
    """

    scores: np.ndarray
    labels: np.ndarray
    class_names: Tuple[str, ...]
    has_background: bool
    vocabulary_version: int
    timings: Dict[str, float] = field(default_factory=dict)

    def labels_with_background_zero(self) -> np.ndarray:
        """Label map where 0 = background and vocabulary class i is i + 1 (the ROS label convention)."""
        if self.has_background:
            return self.labels
        return self.labels + 1

    def class_scores(self) -> np.ndarray:
        """Scores of the vocabulary classes only, [N, H, W]."""
        return self.scores[1:] if self.has_background else self.scores

    def confidence(self) -> np.ndarray:
        """Max vocabulary-class score per pixel, float32 [H, W]."""
        return self.class_scores().max(axis=0).astype(np.float32, copy=False)

    def background_probability(self) -> np.ndarray:
        """Background map: the background channel if present, else 1 - max class score."""
        if self.has_background:
            return self.scores[0].astype(np.float32, copy=False)
        return (1.0 - self.confidence()).astype(np.float32, copy=False)
