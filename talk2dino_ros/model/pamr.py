"""PAMR (pixel-adaptive mask refinement), vectorised.

The reference formulation stacks 48 shifted copies of every class map ([B, N, 48, H, W]) in each of
the 10 iterations. Here the affinity [B, 48, H, W] is computed once (it depends only on the image),
the mask is replicate-padded once per iteration by the largest dilation (replicate padding by 24
gives the same values as padding by d at every coordinate a dilation-d neighbour can reach), and
the 48 weighted neighbours are accumulated in place from strided views, so no 48x intermediate is
ever built. Classes are processed in chunks to keep the working set small (cache friendly).
"""
from __future__ import annotations

import threading
import time
from typing import Dict, Iterator, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from talk2dino_ros.errors import InputError

DEFAULT_DILATIONS: Tuple[int, ...] = (1, 2, 4, 8, 12, 24)

# The 8 neighbour directions (dy, dx), row-major over the 3x3 stencil without its centre.
NEIGHBOURS: Tuple[Tuple[int, int], ...] = tuple(
    (dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))
_STENCIL: Tuple[Tuple[int, int], ...] = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))

# Classes refined together: measured fastest on a 2-core CPU at 448x448 (N=5 and N=30); larger
# chunks leave the cache, smaller ones pay per-op overhead.
CLASS_CHUNK = 5


def _shifts(padded: torch.Tensor, pad: int, height: int, width: int, dilations: Sequence[int],
            stencil: Sequence[Tuple[int, int]]) -> Iterator[torch.Tensor]:
    """Yield views x(p + d*o) of the unpadded map for every dilation d and offset o (d-major)."""
    for d in dilations:
        for dy, dx in stencil:
            y0 = pad + dy * d
            x0 = pad + dx * d
            yield padded[..., y0:y0 + height, x0:x0 + width]


def pamr_affinity(image: torch.Tensor, dilations: Sequence[int] = DEFAULT_DILATIONS) -> torch.Tensor:
    """Neighbour weights [B, 8*len(dilations), H, W] (softmax over dim 1) of an RGB image [B, 3, H, W]."""
    image = image.float() if not image.is_floating_point() else image
    _, _, height, width = image.shape
    pad = max(dilations)
    padded = F.pad(image, [pad] * 4, mode='replicate')
    # Local standard deviation over the 9*len(dilations) stencil values, two-pass for accuracy.
    n_values = len(_STENCIL) * len(dilations)
    total = torch.zeros_like(image)
    for view in _shifts(padded, pad, height, width, dilations, _STENCIL):
        total += view
    mean = total / n_values
    sq_dev = torch.zeros_like(image)
    for view in _shifts(padded, pad, height, width, dilations, _STENCIL):
        sq_dev += (view - mean).square()
    std = (sq_dev / (n_values - 1)).sqrt()
    inv_scale = 1.0 / (1e-8 + 0.1 * std)  # [B, 3, H, W]
    logits = torch.stack([
        -((image - view).abs() * inv_scale).mean(1)
        for view in _shifts(padded, pad, height, width, dilations, NEIGHBOURS)], dim=1)
    return torch.softmax(logits, dim=1)


def pamr_apply(affinity: torch.Tensor, masks: torch.Tensor, iterations: int,
               dilations: Sequence[int] = DEFAULT_DILATIONS, class_chunk: int = CLASS_CHUNK) -> torch.Tensor:
    """Run ``iterations`` propagation steps of masks [B, N, H, W] with a precomputed affinity."""
    batch, n_classes, height, width = masks.shape
    if iterations <= 0 or n_classes == 0:
        return masks.clone()
    fused = FUSED_PAMR.get(masks.device, dilations) if masks.dtype == torch.float32 else None
    if fused is not None:
        return pamr_propagate(affinity, masks, iterations, tuple(int(d) for d in dilations), step=fused)
    pad = max(dilations)
    weights = affinity.unsqueeze(2).unbind(1)  # 48 x [B, 1, H, W], broadcast over classes
    out = torch.empty_like(masks)
    for start in range(0, n_classes, class_chunk):
        current = masks[:, start:start + class_chunk]
        for _ in range(iterations):
            padded = F.pad(current, [pad] * 4, mode='replicate')
            views = _shifts(padded, pad, height, width, dilations, NEIGHBOURS)
            nxt = next(views) * weights[0]
            for weight, view in zip(weights[1:], views):
                nxt.addcmul_(view, weight)
            current = nxt
        out[:, start:start + class_chunk] = current
    return out


