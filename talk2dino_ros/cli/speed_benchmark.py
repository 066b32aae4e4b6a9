"""``benchmark``: the real ``Segmenter.segment`` path timed end to end, with stage times from the engine.

  benchmark --weights-dir ~/.cache/talk2dino_ros [--sizes 480x640] [--repeats 20] [--json OUT]
  benchmark --random-weights vitb --devices cuda --fp16   # published-size random weights: timing only
  benchmark --random-weights vitb --backends torch,openvino,onnxruntime   # backends side by side (one table)

Rows (per device; image rows per size):

* ``text cold``: encoding the vocabulary with an empty cache; ``text cached``: ``set_vocabulary`` of a
  vocabulary whose names are all cached (the node's vocabulary swap); ``vocabulary 100 new names``:
  encoding 100 names never seen before;
* ``first frame``: the first ``segment`` of a freshly loaded segmenter (with the fast path on, its
  preparation has just started and the frame runs eagerly); ``fast path ready``: the preparation's rest;
* ``pipeline <mode>-<steps>``: ``Segmenter.segment`` plus reading the labels on the host (what the node
  always publishes). ``plain``: no post-processing; ``clean-bg``: background cleaning + background class;
  ``full``: cleaning + background + PAMR. Each is followed by its stages as the engine records them with
  device-synchronised timers (``preprocess``: upload + resize; ``backbone``: backbone, patch-grid scores
  and cleaning; ``windows``: window maps, PAMR, merge; ``labels``: argmax at the image size), from a
  separate pass so that the synchronisation never slows the pipeline row itself;
* ``backbone alone B=1``: one window through the backbone module the engine calls (on CUDA with the fast
  path: the replayed graph, the ceiling the pipeline rows compare with);
* ``cameras xN batched``: ``segment_batch`` of N frames (the node's cameras), whole plain, time per frame;
* ``memory N classes``: one whole-plain frame with N random class embeddings: peak memory of the frame
  above what was in use before (CUDA: ``max_memory_allocated``; CPU: peak RSS, VmHWM). A note after the
  table gives the per-class slope and the classes a 2 GB budget holds at that size.
* ``3d ...`` (device ``numpy``, per size, ``--no-3d`` to skip): the node's 3D outputs of one frame from its
  labels, confidence and a registered 16UC1 depth image of the same size, on a rendered scene (floor, wall,
  three boxes): ``cloud + detections`` (decoding the depth, the PointCloud2 bytes, 2D and 3D detections,
  what ``~/points`` + ``~/detections`` + ``~/detections_3d`` cost), and each part alone, at stride 1 and 2.

Columns: median and p90 wall time, fps = 1 / median, median process CPU time (all threads), peak RSS during
the row (VmHWM, reset before each row through /proc/self/clear_refs) and CUDA max allocated.
``authors``: the authors' Talk2DINO code, measured once on the project's 2-core development CPU (375x500
image, 5 classes, fp32), shown only beside the same rows of the same variant at full width (Talk2DINO
ViT-B, published sizes, fp32 on the CPU) on a machine with that CPU; otherwise the table says why it has none.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from talk2dino_ros import catalog
from talk2dino_ros.errors import Talk2DinoError
from talk2dino_ros.cli.common import (CliError, add_inference_arguments, add_model_arguments, config_from_args,
                                      parse_vocab_arg, run_cli)

DEFAULT_VOCAB = 'person,car,tree,road,sky'
#: --random-weights: test widths, or the published size of a catalog backbone
RANDOM_WIDTHS = ('tiny',) + tuple(catalog.backbones())
PIPELINES = ('whole-plain', 'whole-clean-bg', 'whole-full', 'slide-plain', 'slide-full')
#: the authors' code on this project's 2-core CPU, fp32, 375x500 image, 5 classes, seconds
#: (where they come from: :data:`AUTHORS_SOURCE`; which machine: :data:`AUTHORS_MACHINE`)
AUTHORS_CPU = {
    'text cold': 1.17,
    'backbone B=1': 0.84,
    'pipeline slide-plain': 2.0,
    'pipeline slide-full': 10.7,
}
AUTHORS_SIZE = (375, 500)
AUTHORS_CLASSES = 5
#: the CPU the authors' timings were measured on (model name in /proc/cpuinfo, logical cores)
AUTHORS_MACHINE = {'cpu': 'AMD EPYC', 'cpu_count': 2}
AUTHORS_SOURCE = ("the authors' Talk2DINO code (DINOv2 ViT-B, fp32, 375x500 image, 5 classes), measured on the "
                  "2-core AMD EPYC development CPU; see docs/speed.md")


def authors_comparison(method: str, variant: str, test_width: bool, random_width: Optional[str], device: str,
                       fp16: bool, classes: int, env: Dict) -> Tuple[bool, str]:
    """Whether the authors' timings may stand beside this run's rows, and if not, why (one phrase).

    Only like with like: Talk2DINO ViT-B at its published size, fp32 on the CPU, the same number of classes,
    on the machine they were measured on.
    """
    if (method, variant) != ('talk2dino', 'vitb'):
        return False, f'they were measured with talk2dino vitb, this run is {method} {variant}'
    if test_width or random_width == 'tiny':
        return False, 'this run uses tiny test-width weights, not the full-width ViT-B'
    if device != 'cpu' or fp16:
        return False, 'they were measured in fp32 on the CPU' + (' (this run: --fp16)' if fp16 else '')
    if classes != AUTHORS_CLASSES:
        return False, f'they were measured with {AUTHORS_CLASSES} classes, this run has {classes}'
    if (env.get('cpu'), env.get('cpu_count')) != (AUTHORS_MACHINE['cpu'], AUTHORS_MACHINE['cpu_count']):
        return False, (f"they were measured on a {AUTHORS_MACHINE['cpu_count']}-core {AUTHORS_MACHINE['cpu']}, "
                       f"this machine is a {env.get('cpu_count')}-core {env.get('cpu') or 'unknown CPU'}")
    return True, ''


# ------------------------------------------------------------------------------------------ memory
def _proc_status_kb(key: str) -> Optional[int]:
    try:
        with open('/proc/self/status') as fh:
            for line in fh:
                if line.startswith(key + ':'):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def reset_rss_peak() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux >= 4.0); False where not possible."""
    try:
        with open('/proc/self/clear_refs', 'w') as fh:
            fh.write('5')
        return True
    except OSError:
        return False


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Optional[Callable[[int], int]]:
    """glibc's ``malloc_trim``, looked up once (``find_library`` runs a subprocess); None elsewhere."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library('c')).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


def release_free_heap() -> None:
    """Hand the C heap's free pages back to the OS (glibc ``malloc_trim``; nothing elsewhere), so that memory
    freed by an earlier frame does not sit in the RSS and hide the next frame's peak."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def rss_peak_mb() -> Optional[float]:
    kb = _proc_status_kb('VmHWM')
    return None if kb is None else kb / 1024.0


