"""``benchmark``: where the time goes, stage by stage, on CPU and (when present) CUDA.

  benchmark --weights-dir ~/.cache/talk2dino_ros [--sizes 375x500 480x640] [--repeats 5] [--json OUT]
  benchmark --random-weights vitb      # published-size random weights in a temp dir: timing only

Rows (per device and image size):

* ``text cold``: encoding the vocabulary with an empty cache; ``text cached``: ``set_vocabulary`` of a
  vocabulary whose names are all cached (the node's vocabulary swap);
* ``backbone B=1``: one 448² window; ``backbone B=K /window``: the K windows of the image in one batch,
  time per window (Talk2DINO only; other methods get ``model`` rows: backbone + per-window scoring);
* ``scores``: cosine + sigmoid + upsampling to the window; ``bg clean``: background cleaning;
  ``pamr``: PAMR on the K windows; ``merge+resize``: window merge, resize to the image, argmax, to numpy;
* ``pipeline``: ``Segmenter.segment`` end to end: slide plain, slide full (cleaning + background +
  PAMR), whole plain, whole full, and ``custom`` when inference flags were given.

Columns: median and p90 wall time, fps = 1 / median, median process CPU time (all threads; on an idle
machine about threads x wall, far above wall when other processes compete for the cores), peak RSS
during the row (VmHWM, reset before each row through /proc/self/clear_refs) and CUDA max allocated.
``authors``: the authors' code on the project's 2-core CPU (method.md §10) beside the matching CPU rows
(375x500 image, 5 classes). ``model+clean B=1`` is one window through the method with cleaning: the
live node's per-window model cost.
"""
from __future__ import annotations

import argparse
import dataclasses
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
from talk2dino_ros.cli.common import (CliError, add_inference_arguments, add_model_arguments, config_from_args,
                                      one_line, parse_vocab_arg, run_cli)

DEFAULT_VOCAB = 'person,car,tree,road,sky'
#: --random-weights: test widths, or the published size of a catalog backbone
RANDOM_WIDTHS = ('tiny',) + tuple(catalog.backbones())
PIPELINES = ('slide-plain', 'slide-full', 'whole-plain', 'whole-full')
#: the authors' code on this project's 2-core CPU, fp32, 375x500 image, 5 classes (method.md §10), seconds
AUTHORS_CPU = {
    'text cold': 1.17,
    'backbone B=1': 0.84,
    'pipeline slide-plain': 2.0,
    'pipeline slide-full': 10.7,
}
AUTHORS_SIZE = (375, 500)


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
def _pipeline_settings(name: str, threshold: float) -> Tuple[str, Dict]:
    mode, kind = name.split('-')
    if kind == 'plain':
        return mode, dict(bg_clean=False, pamr=False, background=False)
    return mode, dict(bg_clean=True, pamr=True, background=True, background_threshold=threshold)


