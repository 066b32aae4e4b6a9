"""Fast path: the backbone forward replayed from a CUDA graph (or a ``torch.compile`` build) per input shape.

A :class:`FastModule` wraps a method's backbone module. Each call looks up the exact input key (shape,
dtype, autocast state); when a prepared runner exists it is replayed, otherwise the eager module runs and,
for a key never seen before, preparation is queued on one background thread. Frames therefore keep flowing
on the eager path while a new shape (resolution, batch of windows, number of cameras) is prepared; nothing
is ever captured or compiled inside a frame. :meth:`Segmenter.prepare` prepares expected shapes at load
and waits for them.

Backends:
* ``graph`` (CUDA only): a few warm-up forwards on a side stream, then ``torch.cuda.CUDAGraph`` capture
  into static input/output buffers. The capture itself runs under the segmenter's inference lock (one
  forward's worth of launches) so no eager frame shares the device with a capture in progress.
* ``compile``: ``torch.compile(dynamic=False)`` warmed up for the shape (any device; on the CPU it is the
  way to exercise the whole preparation machinery).

Outputs of a replayed graph live in static buffers: they are valid until the next call with the same key,
which is why the segmenter consumes them under its inference lock.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import threading
import time
from typing import Callable, Dict, Optional, Tuple

import torch

from talk2dino_ros.errors import Talk2DinoError

FAST_PATH_CHOICES = ('auto', 'off', 'graph', 'compile')
Key = Tuple


def select_backend(choice: str, device: torch.device) -> Optional[str]:
    """``fast_path`` setting + device -> 'graph', 'compile' or None (eager).

    ``auto``: CUDA graphs on CUDA, eager elsewhere. ``graph`` on a non-CUDA device is a configuration
    error, never a silent fallback.
    """
    choice = (choice or 'auto').strip().lower()
    if choice not in FAST_PATH_CHOICES:
        raise Talk2DinoError(f'fast_path must be one of {FAST_PATH_CHOICES}, got {choice!r}')
    if choice == 'off':
        return None
    if choice == 'auto':
        return 'graph' if device.type == 'cuda' else None
    if choice == 'graph' and device.type != 'cuda':
        raise Talk2DinoError(f'fast_path graph needs a CUDA device, got {device.type} (use auto, compile or off)')
    return choice


def input_key(x: torch.Tensor) -> Key:
    """What a prepared runner is specific to: shape, dtype, device and the autocast state of the call."""
    dev = x.device.type
    amp = torch.is_autocast_enabled(dev) if dev in ('cuda', 'cpu') else False
    amp_dtype = torch.get_autocast_dtype(dev) if amp else None
    return tuple(x.shape), x.dtype, str(x.device), amp, amp_dtype


def _call_context(key: Key):
    """The grad/autocast context a runner is prepared and replayed in (as the segmenter calls it)."""
    _, _, device, amp, amp_dtype = key
    dev = torch.device(device).type
    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode())
    # graph capture must not use autocast's weight cache (it would be captured and reused stale)
    stack.enter_context(torch.autocast(device_type=dev, dtype=amp_dtype or torch.float32, enabled=amp,
                                       cache_enabled=False))
    return stack


class FastModule(torch.nn.Module):
    """Wraps ``inner``: replays a prepared runner for a known input key, else runs ``inner`` eagerly."""

    def __init__(self, inner: torch.nn.Module, backend: str, capture_lock: Optional[threading.Lock] = None,
                 on_event: Optional[Callable[[str], None]] = None, warmup: int = 3):
        super().__init__()
        if backend not in ('graph', 'compile'):
            raise Talk2DinoError(f'unknown fast-path backend {backend!r}')
        self.inner = inner
        self.backend = backend
        self.warmup = warmup
        self._capture_lock = capture_lock or threading.Lock()
        self._on_event = on_event or (lambda message: None)
        self._runners: Dict[Key, Callable[[torch.Tensor], object]] = {}
        self._state: Dict[Key, str] = {}  # key -> 'preparing' | 'ready' | 'failed: ...'
        self._futures: Dict[Key, concurrent.futures.Future] = {}
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix='t2d-fast-path')
        self._compiled = None
        self.prepare_seconds: Dict[Key, float] = {}
        self.replays = 0
        self.eager_calls = 0

    def __getattr__(self, name: str):
        # attributes of the wrapped backbone (arch, embed_dim, ...) stay reachable through the wrapper
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__('inner'), name)

    # ---------------------------------------------------------------- state
    def state(self, key: Key) -> Optional[str]:
        with self._lock:
            return self._state.get(key)

    def states(self) -> Dict[Key, str]:
        with self._lock:
            return dict(self._state)

    def request(self, example: torch.Tensor) -> concurrent.futures.Future:
        """Queue preparation for ``example``'s key (once per key); the future resolves when it is done."""
        key = input_key(example)
        with self._lock:
            fut = self._futures.get(key)
            if fut is not None:
                return fut
            self._state[key] = 'preparing'
            sample = example.detach().clone()
            fut = self._pool.submit(self._prepare, key, sample)
            self._futures[key] = fut
        self._on_event(f'fast path: preparing {self.backend} for input {key[0]} ({key[1]}, '
                       f'autocast {key[4] if key[3] else "off"}); frames run eagerly meanwhile')
        return fut

    # ---------------------------------------------------------------- calls
    def forward(self, x: torch.Tensor):
        key = input_key(x)
        runner = self._runners.get(key)
        if runner is not None:
            self.replays += 1
            return runner(x)
        self.eager_calls += 1
        if key not in self._futures:
            self.request(x)
        return self.inner(x)

    # ---------------------------------------------------------------- preparation (background thread)
    def _prepare(self, key: Key, sample: torch.Tensor) -> bool:
        start = time.perf_counter()
        try:
            runner = self._build_graph(key, sample) if self.backend == 'graph' else self._build_compiled(key, sample)
        except Exception as exc:  # noqa: BLE001 - any failure leaves this shape on the eager path
            with self._lock:
                self._state[key] = f'failed: {type(exc).__name__}: {exc}'
            self._on_event(f'fast path: {self.backend} preparation for input {key[0]} failed, staying eager: '
                           f'{type(exc).__name__}: {exc}')
            return False
        seconds = time.perf_counter() - start
        with self._lock:
            self._runners[key] = runner
            self._state[key] = 'ready'
            self.prepare_seconds[key] = seconds
        self._on_event(f'fast path: {self.backend} ready for input {key[0]} after {seconds:.2f} s')
        return True

    def _build_compiled(self, key: Key, sample: torch.Tensor):
        if self._compiled is None:
            self._compiled = torch.compile(self.inner, dynamic=False)
        compiled = self._compiled
        with _call_context(key):
            for _ in range(max(1, self.warmup)):
                compiled(sample)
        return compiled

    def _build_graph(self, key: Key, sample: torch.Tensor):
        device = sample.device
        if device.type != 'cuda':
            raise Talk2DinoError('CUDA graph capture needs a CUDA tensor')
        stream = torch.cuda.Stream(device)
        static_in = sample.clone()
        stream.wait_stream(torch.cuda.current_stream(device))
        # warm-up on a side stream (lazy initialisation, cuBLAS workspaces) concurrently with eager frames
        with torch.cuda.stream(stream), _call_context(key):
            for _ in range(max(1, self.warmup)):
                self.inner(static_in)
        stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        with self._capture_lock:
            torch.cuda.synchronize(device)
            with _call_context(key), torch.cuda.graph(graph, stream=stream, capture_error_mode='thread_local'):
                static_out = self.inner(static_in)
            torch.cuda.synchronize(device)

        def run(x: torch.Tensor):
            static_in.copy_(x)
            graph.replay()
            return static_out

        return run

    def wait(self, timeout: Optional[float] = None) -> Dict[Key, str]:
        """Wait for every queued preparation; returns the states."""
        with self._lock:
            futures = list(self._futures.values())
        concurrent.futures.wait(futures, timeout=timeout)
        return self.states()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
