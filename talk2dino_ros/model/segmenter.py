"""The one segmenter every front end calls: image + vocabulary -> scores, labels, maps.

Data flow: RGB uint8 image -> upload + resize on the model device (benchmark keep-ratio / whole frame /
squash) -> windows -> method (backbone -> patch-grid scores -> per-window maps, made class chunk by class
chunk) -> merged low-resolution scores -> labels at the output size (chunked argmax). Full-resolution
per-class maps are made only when a front end asks for them (:class:`SegmentationResult` is lazy).
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from talk2dino_ros import catalog
from talk2dino_ros.class_names import name_key, name_problem
from talk2dino_ros.errors import InputError, Talk2DinoError
from talk2dino_ros.model.methods import get_builder, weight_roles
from talk2dino_ros.model.fast_path import FastModule, select_backend
from talk2dino_ros.model.runtimes import check_backend
from talk2dino_ros.model.methods.base import SegmentationMethod
from talk2dino_ros.model.pamr import FUSED_PAMR
from talk2dino_ros.model.preprocess import to_model_input
from talk2dino_ros.model.score_maps import ScoreMaps
from talk2dino_ros.model.stage_timer import StageTimer
from talk2dino_ros.model.text import TextEmbeddingCache
from talk2dino_ros.model.types import InferenceOptions, SegmentationResult, Vocabulary
from talk2dino_ros.model.windows import Window, rescale_size, round_to_multiple, slide_windows

MODES = ('slide', 'whole', 'squash')
MAX_IMAGE_SIDE = 16384
#: window-resolution elements (windows x classes x pixels) made at once when scoring: 32 MiB of float32
WINDOW_CHUNK_ELEMENTS = 1 << 23


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
    #: 'auto' (CUDA graphs on CUDA, eager elsewhere), 'off', 'graph' (CUDA only) or 'compile' (torch.compile)
    fast_path: str = 'auto'
    #: what runs the backbone: 'torch', or an exported runtime ('openvino', 'onnxruntime', 'tensorrt')
    backend: str = 'torch'
    #: 'fp32', 'bf16' (CPUs with bf16 instructions) or 'fp16' (GPUs); for torch an autocast, like fp16
    precision: str = 'fp32'
    #: an export_model file for the exported backends ('' = built and cached next to the weights)
    exported_model: str = ''

    def validate(self) -> None:
        if self.mode not in MODES:
            raise Talk2DinoError(f'mode must be one of {MODES}, got {self.mode!r}')
        if self.resolution < 14 or self.window < 14 or self.stride < 1:
            raise Talk2DinoError('resolution and window must be >= 14 and stride >= 1')
        if self.stride > self.window:
            raise Talk2DinoError(f'stride ({self.stride}) must not exceed the window ({self.window})')
        device = resolve_device(self.device)
        check_backend(self.backend, self.precision, device)
        if self.exported_model and self.backend == 'torch':
            raise Talk2DinoError(f'exported_model {self.exported_model} is run by an exported backend: set backend '
                                 'to openvino, onnxruntime or tensorrt (or leave exported_model empty)')
        if self.backend != 'torch' and (self.fast_path or 'auto').strip().lower() in ('graph', 'compile'):
            raise Talk2DinoError(f'fast_path {self.fast_path} applies to backend torch only (backend '
                                 f'{self.backend} runs its own compiled network): use fast_path auto')
        select_backend(self.fast_path, device)

    def autocast_dtype(self, device: torch.device) -> Optional[torch.dtype]:
        """The torch autocast dtype of a frame, None for fp32 (exported backends keep torch's part fp32)."""
        if self.backend != 'torch':
            return None
        if self.precision != 'fp32':
            return torch.bfloat16 if self.precision == 'bf16' else torch.float16
        if self.fp16:  # half precision is opt-in and not bit-exact: fp16 autocast on CUDA, bf16 on CPU
            return torch.float16 if device.type == 'cuda' else torch.bfloat16
        return None


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

    def __init__(self, method: SegmentationMethod, config: SegmenterConfig,
                 on_event: Optional[Callable[[str], None]] = None):
        config.validate()
        self.config = config
        self.device = resolve_device(config.device)
        self.method = method.to(self.device).eval()
        self._cache = TextEmbeddingCache(self._encode_names, max_entries=config.text_cache_size)
        self._vocabulary: Optional[Vocabulary] = None
        self._version = 0
        self._vocab_lock = threading.Lock()
        self._infer_lock = threading.Lock()
        #: per-stage timings in every result; ``stage_timer.enabled`` adds device-synchronised sub-stages
        self.stage_timer = StageTimer(self.device)
        self.fast_module: Optional[FastModule] = None
        name = getattr(self.method, 'fast_path_module', '')
        #: the exported network when ``config.backend`` is not torch
        self.exported = None
        if config.backend != 'torch':
            from talk2dino_ros.model.exported_network import attach_backend
            self.exported = attach_backend(self.method, backend=config.backend, precision=config.precision,
                                           variant=config.variant, weights=dict(config.weights),
                                           device=self.device, exported_model=config.exported_model,
                                           on_event=on_event)
        backend = select_backend(config.fast_path, self.device) if self.exported is None else None
        if backend and name:
            # on_event: progress lines of the fast path (preparing / ready / failed), for the caller's log
            self.fast_module = FastModule(getattr(self.method, name), backend, capture_lock=self._infer_lock,
                                          on_event=on_event)
            setattr(self.method, name, self.fast_module)
            if self.device.type == 'cuda':  # PAMR as one kernel per iteration once built (eager until then)
                FUSED_PAMR.start(self.device)
        self._apply_mode()

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_config(cls, config: SegmenterConfig, on_event: Optional[Callable[[str], None]] = None) -> 'Segmenter':
        """Load the method's published weight files (``config.weights``: role -> path) and build a segmenter."""
        config.validate()
        for role in weight_roles(config.method, config.variant):
            if not config.weights.get(role):
                hint = catalog.unpublished_hint(config.method, config.variant)
                how = hint if hint and role not in catalog.get_variant(config.method, config.variant).published \
                    else 'run `fetch_weights` and pass its path'
                raise Talk2DinoError(f'{config.method} needs a {role} weight file ({how})')
        builder = get_builder(config.method)
        method = builder(config.weights, variant=config.variant, allow_test_width=config.allow_random_weights)
        return cls(method, config, on_event=on_event)

    def _apply_mode(self) -> None:
        if hasattr(self.method, 'squash_to'):
            self.method.squash_to = self.config.resolution if self.config.mode == 'squash' else None
        if hasattr(self.method, 'slide_square'):
            self.method.slide_square = self.config.mode == 'slide'

    @property
    def random_weights(self) -> bool:
        """True when the results mean nothing: a network of a test width was loaded, or the weights came in
        through the ``allow_random_weights`` path (which exists only for random test and timing files)."""
        return bool(self.config.allow_random_weights or getattr(self.method, 'test_width', False))

    @property
    def text_cache(self) -> TextEmbeddingCache:
        return self._cache

    @property
    def options(self) -> InferenceOptions:
        return self.config.options

    def with_options(self, *, vocabulary_names: Optional[Sequence[str]] = None, **changes) -> None:
        """Change inference options or geometry (mode, resolution, ...) atomically for later frames.

        ``vocabulary_names``: the vocabulary to install under the new options. A change of the background
        option re-encodes the vocabulary; given the names here, that happens once, for these names, not once
        for the old names and again for the new ones.
        """
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
        if vocabulary_names is not None:
            self.set_vocabulary(vocabulary_names)
        elif self._vocabulary is not None and options.background != old_bg:
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
    def _input_size(self, height: int, width: int, cfg: SegmenterConfig) -> Tuple[int, int]:
        """The size the frame is resized to before windowing."""
        if cfg.mode == 'slide':
            return rescale_size(height, width, cfg.resolution, cfg.max_long_side)
        if cfg.mode == 'whole':
            h, w = rescale_size(height, width, cfg.resolution, cfg.max_long_side)
            return round_to_multiple(h, w, self.method.patch_size)
        return height, width  # squash: the method resizes the window to resolution² itself

    def segment(self, image: np.ndarray, *, vocabulary: Optional[Vocabulary] = None,
                options: Optional[InferenceOptions] = None,
                output_size: Optional[Tuple[int, int]] = None) -> SegmentationResult:
        """Segment one RGB uint8 image; scores/labels come back at ``output_size`` (default: the input's)."""
        image = validate_image(image)
        vocab = self._require_vocabulary(vocabulary)
        return self._segment_group([image], vocab, options, [output_size])[0]

    def segment_batch(self, images: Sequence[np.ndarray], *, vocabulary: Optional[Vocabulary] = None,
                      options: Optional[InferenceOptions] = None) -> List[SegmentationResult]:
        """Segment several frames (e.g. the latest of each camera) with one backbone pass per frame size.

        Frames of the same size share one batch; each result equals segmenting that frame alone (up to
        the batched kernels' rounding) and comes back in input order.
        """
        if isinstance(images, np.ndarray) and images.ndim != 4:
            raise InputError('segment_batch takes a sequence of [H, W, 3] images')
        frames = [validate_image(img) for img in images]
        if not frames:
            return []
        vocab = self._require_vocabulary(vocabulary)
        groups: Dict[Tuple[int, int], List[int]] = {}
        for i, img in enumerate(frames):
            groups.setdefault(img.shape[:2], []).append(i)
        results: List[Optional[SegmentationResult]] = [None] * len(frames)
        for idx in groups.values():
            for i, res in zip(idx, self._segment_group([frames[i] for i in idx], vocab, options, [None] * len(idx))):
                results[i] = res
        return results  # type: ignore[return-value]

    def _require_vocabulary(self, vocabulary: Optional[Vocabulary]) -> Vocabulary:
        vocab = vocabulary or self._vocabulary
        if vocab is None:
            raise InputError('no vocabulary set: call set_vocabulary([...]) first')
        return vocab

    def _segment_group(self, images: List[np.ndarray], vocab: Vocabulary, options: Optional[InferenceOptions],
                       output_sizes: List[Optional[Tuple[int, int]]]) -> List[SegmentationResult]:
        """Frames of one size -> results. Window maps are made in class chunks and summed straight into one
        low-resolution canvas per frame (in window order, as a single merge would)."""
        timer = self.stage_timer.start()
        H, W = images[0].shape[:2]
        # the lock keeps this call's config snapshot and the method's mode flags (set by with_options)
        # consistent from the resize to the last window; captured-graph outputs are consumed under it too
        with self._infer_lock:
            cfg = self.config
            opts = options or cfg.options
            if opts.background != vocab.background:
                opts = dataclasses.replace(opts, background=vocab.background)
            h, w = self._input_size(H, W, cfg)
            frames = to_model_input(images, (h, w), self.device)  # [N, 3, h, w]
            if cfg.mode == 'slide':
                wins = slide_windows(h, w, cfg.window, cfg.stride)
            else:
                wins = slide_windows(h, w, max(h, w), max(h, w))
            # windows of equal size (all but degenerate cases) of every frame go through the backbone as one batch
            members: Dict[Tuple[int, int], List[Tuple[int, Window]]] = {}
            for n in range(len(images)):
                for win in wins:
                    members.setdefault((win.y2 - win.y1, win.x2 - win.x1), []).append((n, win))
            timer.mark('preprocess')
            amp_dtype = cfg.autocast_dtype(self.device)
            canvases: List[Optional[torch.Tensor]] = [None] * len(images)
            off_dtype = torch.float16 if self.device.type == 'cuda' else torch.bfloat16  # unused while disabled
            with torch.inference_mode(), torch.autocast(device_type=self.device.type, dtype=amp_dtype or off_dtype,
                                                        enabled=amp_dtype is not None):
                for group in members.values():
                    batch = torch.stack([frames[n, :, win.y1:win.y2, win.x1:win.x2] for n, win in group])
                    stages = self.method.window_stages(batch, vocab.embeddings, opts)
                    timer.mark('backbone')
                    C = stages.channels
                    wh, ww = batch.shape[-2:]
                    chunk = max(1, WINDOW_CHUNK_ELEMENTS // max(1, len(group) * wh * ww))
                    for start in range(0, C, chunk):
                        stop = min(C, start + chunk)
                        part = stages.render(start, stop).float()
                        for j, (n, win) in enumerate(group):
                            if canvases[n] is None:  # after the first render: its temporaries are gone by now
                                canvases[n] = torch.zeros((C, h, w), dtype=torch.float32, device=self.device)
                            canvases[n][start:stop, win.y1:win.y2, win.x1:win.x2] += part[j]
                        del part
                    del stages
                    timer.mark('windows')
                count = torch.zeros((1, h, w), dtype=torch.float32, device=self.device)
                for win in wins:
                    count[:, win.y1:win.y2, win.x1:win.x2] += 1
                results = []
                for n, canvas in enumerate(canvases):
                    canvas.div_(count)
                    maps = ScoreMaps(canvas, output_sizes[n] or (H, W))
                    maps.labels()  # labels are always published: made now, copied to the host on first read
                    results.append(maps)
                timer.mark('labels')
        timings = timer.finish()
        return [SegmentationResult(class_names=vocab.class_names, has_background=vocab.background,
                                   vocabulary_version=vocab.version, timings=dict(timings), maps=maps)
                for maps in results]

    # ---------------------------------------------------------------- fast path
    def prepare(self, sizes: Sequence[Tuple[int, int]], *, batch: int = 1, options: Optional[InferenceOptions] = None,
                timeout: Optional[float] = None) -> Dict:
        """Prepare the fast path for frames of these (height, width) sizes (``batch`` frames at once) and
        wait for it: call at load and when the stream's shape changes. Returns the fast-path states
        (empty when the fast path is off). Runs one eager frame per size to learn the backbone's inputs."""
        if self.fast_module is None:
            return {}
        vocab = self._vocabulary or self.build_vocabulary(['object'])
        for (height, width) in sizes:
            frames = [np.zeros((height, width, 3), np.uint8)] * batch
            self._segment_group(frames, vocab, options, [None] * batch)
        return self.wait_fast_path(timeout)

    def wait_fast_path(self, timeout: Optional[float] = None) -> Dict:
        """Wait until every queued fast-path preparation (and the fused PAMR build on CUDA) is done."""
        if self.fast_module is None:
            return {}
        states = self.fast_module.wait(timeout)
        if self.device.type == 'cuda':
            FUSED_PAMR.wait(self.device, timeout)
        return states

    def fast_path_status(self) -> Dict:
        """Backbone input key -> 'preparing' | 'ready' | 'failed: ...', plus 'pamr' on CUDA (empty when off)."""
        if self.fast_module is None:
            return {}
        states: Dict = dict(self.fast_module.states())
        if self.device.type == 'cuda':
            states['pamr'] = FUSED_PAMR.state(self.device)
        return states