def bench_device(segmenter, names: Sequence[str], sizes: Sequence[Tuple[int, int]], image_path: Optional[Path],
                 repeats: int, warmup: int, pipelines: Sequence[str], custom: Optional[Dict],
                 log: Callable[[str], None]) -> List[Row]:
    """Every row for one segmenter (one device)."""
    import torch

    from talk2dino_ros.model.windows import merge_windows, rescale_size, resize_scores, resize_uint8, \
        slide_windows

    dev = segmenter.device
    cfg = segmenter.config
    method = segmenter.method
    rows: List[Row] = []
    is_t2d = hasattr(method, 'backbone') and hasattr(method.backbone, 'cls_attention_logits')
    amp = cfg.fp16 and dev.type == 'cuda'
    threshold = cfg.options.background_threshold

    def add(size: str, stage: str, fn: Callable[[], object], per: int = 1, reps: Optional[int] = None):
        log(f'  {dev.type} {size} {stage} ...')
        times, cpu_times, rss, cuda_mb = measure(fn, reps or repeats, warmup, dev)
        authors = None
        if cfg.method == 'talk2dino' and dev.type == 'cpu' and len(names) == 5 and \
                size in ('-', '%dx%d' % AUTHORS_SIZE):
            authors = AUTHORS_CPU.get(stage)
        rows.append(Row(dev.type, size, stage, [t / per for t in times], [t / per for t in cpu_times], per, rss,
                        cuda_mb, authors))

    def ctx():
        return torch.inference_mode(), torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=amp)

    # ---- text (independent of the image size)
    def text_cold():
        segmenter.text_cache.clear()
        segmenter.set_vocabulary(names)

    add('-', 'text cold', text_cold)
    segmenter.set_vocabulary(names)
    add('-', 'text cached', lambda: segmenter.set_vocabulary(names), reps=max(repeats, 100))
    vocab = segmenter.vocabulary
    vocab_bg = segmenter.build_vocabulary(names, background=True)
    text = vocab.embeddings

    for (H, W) in sizes:
        size = f'{H}x{W}'
        image = load_image(image_path, H, W)
        h, w = rescale_size(H, W, cfg.resolution, cfg.max_long_side)
        resized = resize_uint8(image, h, w)
        wins = slide_windows(h, w, cfg.window, cfg.stride)
        tensor = torch.from_numpy(resized).to(dev).permute(2, 0, 1).float()
        crops = torch.stack([tensor[:, v.y1:v.y2, v.x1:v.x2] for v in wins])  # the windows at their own size
        square = getattr(method, 'window_size', None)
        net_in = crops
        if square and getattr(method, 'slide_square', True) and min(crops.shape[-2:]) < square:
            # a window smaller than 448 (image smaller than a window): the backbone sees it squared to 448²,
            # scores and PAMR stay at the window's size, as in Talk2DINO.window_scores
            net_in = torch.nn.functional.interpolate(crops, size=(square, square), mode='bilinear',
                                                     align_corners=False, antialias=True)
        K = crops.shape[0]
        one_win = crops[:1]  # what window_scores gets (it squares small windows itself)
        plain = dataclasses.replace(cfg.options, bg_clean=False, pamr=False, background=False)
        log(f'{dev.type} {size}: {K} window(s) of {cfg.window}x{cfg.window} after resizing to {h}x{w}, '
            f'backbone input {net_in.shape[-2]}x{net_in.shape[-1]}')

        if is_t2d:
            from talk2dino_ros.model.backbone import normalize_rgb255
            from talk2dino_ros.model.pamr import pamr
            from talk2dino_ros.model.postprocess import background_clean, sigmoid_cosine_scores, upsample_scores

            def backbone(x):
                a, b = ctx()
                with a, b:
                    return method.backbone(normalize_rgb255(x))

            add(size, 'backbone B=1', lambda: backbone(net_in[:1]))
            if K > 1:
                add(size, f'backbone B={K} /window', lambda: backbone(net_in), per=K)
            feats, attn = backbone(net_in)
            feats, attn = feats.float(), attn.float()
            with torch.inference_mode():
                grid = sigmoid_cosine_scores(feats, text)
                up = upsample_scores(grid, crops.shape[-2:])
                add(size, f'scores x{K}', lambda: upsample_scores(sigmoid_cosine_scores(feats, text),
                                                                    crops.shape[-2:]))
                add(size, f'bg clean x{K}', lambda: background_clean(grid, feats, attn, text))
                opts = cfg.options
                add(size, f'pamr x{K} ({len(names)} cls)',
                    lambda: pamr(crops, up, iterations=opts.pamr_iterations, dilations=opts.pamr_dilations),
                    reps=max(1, min(repeats, 3)))
        else:
            def model(x):
                a, b = ctx()
                with a, b:
                    return method.window_scores(x, text, plain)

            add(size, 'model B=1', lambda: model(one_win))
            if K > 1:
                add(size, f'model B={K} /window', lambda: model(crops), per=K)
            with torch.inference_mode():
                up = model(crops).float()

        cleaned = dataclasses.replace(plain, bg_clean=True)

        def model_clean():
            a, b = ctx()
            with a, b:
                return method.window_scores(one_win, text, cleaned)

        add(size, 'model+clean B=1', model_clean)  # the live node's per-window model cost (GPU target)
        outs = list(up.unbind(0))

        def merge_resize():
            with torch.inference_mode():
                final = resize_scores(merge_windows(outs, wins, h, w), H, W)
                return final.argmax(dim=0).to(torch.int32).cpu().numpy(), final.cpu().numpy()

        add(size, 'merge+resize+argmax', merge_resize)

        # ---- full pipelines through the public API
        runs = [(f'pipeline {p}',) + _pipeline_settings(p, threshold) for p in pipelines]
        if custom is not None:
            runs.append(('pipeline custom', custom['mode'], custom['options']))
        base_mode = cfg.mode
        for stage, mode, changes in runs:
            segmenter.with_options(mode=mode)
            bg = changes.get('background', False)
            opts = dataclasses.replace(cfg.options, **changes)
            voc = vocab_bg if bg else vocab
            slow = opts.pamr and dev.type == 'cpu'
            add(size, stage, lambda: segmenter.segment(image, vocabulary=voc, options=opts),
                reps=max(1, min(repeats, 3)) if slow else None)
        segmenter.with_options(mode=base_mode)
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
    p.add_argument('--sizes', nargs='+', type=parse_size, default=[(375, 500)], metavar='HxW',
                   help='image sizes, height x width (default 375x500)')
    p.add_argument('--image', type=Path, default=None, help='use this image (resized) instead of a synthetic scene')
    p.add_argument('--vocab', default=DEFAULT_VOCAB, help=f'class names (default "{DEFAULT_VOCAB}")')
    p.add_argument('--devices', default='auto', help="comma list of devices, or 'auto' = cpu (+ cuda if present)")
    p.add_argument('--pipelines', default=','.join(PIPELINES),
                   help=f'comma list of full-pipeline rows among {", ".join(PIPELINES)} (or "none")')
    p.add_argument('--repeats', type=int, default=5, help='timed runs per row (PAMR rows on CPU: at most 3)')
    p.add_argument('--warmup', type=int, default=1, help='untimed runs before each row')
    p.add_argument('--window', type=int, default=None, metavar='PX', help='sliding-window size (default 448)')
    p.add_argument('--stride', type=int, default=None, metavar='PX', help='sliding-window stride (default 224)')
    p.add_argument('--threads', type=int, default=None,
                   help='torch CPU threads (default: torch default). On a busy CPU, fewer threads than cores '
                        'avoid threads waiting for each other at every operation')
    p.add_argument('--random-weights', choices=RANDOM_WIDTHS, default=None,
                   help='write random weights of this width to a temp dir and time those (timing only)')
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
    opts = dict(bg_clean=bool(args.bg_clean), pamr=bool(args.pamr), background=args.background_threshold is not None)
    if args.background_threshold is not None:
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

    import torch

    threads_before = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _bench(args, names, pipelines)
    finally:
        torch.set_num_threads(threads_before)  # main() may run inside another program (tests)


