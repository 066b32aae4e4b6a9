"""The one segmenter every front end calls: image + vocabulary -> scores, labels, maps.

Data flow: RGB uint8 image -> resize (benchmark keep-ratio / whole frame / squash) -> windows ->
method (backbone -> similarity -> per-window post-processing) -> merge -> resize back -> argmax.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from talk2dino_ros.class_names import name_key, name_problem
from talk2dino_ros.errors import InputError, Talk2DinoError
from talk2dino_ros.model.methods import get_builder, weight_roles
from talk2dino_ros.model.methods.base import SegmentationMethod
from talk2dino_ros.model.text import TextEmbeddingCache
from talk2dino_ros.model.types import InferenceOptions, SegmentationResult, Vocabulary
from talk2dino_ros.model.windows import (merge_windows, resize_scores, resize_uint8, rescale_size,
                                         round_to_multiple, slide_windows)

MODES = ('slide', 'whole', 'squash')
MAX_IMAGE_SIDE = 16384


@dataclass(frozen=True)
class SegmenterConfig:
    """Everything needed to build a segmenter; front ends fill it from flags/parameters."""

    method: str = 'talk2dino'
    variant: str = 'vitb'
    weights: Mapping[str, str] = field(default_factory=dict)
    device: str = 'auto'
    fp16: bool = False  # autocast: fp16 on CUDA, bf16 on CPU (faster, not exact)
    mode: str = 'slide'
    resolution: int = 448
    window: int = 448
    stride: int = 224
    max_long_side: int = 2048
    options: InferenceOptions = InferenceOptions()
    text_cache_size: int = 4096
    allow_random_weights: bool = False

    def validate(self) -> None:
        if self.mode not in MODES:
            raise Talk2DinoError(f'mode must be one of {MODES}, got {self.mode!r}')
        if self.resolution < 14 or self.window < 14 or self.stride < 1:
            raise Talk2DinoError('resolution and window must be >= 14 and stride >= 1')
        if self.stride > self.window:
            raise Talk2DinoError(f'stride ({self.stride}) must not exceed the window ({self.window})')
        resolve_device(self.device)


def resolve_device(spec: str) -> torch.device:
    """'auto' -> cuda when available else cpu; 'cuda' without a GPU is an error, not a silent CPU run."""
    spec = (spec or 'auto').strip().lower()
    if spec == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if spec.startswith('cuda'):
        if not torch.cuda.is_available():
            raise Talk2DinoError(f'device {spec!r} requested but CUDA is not available (use device auto or cpu)')
        return torch.device(spec)
    if spec == 'cpu':
        return torch.device('cpu')
    raise Talk2DinoError(f'device must be auto, cpu or cuda[:N], got {spec!r}')


def validate_image(image: np.ndarray) -> np.ndarray:
    """Accept only HxWx3 uint8 RGB; never reshape silently."""
    if not isinstance(image, np.ndarray):
        raise InputError(f'image must be a numpy array, got {type(image).__name__}')
    if image.dtype != np.uint8:
        raise InputError(f'image must be uint8 RGB, got dtype {image.dtype}')
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f'image must have shape [H, W, 3] (RGB), got {list(image.shape)}')
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InputError(f'image has zero size {list(image.shape)}')
    if max(image.shape[:2]) > MAX_IMAGE_SIDE:
        raise InputError(f'image side {max(image.shape[:2])} exceeds {MAX_IMAGE_SIDE} pixels')
    return np.ascontiguousarray(image)


def validate_names(names: Sequence[str]) -> Tuple[str, ...]:
    """The names as a tuple; InputError for an empty list, an unusable name or duplicates (NFKC + case fold)."""
    if isinstance(names, str):
        raise InputError('vocabulary must be a sequence of class names, not one string')
    out = tuple(names)
    if not out:
        raise InputError('vocabulary is empty: give at least one class name')
    first: Dict[str, str] = {}  # comparison key -> first spelling
    dup: List[str] = []
    for n in out:
        if not isinstance(n, str) or not n.strip():
            raise InputError(f'invalid class name {n!r}: names must be non-empty strings')
        problem = name_problem(n)
        if problem:
            raise InputError(f'invalid class name {ascii(n)}: {problem}')
        # CLIP lower-cases its input, so NFKC/case variants ('Cat', full-width 'ｃａｔ') are one class
        key = name_key(n)
        if key in first:
            dup.append(n if n == first[key] else f'{n} (same as {first[key]})')
        else:
            first[key] = n
    if dup:
        raise InputError(f'duplicate class names: {ascii(sorted(set(dup)))}')
    return out


class Segmenter:
    """Thread-safe front door of the model: vocabulary management + per-image inference."""

    def __init__(self, method: SegmentationMethod, config: SegmenterConfig):
        config.validate()
        self.config = config
        self.device = resolve_device(config.device)
        self.method = method.to(self.device).eval()
        self._cache = TextEmbeddingCache(self._encode_names, max_entries=config.text_cache_size)
        self._vocabulary: Optional[Vocabulary] = None
        self._version = 0
        self._vocab_lock = threading.Lock()
        self._infer_lock = threading.Lock()
        self._apply_mode()

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_config(cls, config: SegmenterConfig) -> 'Segmenter':
        """Load the method's published weight files (``config.weights``: role -> path) and build a segmenter."""
        config.validate()
        for role in weight_roles(config.method, config.variant):
            if not config.weights.get(role):
                raise Talk2DinoError(f'{config.method} needs a {role} weight file (run `fetch_weights` '
                                     'and pass its path)')
        builder = get_builder(config.method)
        method = builder(config.weights, variant=config.variant, allow_test_width=config.allow_random_weights)
        return cls(method, config)

    def _apply_mode(self) -> None:
        if hasattr(self.method, 'squash_to'):
            self.method.squash_to = self.config.resolution if self.config.mode == 'squash' else None
        if hasattr(self.method, 'slide_square'):
            self.method.slide_square = self.config.mode == 'slide'

    @property
    def text_cache(self) -> TextEmbeddingCache:
        return self._cache

    @property
    def options(self) -> InferenceOptions:
        return self.config.options

    def with_options(self, **changes) -> None:
        """Change inference options or geometry (mode, resolution, ...) atomically for later frames."""
        opt_fields = {f.name for f in dataclasses.fields(InferenceOptions)}
        opt_changes = {k: v for k, v in changes.items() if k in opt_fields}
        cfg_changes = {k: v for k, v in changes.items() if k not in opt_fields}
        bad = set(cfg_changes) - {'mode', 'resolution', 'window', 'stride', 'max_long_side'}
        if bad:
            raise Talk2DinoError(f'cannot change {sorted(bad)} on a built segmenter')
        options = dataclasses.replace(self.config.options, **opt_changes)
        new = dataclasses.replace(self.config, options=options, **cfg_changes)
        new.validate()
        with self._infer_lock:
            old_bg = self.config.options.background
            self.config = new
            self._apply_mode()
        if self._vocabulary is not None and options.background != old_bg:
            self.set_vocabulary(self._vocabulary.names)

    # ---------------------------------------------------------------- vocabulary
    def _encode_names(self, names: List[str]) -> torch.Tensor:
        with torch.inference_mode():
            return self.method.encode_text(names).float()

    @property
    def vocabulary(self) -> Optional[Vocabulary]:
        return self._vocabulary

    def build_vocabulary(self, names: Sequence[str], background: Optional[bool] = None) -> Vocabulary:
        """Encode (only uncached names) into a new immutable vocabulary without installing it."""
        names = validate_names(names)
        bg = self.config.options.background if background is None else background
        text_names = tuple(self.method.text_names(names, bg))
        emb = self._cache.get_many(text_names)
        with self._vocab_lock:
            self._version += 1
            version = self._version
        return Vocabulary(names, text_names, emb, bg, version)

    def set_vocabulary(self, names: Sequence[str]) -> Vocabulary:
        """Validate, encode what is new, and swap the vocabulary atomically (one reference assignment)."""
        vocab = self.build_vocabulary(names)
        self._vocabulary = vocab
        return vocab

    # ---------------------------------------------------------------- inference
    def _prepare(self, image: np.ndarray, cfg: SegmenterConfig) -> np.ndarray:
        H, W = image.shape[:2]
        if cfg.mode == 'slide':
            h, w = rescale_size(H, W, cfg.resolution, cfg.max_long_side)
        elif cfg.mode == 'whole':
            h, w = rescale_size(H, W, cfg.resolution, cfg.max_long_side)
            h, w = round_to_multiple(h, w, self.method.patch_size)
        else:  # squash: the method resizes the window to resolution² itself
            h, w = H, W
        return resize_uint8(image, h, w)

    def segment(self, image: np.ndarray, *, vocabulary: Optional[Vocabulary] = None,
                options: Optional[InferenceOptions] = None,
                output_size: Optional[Tuple[int, int]] = None) -> SegmentationResult:
        """Segment one RGB uint8 image; scores/labels come back at ``output_size`` (default: the input's)."""
        image = validate_image(image)
        vocab = vocabulary or self._vocabulary
        if vocab is None:
            raise InputError('no vocabulary set: call set_vocabulary([...]) first')
        timings: Dict[str, float] = {}
        t0 = time.perf_counter()
        # the lock keeps this frame's config snapshot and the method's mode flags (set by with_options)
        # consistent from the resize to the last window
        with self._infer_lock:
            cfg = self.config
            opts = options or cfg.options
            if opts.background != vocab.background:
                opts = dataclasses.replace(opts, background=vocab.background)
            resized = self._prepare(image, cfg)
            h, w = resized.shape[:2]
            if cfg.mode == 'slide':
                wins = slide_windows(h, w, cfg.window, cfg.stride)
            else:
                wins = slide_windows(h, w, max(h, w), max(h, w))
            tensor = torch.from_numpy(resized).to(self.device).permute(2, 0, 1).float()
            crops = [tensor[:, win.y1:win.y2, win.x1:win.x2] for win in wins]
            timings['preprocess'] = time.perf_counter() - t0
            t1 = time.perf_counter()
            # half precision is opt-in and not bit-exact: fp16 autocast on CUDA, bf16 autocast on CPU
            amp_dtype = torch.float16 if self.device.type == 'cuda' else torch.bfloat16
            with torch.inference_mode(), \
                    torch.autocast(device_type=self.device.type, dtype=amp_dtype, enabled=cfg.fp16):
                # windows of equal size (all but degenerate cases) go through the backbone as one batch
                outs: List[torch.Tensor] = [None] * len(crops)  # type: ignore[list-item]
                by_shape: Dict[Tuple[int, int], List[int]] = {}
                for i, c in enumerate(crops):
                    by_shape.setdefault(tuple(c.shape[-2:]), []).append(i)
                for idx in by_shape.values():
                    batch = torch.stack([crops[i] for i in idx])
                    scores = self.method.window_scores(batch, vocab.embeddings, opts).float()
                    for j, i in enumerate(idx):
                        outs[i] = scores[j]
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        timings['model'] = time.perf_counter() - t1
        t2 = time.perf_counter()
        merged = merge_windows(outs, wins, h, w)
        H, W = output_size or image.shape[:2]
        final = resize_scores(merged, H, W)
        labels = final.argmax(dim=0)
        scores_np = final.cpu().numpy().astype(np.float32, copy=False)
        labels_np = labels.to(torch.int32).cpu().numpy()
        timings['postprocess'] = time.perf_counter() - t2
        timings['total'] = time.perf_counter() - t0
        return SegmentationResult(scores_np, labels_np, vocab.class_names, vocab.background, vocab.version, timings)