def pamr_step(current: torch.Tensor, affinity: torch.Tensor,
              dilations: Tuple[int, ...] = DEFAULT_DILATIONS) -> torch.Tensor:
    """One propagation of all classes at once: the weighted sum of the 48 shifted views, out of place.

    Written for fusion: compiled (:class:`FusedPamr`) it is one kernel (replicate padding becomes index
    clamping), which is what makes PAMR cheap on a GPU. Same terms in the same order as :func:`pamr_apply`
    (only the rounding of multiply-adds may differ, far below 1e-5).
    """
    _, _, height, width = current.shape
    pad = max(dilations)
    padded = F.pad(current, [pad] * 4, mode='replicate')
    views = list(_shifts(padded, pad, height, width, dilations, NEIGHBOURS))
    nxt = views[0] * affinity[:, 0:1]
    for k in range(1, len(views)):
        nxt = nxt + views[k] * affinity[:, k:k + 1]
    return nxt


def pamr_propagate(affinity: torch.Tensor, masks: torch.Tensor, iterations: int,
                   dilations: Tuple[int, ...] = DEFAULT_DILATIONS, step=pamr_step) -> torch.Tensor:
    """``iterations`` applications of ``step`` (:func:`pamr_step` or its fused build) to masks [B, N, H, W]."""
    current = masks
    for _ in range(iterations):
        current = step(current, affinity, dilations)
    return current


class FusedPamr:
    """``torch.compile`` of :func:`pamr_step`, built once per device on a background thread.

    Until it is ready (or if building fails) :func:`pamr_apply` stays on the eager path, so no frame
    ever waits for a compilation. Shapes are compiled dynamically: a new frame size or vocabulary size
    reuses the kernels. The segmenter starts it with its fast path.
    """

    def __init__(self, dilations: Tuple[int, ...] = DEFAULT_DILATIONS,
                 check_shapes: Tuple[Tuple[int, int, int], ...] = ((6, 448, 448), (3, 96, 128))):
        self.dilations = tuple(dilations)
        self.check_shapes = check_shapes  # (classes, height, width) built and checked against the eager step
        self._lock = threading.Lock()
        self._ready: Dict[str, object] = {}
        self._state: Dict[str, str] = {}
        self._threads: Dict[str, threading.Thread] = {}

    def state(self, device: torch.device) -> Optional[str]:
        with self._lock:
            return self._state.get(str(device))

    def start(self, device: torch.device, wait: bool = False) -> None:
        """Build the fused kernel for ``device`` (once); ``wait`` blocks until it is built or failed."""
        key = str(device)
        with self._lock:
            if key in self._state:
                thread = None
            else:
                self._state[key] = 'preparing'
                thread = threading.Thread(target=self._build, args=(device,), name='t2d-fused-pamr', daemon=True)
                self._threads[key] = thread
        if thread is not None:
            thread.start()
            if wait:
                thread.join()

    def wait(self, device: torch.device, timeout: Optional[float] = None) -> Optional[str]:
        """Wait for the build for ``device`` (if one was started); returns its state."""
        with self._lock:
            thread = self._threads.get(str(device))
        if thread is not None:
            thread.join(timeout)
        return self.state(device)

    def _build(self, device: torch.device) -> None:
        key = str(device)
        try:
            fn = torch.compile(pamr_step, dynamic=True)
            gen = torch.Generator().manual_seed(0)
            with torch.inference_mode():
                for n, h, w in self.check_shapes:  # two shapes: the dynamic kernel is built
                    aff = torch.softmax(torch.rand(1, 8 * len(self.dilations), h, w, generator=gen), 1).to(device)
                    masks = torch.rand(1, n, h, w, generator=gen).to(device)
                    got = fn(masks, aff, self.dilations)
                    ref = pamr_step(masks, aff, self.dilations)
                    if not torch.allclose(got, ref, atol=1e-5, rtol=0):
                        raise RuntimeError(f'fused PAMR differs from the eager one by {(got - ref).abs().max():.2e}')
        except Exception as exc:  # noqa: BLE001 - the eager path stays
            with self._lock:
                self._state[key] = f'failed: {type(exc).__name__}: {exc}'
            return
        with self._lock:
            self._ready[key] = fn
            self._state[key] = 'ready'

    def get(self, device: torch.device, dilations: Sequence[int] = DEFAULT_DILATIONS):
        """The fused step for ``device`` when built for these dilations, else None (use the eager path)."""
        if tuple(int(d) for d in dilations) != self.dilations:
            return None
        return self._ready.get(str(device))