def _bench(args: argparse.Namespace, names: List[str], pipelines: List[str]) -> int:
    from talk2dino_ros.model.segmenter import Segmenter

    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    with tempfile.TemporaryDirectory(prefix='t2d_bench_') as tmp:
        random_paths = None
        if args.random_weights:
            from talk2dino_ros.model.random_weights import write_random_weights

            log(f'writing {args.random_weights} random weights for {args.method} to {tmp} ...')
            if args.random_weights != 'tiny':
                args.variant = args.random_weights
            random_paths = write_random_weights(tmp, method=args.method, width=args.random_weights,
                                                variant=args.variant)
        # the flags give the geometry; the pipelines below set the post-processing themselves
        geometry = {k: v for k, v in (('window', args.window), ('stride', args.stride)) if v is not None}
        base = config_from_args(args, **geometry)
        if random_paths is not None:
            base = dataclasses.replace(base, weights={k: str(v) for k, v in random_paths.items()},
                                       allow_random_weights=True)
        rows: List[Row] = []
        load_start = load_average()
        for device in _devices(args.devices):
            log(f'loading {args.method} on {device} ...')
            segmenter = Segmenter.from_config(dataclasses.replace(base, device=device))
            rows += bench_device(segmenter, names, args.sizes, args.image, args.repeats, args.warmup,
                                 pipelines, _custom_run(args), log)
            del segmenter
        load_end = load_average()

    env = environment()
    weights_note = (f'RANDOM WEIGHTS ({args.random_weights} width): timing only, the outputs mean nothing'
                    if args.random_weights else 'weights: ' + ', '.join(f'{k}={v}' for k, v in base.weights.items()))
    meta = dict(method=base.method, variant=base.variant, fp16=base.fp16, resolution=base.resolution,
                window=base.window, stride=base.stride, classes=len(names), repeats=args.repeats,
                warmup=args.warmup, random_weights=args.random_weights, load_average_start=load_start,
                load_average_end=load_end, **env)
    variant = f' {base.variant}' if catalog.get_method(base.method).has_variants else ''
    print(f'# talk2dino_ros benchmark: {base.method}{variant}, {len(names)} classes, resolution '
          f'{base.resolution}, fp16 {"on (CUDA)" if base.fp16 else "off"}')
    print(f'# {weights_note}')
    print(f'# torch {env["torch"]}, {env["torch_threads"]} CPU threads on {env["cpu_count"]} cores ({env["cpu"]})'
          + (f', GPU {env["gpu"]}' if env.get('gpu') else '') + f'; load average {load_start} -> {load_end}')
    if any(r.authors_s is not None for r in rows):
        print('# authors: their Talk2DINO code on the 2-core project CPU (method.md §10), 375x500, 5 classes')
    busy = _busy_warning(load_start, load_end, env['cpu_count'])
    if busy:
        print(f'# WARNING: {busy}')
    print(format_table(rows))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(meta=meta, rows=[r.as_dict() for r in rows]), indent=1))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point; returns 0, or 2 after one ``error: ...`` line."""
    return run_cli(_run, argv)


if __name__ == '__main__':
    sys.exit(main())
