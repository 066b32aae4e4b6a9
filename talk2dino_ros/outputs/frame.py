"""The output images of one segmented frame, built once for every front end (node, bag tool, image tool).

ROS-free: plain numpy arrays, so the node, ``segment_bag`` and ``segment_image`` share one definition of
each output and one label rule. Only the outputs asked for are computed (a caller passes the set of
outputs somebody will read), so an unread confidence map or overlay costs nothing.

Label convention: 0 = background, vocabulary class ``i`` (0-based) = ``i + 1``. Labels are mono8 while
every label id fits in 0..255 and mono16 above (:func:`label_dtype`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import AbstractSet, Any, Dict, Iterable, Optional, Sequence

import numpy as np

from talk2dino_ros.model.types import BACKGROUND, confidence_mono8

#: every output :func:`build_frame_outputs` can produce ('labels' is always built)
LABELS = 'labels'
CONFIDENCE = 'confidence'
CONFIDENCE_MONO8 = 'confidence_mono8'
BACKGROUND_MAP = 'background'
OVERLAY = 'overlay'
MASKS = 'masks'
OUTPUT_NAMES = (LABELS, CONFIDENCE, CONFIDENCE_MONO8, BACKGROUND_MAP, OVERLAY, MASKS)

MASK_BINARY = 'binary'
MASK_SCORE = 'score'
MASK_TYPES = (MASK_BINARY, MASK_SCORE)


def label_dtype(max_label_id: int) -> type:
    """The one label rule: uint8 (mono8) while every label id 0..max_label_id fits a byte, else uint16."""
    if max_label_id > np.iinfo(np.uint16).max:
        raise ValueError(f'label id {max_label_id} does not fit a 16-bit label image')
    return np.uint8 if max_label_id <= np.iinfo(np.uint8).max else np.uint16


def label_encoding(max_label_id: int) -> str:
    """'mono8' or 'mono16' for label ids up to ``max_label_id`` (see :func:`label_dtype`)."""
    return 'mono8' if label_dtype(max_label_id) is np.uint8 else 'mono16'


def binary_mask(labels_bg0: np.ndarray, class_id: int) -> np.ndarray:
    """mono8 mask, 255 where the label is ``class_id``."""
    return (labels_bg0 == class_id).astype(np.uint8) * np.uint8(255)


@dataclass
class FrameImages:
    """The outputs of one frame; an output that was not asked for is None (``masks`` then empty).

    ``labels``: uint8/uint16 [H, W] in the label convention above. ``confidence``/``background``: float32
    [H, W]. ``confidence_mono8``: uint8 [H, W]. ``overlay``: uint8 [H, W, 3] RGB. ``masks``: class id
    (1-based) -> mono8 0/255 mask (``mask_type`` binary) or float32 class score map (``mask_type`` score).
    """

    labels: np.ndarray
    num_classes: int
    confidence: Optional[np.ndarray] = None
    confidence_mono8: Optional[np.ndarray] = None
    background: Optional[np.ndarray] = None
    overlay: Optional[np.ndarray] = None
    mask_type: str = MASK_BINARY
    masks: Dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def label_encoding(self) -> str:
        """'mono8' or 'mono16', by the one label rule."""
        return label_encoding(self.num_classes)


def _check_wanted(wanted: AbstractSet[str]) -> None:
    unknown = set(wanted) - set(OUTPUT_NAMES)
    if unknown:
        raise ValueError(f'unknown outputs {sorted(unknown)}; known: {", ".join(OUTPUT_NAMES)}')


def build_frame_outputs(result: Any, wanted: AbstractSet[str] = frozenset({LABELS}), *,
                        rgb: Optional[np.ndarray] = None, colors: Optional[np.ndarray] = None,
                        names: Optional[Sequence[str]] = None, overlay_alpha: float = 0.5,
                        mask_ids: Optional[Iterable[int]] = None, mask_type: str = MASK_BINARY,
                        banner: str = '') -> FrameImages:
    """Build the wanted outputs of a frame from its :class:`~talk2dino_ros.model.types.SegmentationResult`.

    ``wanted``: names from :data:`OUTPUT_NAMES`; the labels are always built (every other output derives
    from them). ``rgb`` (the frame) and ``colors`` (uint8 [N + 1, 3], row 0 = background) are needed for
    the overlay; ``names`` are the vocabulary classes (default: the result's). ``mask_ids``: the class ids
    (1-based) to build masks for when 'masks' is wanted (default: every class). ``banner``: a warning
    across the top of the overlay (random weights), above its legend. Raises ``ValueError`` when
    the engine's label map does not have the frame's size or an output lacks what it needs.
    """
    _check_wanted(wanted)
    if mask_type not in MASK_TYPES:
        raise ValueError(f'mask_type must be one of {", ".join(MASK_TYPES)}, got {mask_type!r}')
    class_names = tuple(result.class_names)
    vocab = tuple(names) if names is not None else (class_names[1:] if result.has_background else class_names)
    n = len(vocab)
    labels = result.labels_with_background_zero()
    if rgb is not None and labels.shape != rgb.shape[:2]:
        raise ValueError(f'engine returned labels {labels.shape} for an image {rgb.shape[:2]}')
    out = FrameImages(labels=labels.astype(label_dtype(n), copy=False), num_classes=n, mask_type=mask_type)

    confidence = None
    if CONFIDENCE in wanted or CONFIDENCE_MONO8 in wanted:
        confidence = result.confidence()
    if CONFIDENCE in wanted:
        out.confidence = np.ascontiguousarray(confidence, dtype=np.float32)
    if CONFIDENCE_MONO8 in wanted:
        out.confidence_mono8 = confidence_mono8(confidence)
    if BACKGROUND_MAP in wanted:
        out.background = np.ascontiguousarray(result.background_probability(), dtype=np.float32)
    if MASKS in wanted:
        ids = range(1, n + 1) if mask_ids is None else sorted(set(int(i) for i in mask_ids))
        if mask_type == MASK_SCORE:
            scores = result.class_scores()
            out.masks = {i: np.ascontiguousarray(scores[i - 1], dtype=np.float32) for i in ids}
        else:
            out.masks = {i: binary_mask(labels, i) for i in ids}
    if OVERLAY in wanted:
        if rgb is None or colors is None:
            raise ValueError('the overlay needs the frame (rgb) and the class colours')
        from talk2dino_ros.outputs.overlay import make_overlay

        out.overlay = make_overlay(rgb, labels, colors, (BACKGROUND,) + vocab, alpha=float(overlay_alpha),
                                   banner=banner)
    return out