#: the process-wide fused PAMR builds (one per device)
FUSED_PAMR = FusedPamr()


class PamrRefiner:
    """PAMR guided by one image batch [B, 3, H', W'] (RGB 0..255): the affinity is computed on the first
    call and reused, so the classes of a frame can be refined chunk by chunk at the cost of one affinity.
    Each class is refined independently: refining channel ranges separately equals refining them at once."""

    def __init__(self, image: torch.Tensor, iterations: int = 10, dilations: Sequence[int] = DEFAULT_DILATIONS):
        if image.dim() != 4:
            raise InputError(f'pamr expects an image [B,C,H,W], got {tuple(image.shape)}')
        self.dilations = tuple(int(d) for d in dilations)
        if not self.dilations or min(self.dilations) < 1:
            raise InputError(f'pamr dilations must be positive integers, got {self.dilations}')
        self.image = image
        self.iterations = iterations
        self._affinity: Optional[torch.Tensor] = None
        self._key: Optional[tuple] = None

    def release(self) -> None:
        """Drop the cached affinity (it is rebuilt if called again): frees it as soon as the last classes
        are refined, as a single :func:`pamr` call would."""
        self._affinity = None
        self._key = None

    def __call__(self, masks: torch.Tensor) -> torch.Tensor:
        """Refined masks [B, N, H, W], computed in float32 (float64 kept), returned in the masks' dtype."""
        image = self.image
        if masks.dim() != 4 or image.shape[0] != masks.shape[0]:
            raise InputError(f'pamr expects image [B,C,H,W] and masks [B,N,H,W] with the same B, '
                             f'got {tuple(image.shape)} and {tuple(masks.shape)}')
        work_dtype = torch.float64 if masks.dtype == torch.float64 else torch.float32
        key = (work_dtype, masks.device, tuple(masks.shape[-2:]))
        if self._affinity is None or self._key != key:
            image = image.to(device=masks.device, dtype=work_dtype)
            if image.shape[-2:] != masks.shape[-2:]:
                image = F.interpolate(image, size=masks.shape[-2:], mode='bilinear', align_corners=True)
            self._affinity = pamr_affinity(image, self.dilations)
            self._key = key
        refined = pamr_apply(self._affinity, masks.to(work_dtype), self.iterations, self.dilations)
        return refined.to(masks.dtype)


def pamr(image: torch.Tensor, masks: torch.Tensor, iterations: int = 10,
         dilations: Sequence[int] = DEFAULT_DILATIONS) -> torch.Tensor:
    """Refine class maps masks [B, N, H, W] guided by image [B, 3, H', W'] (RGB 0..255).

    The image is resized (bilinear, align_corners=True) to the mask size when they differ. Computes in
    float32 (float64 kept) and returns the masks' dtype.
    """
    if image.dim() != 4 or masks.dim() != 4 or image.shape[0] != masks.shape[0]:
        raise InputError(f'pamr expects image [B,C,H,W] and masks [B,N,H,W] with the same B, '
                         f'got {tuple(image.shape)} and {tuple(masks.shape)}')
    return PamrRefiner(image, iterations, dilations)(masks)


def benchmark_pamr(n_classes: int = 5, size: int = 448, repeats: int = 3, seed: int = 0) -> float:
    """Best wall-clock seconds of one :func:`pamr` call on random data (CPU, float32)."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, size, size, generator=gen) * 255
    masks = torch.rand(1, n_classes, size, size, generator=gen)
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        pamr(image, masks)
        best = min(best, time.perf_counter() - start)
    return best