# ------------------------------------------------------------------------------------------ timing
@dataclass
class Row:
    device: str
    size: str
    stage: str
    times: List[float]
    cpu_times: List[float] = field(default_factory=list)  # process CPU seconds (all threads) per item
    per: int = 1                     # the measured call covers `per` items (windows); times are per item
    rss_peak_mb: Optional[float] = None
    cuda_peak_mb: Optional[float] = None
    authors_s: Optional[float] = None

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def p90(self) -> float:
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]

    @property
    def cpu_median(self) -> Optional[float]:
        return statistics.median(self.cpu_times) if self.cpu_times else None

    @property
    def fps(self) -> float:
        return 1.0 / self.median if self.median > 0 else float('inf')

    def as_dict(self) -> Dict:
        return dict(device=self.device, size=self.size, stage=self.stage, per=self.per, times_s=self.times,
                    cpu_times_s=self.cpu_times, cpu_median_s=self.cpu_median, median_s=self.median,
                    p90_s=self.p90, fps=self.fps, rss_peak_mb=self.rss_peak_mb, cuda_peak_mb=self.cuda_peak_mb,
                    authors_s=self.authors_s)


def measure(fn: Callable[[], object], repeats: int, warmup: int, device) -> Tuple[List[float], List[float],
                                                                                  Optional[float], Optional[float]]:
    """Wall times of ``fn`` (CUDA synchronised), process CPU times, peak RSS MB and CUDA max-allocated MB."""
    import torch

    cuda = device.type == 'cuda'

    def sync():
        if cuda:
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
        sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    reset_ok = reset_rss_peak()
    times, cpu_times = [], []
    for _ in range(repeats):
        cpu_start = time.process_time()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    rss = rss_peak_mb() if reset_ok else None
    cuda_mb = torch.cuda.max_memory_allocated(device) / 2 ** 20 if cuda else None
    return times, cpu_times, rss, cuda_mb


# ------------------------------------------------------------------------------------------ inputs
def parse_size(text: str) -> Tuple[int, int]:
    """'375x500' -> (height 375, width 500)."""
    try:
        h, w = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'image size must be HEIGHTxWIDTH, e.g. 375x500, got {text!r}') from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f'image size must be positive, got {text!r}')
    return h, w


def synthetic_scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A deterministic RGB scene (sky gradient, ground, a few blocks, mild noise): realistic edges for PAMR."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height)[:, None]
    x = np.linspace(0.0, 1.0, width)[None, :]
    img = np.empty((height, width, 3), np.float32)
    img[..., 0] = 90 + 60 * y + 0 * x
    img[..., 1] = 140 + 50 * y + 0 * x
    img[..., 2] = 230 - 40 * y + 0 * x
    horizon = int(height * 0.6)
    img[horizon:] = (90, 110, 60)
    for _ in range(6):
        h0, w0 = rng.integers(0, height), rng.integers(0, width)
        hs, ws = rng.integers(height // 10 + 1, height // 3 + 2), rng.integers(width // 10 + 1, width // 3 + 2)
        img[h0:h0 + hs, w0:w0 + ws] = rng.integers(0, 256, 3)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def load_image(path: Optional[Path], height: int, width: int) -> np.ndarray:
    if path is None:
        return synthetic_scene(height, width)
    from talk2dino_ros.cli.segment_image import read_image_rgb
    from talk2dino_ros.model.windows import resize_uint8

    return resize_uint8(read_image_rgb(path), height, width)


# ------------------------------------------------------------------------------------------ stages
#: pipeline name -> (mode, options)
PIPELINE_OPTIONS = {
    'plain': dict(bg_clean=False, pamr=False, background=False),
    'clean-bg': dict(bg_clean=True, pamr=False, background=True),
    'full': dict(bg_clean=True, pamr=True, background=True),
}
ENGINE_STAGES = ('preprocess', 'backbone', 'windows', 'labels')
MEMORY_CLASSES = (10, 100, 1000)
MEMORY_BUDGET_MB = 2048.0


def _pipeline_settings(name: str, threshold: float) -> Tuple[str, Dict]:
    mode, kind = name.split('-', 1)
    changes = dict(PIPELINE_OPTIONS[kind])
    if changes['background']:
        changes['background_threshold'] = threshold
    return mode, changes


def _random_vocabulary(segmenter, n: int, like) -> object:
    """A vocabulary of ``n`` random unit embeddings shaped like ``like``'s (no text encoding needed)."""
    import torch

    from talk2dino_ros.model.types import Vocabulary

    gen = torch.Generator().manual_seed(n)
    emb = torch.randn(n, like.embeddings.shape[1], generator=gen)
    emb = (emb / emb.norm(dim=1, keepdim=True)).to(like.embeddings.device)
    names = tuple(f'class {i}' for i in range(n))
    return Vocabulary(names, names, emb, False, -n)


def _frame_peak_mb(segmenter, image, vocab, opts) -> Tuple[Optional[float], str]:
    """Peak memory of one frame above what was in use before, MB, and how it was measured."""
    import torch

    dev = segmenter.device
    if dev.type == 'cuda':
        torch.cuda.synchronize(dev)
        before = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        segmenter.segment(image, vocabulary=vocab, options=opts).labels
        torch.cuda.synchronize(dev)
        return (torch.cuda.max_memory_allocated(dev) - before) / 2 ** 20, 'CUDA max_memory_allocated'
    release_free_heap()
    before = _proc_status_kb('VmRSS')
    if before is None or not reset_rss_peak():
        return None, 'unavailable'
    segmenter.segment(image, vocabulary=vocab, options=opts).labels
    peak = rss_peak_mb()
    return (None if peak is None else peak - before / 1024.0), 'peak RSS (VmHWM) delta'


def bench_device(segmenter, names: Sequence[str], sizes: Sequence[Tuple[int, int]], image_path: Optional[Path],
                 repeats: int, warmup: int, pipelines: Sequence[str], custom: Optional[Dict],
                 log: Callable[[str], None], *, cameras: int = 4, memory_classes: Sequence[int] = MEMORY_CLASSES,
                 reload: Optional[Callable[[], object]] = None, notes: Optional[List[str]] = None,
                 compare_authors: bool = False) -> List[Row]:
    """Every row for one segmenter (one device), all through the engine's public API and its stage hooks.

    ``compare_authors`` (see :func:`authors_comparison`) puts the authors' timings beside the matching rows.
    """
    import torch

    dev = segmenter.device
    cfg = segmenter.config
    rows: List[Row] = []
    threshold = cfg.options.background_threshold
    notes = notes if notes is not None else []

    def add(size: str, stage: str, fn: Callable[[], object], per: int = 1, reps: Optional[int] = None,
            warm: Optional[int] = None):
        log(f'  {dev.type} {size} {stage} ...')
        times, cpu_times, rss, cuda_mb = measure(fn, reps or repeats, warmup if warm is None else warm, dev)
        authors = None
        if compare_authors and size in ('-', '%dx%d' % AUTHORS_SIZE):
            authors = AUTHORS_CPU.get(stage)
        rows.append(Row(dev.type, size, stage, [t / per for t in times], [t / per for t in cpu_times], per, rss,
                        cuda_mb, authors))

    def add_times(size: str, stage: str, times: List[float]):
        rows.append(Row(dev.type, size, stage, times))

    # ---- text (independent of the image size)
    def text_cold():
        segmenter.text_cache.clear()
        segmenter.set_vocabulary(names)

    add('-', 'text cold', text_cold)
    segmenter.set_vocabulary(names)
    add('-', 'text cached', lambda: segmenter.set_vocabulary(names), reps=max(repeats, 100))
    fresh = iter(range(10 ** 9))

    def new_names():
        k = next(fresh)
        segmenter.build_vocabulary([f'new thing {k} {i}' for i in range(100)])

    add('-', 'vocabulary 100 new names', new_names, reps=max(1, min(repeats, 3)), warm=0)
    vocab = segmenter.vocabulary
    vocab_bg = segmenter.build_vocabulary(names, background=True)
    base_mode = cfg.mode

    for (H, W) in sizes:
        size = f'{H}x{W}'
        image = load_image(image_path, H, W)

        if reload is not None:  # a freshly loaded segmenter: its first frame, then the fast path's preparation
            fresh_seg = reload()
            fresh_seg.set_vocabulary(names)
            start = time.perf_counter()
            fresh_seg.segment(image).labels
            add_times(size, 'first frame', [time.perf_counter() - start])
            if fresh_seg.fast_module is not None:
                start = time.perf_counter()
                fresh_seg.wait_fast_path()
                add_times(size, 'fast path ready', [time.perf_counter() - start])
            del fresh_seg

        # ---- full pipelines through the public API, then the same runs with the engine's stage timers on
        runs = [(f'pipeline {p}',) + _pipeline_settings(p, threshold) for p in pipelines]
        if custom is not None:
            runs.append(('pipeline custom', custom['mode'], custom['options']))
        for stage, mode, changes in runs:
            segmenter.with_options(mode=mode)
            opts = dataclasses.replace(cfg.options, **changes)
            voc = vocab_bg if opts.background else vocab
            if segmenter.fast_module is not None:  # never time a shape that is still being prepared
                segmenter.segment(image, vocabulary=voc, options=opts)
                segmenter.wait_fast_path()
            slow = opts.pamr and dev.type == 'cpu'
            reps = max(1, min(repeats, 3)) if slow else None
            add(size, stage, lambda: segmenter.segment(image, vocabulary=voc, options=opts).labels, reps=reps)
            segmenter.stage_timer.enabled = True
            try:
                per_stage: Dict[str, List[float]] = {k: [] for k in ENGINE_STAGES}
                for _ in range(reps or repeats):
                    timings = segmenter.segment(image, vocabulary=voc, options=opts).timings
                    for k in ENGINE_STAGES:
                        per_stage[k].append(timings.get(k, 0.0))
            finally:
                segmenter.stage_timer.enabled = False
            for k in ENGINE_STAGES:
                add_times(size, f'  {stage[len("pipeline "):]}: {k}', per_stage[k])
        segmenter.with_options(mode=base_mode)

        # ---- the backbone module alone, one window (the replayed graph when the fast path is on)
        backbone = getattr(segmenter.method, getattr(segmenter.method, 'fast_path_module', '') or '', None)
        if backbone is not None:
            win = torch.from_numpy(load_image(image_path, cfg.window, cfg.window)).permute(2, 0, 1)[None]
            x = (win.float().to(dev) / 255.0 - 0.45) / 0.225  # any normalised input: timing only
            amp_dtype = cfg.autocast_dtype(dev)
            off_dtype = torch.float16 if dev.type == 'cuda' else torch.bfloat16

            def backbone_alone():
                with torch.inference_mode(), torch.autocast(device_type=dev.type, dtype=amp_dtype or off_dtype,
                                                            enabled=amp_dtype is not None):
                    return backbone(x)

            backbone_alone()
            if segmenter.fast_module is not None:
                segmenter.wait_fast_path()
            kind = 'graph' if segmenter.fast_module is not None and segmenter.fast_module.backend == 'graph' else \
                ('compiled' if segmenter.fast_module is not None else 'eager')
            add(size, f'backbone alone B=1 ({kind})', backbone_alone)

        # ---- several cameras in one batch (whole frame, plain: the node's default)
        if cameras > 1:
            segmenter.with_options(mode='whole')
            plain = dataclasses.replace(cfg.options, **PIPELINE_OPTIONS['plain'])
            frames = [load_image(image_path, H, W) for _ in range(cameras)]

            def batched():
                return [r.labels for r in segmenter.segment_batch(frames, vocabulary=vocab, options=plain)]

            if segmenter.fast_module is not None:
                batched()
                segmenter.wait_fast_path()
            add(size, f'cameras x{cameras} batched (per frame)', batched, per=cameras)
            segmenter.with_options(mode=base_mode)

        # ---- peak memory of a frame against the number of classes
        if memory_classes:
            segmenter.with_options(mode='whole')
            plain = dataclasses.replace(cfg.options, **PIPELINE_OPTIONS['plain'])
            points = []
            how = ''
            for n in memory_classes:
                voc = _random_vocabulary(segmenter, n, vocab)
                segmenter.segment(image, vocabulary=voc, options=plain)  # warm (allocator, fast path)
                if segmenter.fast_module is not None:
                    segmenter.wait_fast_path()
                start = time.perf_counter()
                peak, how = _frame_peak_mb(segmenter, image, voc, plain)
                row = Row(dev.type, size, f'memory {n} classes', [time.perf_counter() - start])
                if dev.type == 'cuda':
                    row.cuda_peak_mb = peak
                else:
                    row.rss_peak_mb = peak
                rows.append(row)
                if peak is not None:
                    points.append((n, peak))
            segmenter.with_options(mode=base_mode)
            if len(points) >= 2:
                (n0, m0), (n1, m1) = points[0], points[-1]
                slope = max((m1 - m0) / (n1 - n0), 1e-9)
                fits = int((MEMORY_BUDGET_MB - max(m0 - slope * n0, 0.0)) / slope)
                notes.append(f'memory ({dev.type}, {size}, whole-plain, {how}): {slope:.3f} MB per class; '
                             f'a {MEMORY_BUDGET_MB / 1024:.0f} GB frame budget holds about {fits} classes')
    return rows


def bench_spatial(sizes: Sequence[Tuple[int, int]], repeats: int, warmup: int,
                  log: Callable[[str], None]) -> List[Row]:
    """The 3D rows: vectorised numpy work per frame, independent of the segmentation device."""
    import torch

    from talk2dino_ros.spatial.depth import depth_to_metres, metres_to_depth
    from talk2dino_ros.spatial.intrinsics import Intrinsics
    from talk2dino_ros.spatial.scene import SpatialOptions, build_spatial
    from talk2dino_ros.spatial.synthetic import confidence_for, default_scene

    rows: List[Row] = []
    cpu = torch.device('cpu')
    names = ['floor', 'wall', 'box a', 'box b', 'box c']
    for (H, W) in sizes:
        size = f'{H}x{W}'
        f = 0.82 * W  # about 63 degrees across, as a RealSense colour camera
        intr = Intrinsics(f, f, (W - 1) / 2, (H - 1) / 2, W, H)
        labels, depth = default_scene().render(intr)
        confidence = confidence_for(labels, [0.0, 0.9, 0.8, 0.7, 0.6, 0.5])
        mm = metres_to_depth(depth, '16UC1')
        for stride in (1, 2):
            options = SpatialOptions(stride=stride)
            parts = {
                'cloud + detections': dict(cloud=True, detections=True),
                'cloud': dict(cloud=True, detections=False),
                'detections 2D + 3D': dict(cloud=False, detections=True),
            }
            for what, wanted in parts.items():
                stage = f'3d {what} (stride {stride})'
                log(f'  numpy {size} {stage} ...')

                def run(wanted=wanted, options=options):
                    metres = depth_to_metres(mm, '16UC1', options.depth_max_m)
                    return build_spatial(labels, confidence, names, metres, intr, options, **wanted)

                times, cpu_times, rss, _ = measure(run, max(repeats, 20), max(warmup, 2), cpu)
                rows.append(Row('numpy', size, stage, times, cpu_times, 1, rss))
    return rows


# ------------------------------------------------------------------------------------------ report
def _fmt_s(seconds: Optional[float]) -> str:
    if seconds is None:
        return '-'
    if seconds < 1e-3:
        return f'{seconds * 1e6:.0f} us'
    if seconds < 1.0:
        return f'{seconds * 1e3:.1f} ms'
    return f'{seconds:.2f} s'


def format_table(rows: Sequence[Row]) -> str:
    header = ('device', 'image', 'stage', 'median', 'p90', 'fps', 'CPU time', 'peak RSS MB', 'CUDA MB', 'authors')
    body = [(r.device, r.size, r.stage, _fmt_s(r.median), _fmt_s(r.p90), f'{r.fps:.2f}' if r.fps < 1e4 else
             f'{r.fps:.0f}', _fmt_s(r.cpu_median), '-' if r.rss_peak_mb is None else f'{r.rss_peak_mb:.0f}',
             '-' if r.cuda_peak_mb is None else f'{r.cuda_peak_mb:.0f}', _fmt_s(r.authors_s)) for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    line = lambda cells: '  '.join(str(c).ljust(wd) if i < 3 else str(c).rjust(wd)  # noqa: E731
                                   for i, (c, wd) in enumerate(zip(cells, widths)))
    out = [line(header), line(['-' * wd for wd in widths])]
    out += [line(b) for b in body]
    return '\n'.join(out)


def environment() -> Dict:
    import torch

    cpu = platform.processor() or ''
    try:
        with open('/proc/cpuinfo') as fh:
            cpu = next((ln.split(':', 1)[1].strip() for ln in fh if ln.startswith('model name')), cpu)
    except OSError:
        pass
    env = dict(python=platform.python_version(), torch=torch.__version__, cpu=cpu, cpu_count=os.cpu_count(),
               torch_threads=torch.get_num_threads(), cuda=torch.cuda.is_available())
    if torch.cuda.is_available():
        env['gpu'] = torch.cuda.get_device_name(0)
    return env


def _busy_warning(start: Optional[str], end: Optional[str], cores: Optional[int]) -> str:
    """A note when other processes competed for the CPU (1-minute load above the core count)."""
    try:
        peak = max(float(x.split()[0]) for x in (start, end) if x)
    except ValueError:
        return ''
    if cores and peak > cores + 0.5:
        return (f'the CPU was busy (1-min load up to {peak:.1f} on {cores} cores): CPU timings are inflated, '
                'multi-threaded ones most')
    return ''


def load_average() -> Optional[str]:
    try:
        with open('/proc/loadavg') as fh:
            return ' '.join(fh.read().split()[:3])
    except OSError:
        return None


# ------------------------------------------------------------------------------------------ main
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog='benchmark', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--sizes', nargs='+', type=parse_size, default=None, metavar='HxW',
                   help='image sizes, height x width (default 375x500; 480x640 with --backends)')
    p.add_argument('--image', type=Path, default=None, help='use this image (resized) instead of a synthetic scene')
    p.add_argument('--vocab', default=DEFAULT_VOCAB, help=f'class names (default "{DEFAULT_VOCAB}")')
    p.add_argument('--devices', default='auto', help="comma list of devices, or 'auto' = cpu (+ cuda if present)")
    p.add_argument('--pipelines', default=','.join(PIPELINES),
                   help=f'comma list of full-pipeline rows among {", ".join(PIPELINES)} (or "none")')
    p.add_argument('--repeats', type=int, default=5, help='timed runs per row (PAMR rows on CPU: at most 3)')
    p.add_argument('--warmup', type=int, default=1, help='untimed runs before each row')
    p.add_argument('--window', type=int, default=None, metavar='PX', help='sliding-window size (default 448)')
    p.add_argument('--stride', type=int, default=None, metavar='PX', help='sliding-window stride (default 224)')
    p.add_argument('--fast-path', choices=('auto', 'off', 'graph', 'compile'), default='auto',
                   help='backbone fast path: auto = CUDA graphs on CUDA, eager on the CPU (default auto)')
    p.add_argument('--cameras', type=int, default=4, metavar='N',
                   help='frames per segment_batch in the cameras row (default 4; 1 = no row)')
    p.add_argument('--memory-classes', default=','.join(str(n) for n in MEMORY_CLASSES), metavar='N,N,...',
                   help='class counts of the peak-memory rows (default 10,100,1000; "none" = no rows)')
    p.add_argument('--no-first-frame', action='store_true',
                   help='skip the first-frame row (it loads the model a second time)')
    p.add_argument('--threads', type=int, default=None,
                   help='torch CPU threads (default: torch default). On a busy CPU, fewer threads than cores '
                        'avoid threads waiting for each other at every operation')
    p.add_argument('--random-weights', choices=RANDOM_WIDTHS, default=None,
                   help='write random weights of this width to a temp dir and time those (timing only)')
    p.add_argument('--variants', default=None, metavar='V,V,...',
                   help='time several Talk2DINO variants in one run, one block of rows each, e.g. '
                        '"vitb,dinov3_vitb" (DINOv3-B against DINOv2-B); with --random-weights each variant gets '
                        'random weights of its own published size (or tiny ones with --random-weights tiny)')
    p.add_argument('--backends', default=None, metavar='B[:P],...',
                   help='compare backends instead of the rows above: one table, whole plain, a row per backend '
                        'and precision (e.g. "torch,openvino,onnxruntime"; "openvino:bf16" picks one precision), '
                        'timed interleaved, with the ratio to torch and the agreement with torch fp32; '
                        '--pipelines whole-plain,whole-full adds the full pipeline; the device is --device')
    p.add_argument('--no-3d', dest='spatial', action='store_false',
                   help='skip the 3d rows (point cloud and detections from depth)')
    p.add_argument('--json', type=Path, default=None, metavar='OUT', help='also write the rows as JSON')
    p.add_argument('--quiet', action='store_true', help='no progress lines on stderr')
    add_model_arguments(p)
    add_inference_arguments(p)
    return p


def _devices(spec: str) -> List[str]:
    import torch

    if spec.strip().lower() == 'auto':
        return ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    return [d.strip() for d in spec.split(',') if d.strip()]


def _custom_run(args: argparse.Namespace) -> Optional[Dict]:
    if args.bg_clean is None and args.pamr is None and args.background_threshold is None and args.mode is None:
        return None
    background = args.background_threshold is not None and args.background_threshold > 0  # <= 0: none
    opts = dict(bg_clean=bool(args.bg_clean), pamr=bool(args.pamr), background=background)
    if background:
        opts['background_threshold'] = args.background_threshold
    return dict(mode=args.mode or 'slide', options=opts)


def _run(argv: Optional[Sequence[str]]) -> int:
    args = build_parser().parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        raise CliError('--repeats must be >= 1 and --warmup >= 0')
    names = parse_vocab_arg(args.vocab)
    pipelines = [] if args.pipelines.strip().lower() == 'none' else \
        [p.strip() for p in args.pipelines.split(',') if p.strip()]
    bad = [p for p in pipelines if p not in PIPELINES]
    if bad:
        raise CliError(f'--pipelines: unknown {bad}; choose among {", ".join(PIPELINES)}')
    if args.cameras < 1:
        raise CliError('--cameras must be >= 1')
    try:
        args.memory_classes_list = [] if args.memory_classes.strip().lower() == 'none' else \
            [int(n) for n in args.memory_classes.split(',') if n.strip()]
    except ValueError:
        raise CliError(f'--memory-classes must be a comma list of integers, got {args.memory_classes!r}') from None
    if any(n < 1 for n in args.memory_classes_list):
        raise CliError('--memory-classes must be positive')
    args.variant_list = _variant_list(args)
    if args.sizes is None:
        args.sizes = [(480, 640)] if args.backends else [(375, 500)]
    if args.image is not None:  # a missing or unreadable --image fails now, not after loading the model
        from talk2dino_ros.cli.segment_image import read_image_rgb

        read_image_rgb(args.image)

    import torch

    threads_before = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _bench_backends(args, names, pipelines) if args.backends else _bench(args, names, pipelines)
    finally:
        torch.set_num_threads(threads_before)  # main() may run inside another program (tests)


def _variant_list(args: argparse.Namespace) -> List[Optional[str]]:
    """The variants to time: ``--variants`` (Talk2DINO only), else just the one the flags choose (None)."""
    if not args.variants:
        return [None]
    if not catalog.get_method(args.method).has_variants:
        raise CliError(f'--variants: method {args.method} has a single backbone')
    variants = [v.strip() for v in args.variants.split(',') if v.strip()]
    known = tuple(catalog.backbones())
    bad = [v for v in variants if v not in known]
    if bad or not variants:
        raise CliError(f'--variants: unknown {bad or args.variants!r}; choose among {", ".join(known)}')
    return variants


def _variant_config(args: argparse.Namespace, variant: Optional[str], tmp: str, log) -> 'object':
    """The segmenter config of one variant (random weights of that variant written into ``tmp``)."""
    if variant is not None:
        args.variant = variant
    random_paths = None
    if args.random_weights:
        from talk2dino_ros.model.random_weights import write_random_weights

        width = args.random_weights
        if variant is not None and width != 'tiny':
            width = variant  # each variant at its own published size
        elif width != 'tiny':
            args.variant = width
        folder = Path(tmp) / (variant or 'weights')
        log(f'writing {width} random weights for {args.method} to {folder} ...')
        random_paths = write_random_weights(folder, method=args.method, width=width, variant=args.variant)
    # the flags give the geometry; the pipelines below set the post-processing themselves
    geometry = {k: v for k, v in (('window', args.window), ('stride', args.stride)) if v is not None}
    base = config_from_args(args, **geometry)
    base = dataclasses.replace(base, fast_path=args.fast_path)
    if random_paths is not None:
        base = dataclasses.replace(base, weights={k: str(v) for k, v in random_paths.items()},
                                   allow_random_weights=True)
    return base


def _bench(args: argparse.Namespace, names: List[str], pipelines: List[str]) -> int:
    from talk2dino_ros.model.segmenter import Segmenter

    memory_classes = args.memory_classes_list
    variants = getattr(args, 'variant_list', [None])

    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    env = environment()
    random_weights = bool(args.random_weights)
    authors_why: List[str] = []
    with tempfile.TemporaryDirectory(prefix='t2d_bench_') as tmp:
        rows: List[Row] = []
        notes: List[str] = []
        load_start = load_average()
        for variant in variants:
            base = _variant_config(args, variant, tmp, log)
            for device in _devices(args.devices):
                log(f'loading {args.method} {base.variant} on {device} ...')
                dev_cfg = dataclasses.replace(base, device=device)
                segmenter = Segmenter.from_config(dev_cfg, on_event=log)
                random_weights = random_weights or bool(getattr(segmenter, 'random_weights', False))
                compare, why = authors_comparison(
                    base.method, base.variant, bool(getattr(segmenter.method, 'test_width', False)),
                    args.random_weights, segmenter.device.type, base.fp16, len(names), env)
                if not compare and why not in authors_why:
                    authors_why.append(why)
                reload = None if args.no_first_frame else (lambda c=dev_cfg: Segmenter.from_config(c, on_event=log))
                device_rows = bench_device(segmenter, names, args.sizes, args.image, args.repeats, args.warmup,
                                           pipelines, _custom_run(args), log, cameras=args.cameras,
                                           memory_classes=memory_classes, reload=reload, notes=notes,
                                           compare_authors=compare)
                if variant is not None and len(variants) > 1:
                    for row in device_rows:  # one table, a block per variant
                        row.device = f'{row.device} {variant}'
                rows += device_rows
                if segmenter.fast_module is not None:
                    segmenter.fast_module.shutdown()
                del segmenter
        if getattr(args, 'spatial', True):
            rows += bench_spatial(args.sizes, args.repeats, args.warmup, log)
        load_end = load_average()
        if len(variants) > 1:
            base = dataclasses.replace(base, variant=','.join(variants))

    width = args.random_weights or 'the loaded files\''
    weights_note = (f'RANDOM WEIGHTS ({width} width): timing only, the outputs mean nothing'
                    if random_weights else 'weights: ' + ', '.join(f'{k}={v}' for k, v in base.weights.items()))
    authors_shown = any(r.authors_s is not None for r in rows)
    meta = dict(notes=notes, fast_path=base.fast_path, method=base.method, variant=base.variant, fp16=base.fp16,
                resolution=base.resolution, window=base.window, stride=base.stride, classes=len(names),
                repeats=args.repeats, warmup=args.warmup, random_weights=random_weights,
                random_weights_width=args.random_weights, load_average_start=load_start, load_average_end=load_end,
                authors_source=AUTHORS_SOURCE if authors_shown else None,
                authors_omitted='; '.join(authors_why) if not authors_shown else None, **env)
    variant = f' {base.variant}' if catalog.get_method(base.method).has_variants else ''
    if random_weights:
        from talk2dino_ros.evaluation.report import RANDOM_WEIGHTS_HEADER

        print(RANDOM_WEIGHTS_HEADER)
    precision = 'off'
    if base.fp16:
        devices = {r.device.split()[0] for r in rows}
        kinds = ('fp16 on CUDA' if d == 'cuda' else 'bf16 on the CPU' for d in sorted(devices))
        precision = f'on ({", ".join(kinds)})'
    print(f'# talk2dino_ros benchmark: {base.method}{variant}, {len(names)} classes, resolution '
          f'{base.resolution}, fp16 {precision}')
    print(f'# {weights_note}')
    print(f'# torch {env["torch"]}, {env["torch_threads"]} CPU threads on {env["cpu_count"]} cores ({env["cpu"]})'
          + (f', GPU {env["gpu"]}' if env.get('gpu') else '') + f'; load average {load_start} -> {load_end}')
    if authors_shown:
        print(f'# authors: {AUTHORS_SOURCE}')
    elif authors_why:
        print(f"# authors' timings not shown: {'; '.join(authors_why)}")
    _finish_report(format_table(rows), notes, args.json, dict(meta=meta, rows=[r.as_dict() for r in rows]),
                   load_start, load_end, env['cpu_count'])
    return 0


def _finish_report(table: str, notes: Sequence[str], json_path: Optional[Path], payload: Dict,
                   load_start: Optional[str], load_end: Optional[str], cores: Optional[int]) -> None:
    """The end of every benchmark report: the busy-machine warning, the table, its notes, and the JSON file."""
    busy = _busy_warning(load_start, load_end, cores)
    if busy:
        print(f'# WARNING: {busy}')
    print(table)
    for note in notes:
        print(f'# {note}')
    if json_path is not None:
        from talk2dino_ros.atomic_files import atomic_write_text

        json_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(json_path, json.dumps(payload, indent=1))


def _bench_backends(args: argparse.Namespace, names: List[str], pipelines: List[str]) -> int:
    """``--backends``: one interleaved table of backends and precisions (see :mod:`backend_comparison`)."""
    from talk2dino_ros.cli.backend_comparison import compare_backends, format_backend_table, parse_backends
    from talk2dino_ros.model.runtimes import check_backend
    from talk2dino_ros.model.segmenter import resolve_device

    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))

    def why_not(backend: str, precision: str) -> Optional[str]:
        try:
            check_backend(backend, precision, resolve_device(args.device))
        except Talk2DinoError as exc:
            return str(exc)
        return None

    choices, skipped = parse_backends(args.backends, why_not)
    H, W = args.sizes[0]
    with tempfile.TemporaryDirectory(prefix='t2d_bench_') as tmp:
        base = _variant_config(args, None, tmp, log)
        load_start = load_average()
        # the whole-full column only when --pipelines asks for it (PAMR makes CPU rows slow)
        full = 'whole-full' in pipelines and args.pipelines != ','.join(PIPELINES)
        rows = compare_backends(base, choices, load_image(args.image, H, W), names, args.repeats, args.warmup, log,
                                full=full)
        load_end = load_average()
    env = environment()
    weights = f'RANDOM WEIGHTS ({args.random_weights} width): timing only' if args.random_weights else 'weights given'
    print(f'# talk2dino_ros backends: {base.method} {base.variant}, whole plain, {H}x{W}, {len(names)} classes; '
          f'{weights}; {args.repeats} interleaved repeats, medians')
    print(f'# torch {env["torch"]}, {env["torch_threads"]} threads on {env["cpu_count"]} cores ({env["cpu"]}); '
          f'load average {load_start} -> {load_end}')
    meta = dict(method=base.method, variant=base.variant, size=[H, W], classes=len(names), repeats=args.repeats,
                random_weights=args.random_weights, load_average_start=load_start, load_average_end=load_end, **env)
    _finish_report(format_backend_table(rows), skipped, args.json,
                   dict(meta=meta, backends=[r.as_dict() for r in rows]), load_start, load_end, env['cpu_count'])
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point; returns 0, or 2 after one ``error: ...`` line."""
    return run_cli(_run, argv)


if __name__ == '__main__':
    sys.exit(main())
