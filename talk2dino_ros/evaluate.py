"""``evaluate``: mIoU of Talk2DINO / CLIP-DINOiser on the 8 standard benchmarks (mmseg 0.30 protocol).

  evaluate --benchmark voc21 --data-root data --dinov2-weights F --clip-weights F --proj-weights F
  evaluate --benchmark all --data-root data --method clip_dinoiser --openclip-weights F \\
           --clip-dinoiser-weights F --out results.json

The data root is mmseg's ``data/`` folder (``VOCdevkit/``, ``coco_stuff164k/``, ``cityscapes/``,
``ade/``), or a single benchmark's own folder. Each benchmark runs with the authors' settings for the
chosen method (sliding 448/224 windows on the image resized to short side 448, background threshold
0.55 ViT-B / 0.54 ViT-L, background cleaning on VOC-21 and COCO-Object, PAMR on by default for
Talk2DINO); the metric is mmseg's (dataset-accumulated IoU, nanmean over classes, 2 decimals).

``--save-predictions DIR`` writes ``DIR/<benchmark>/<id>.png``: uint8 maps of benchmark class ids
(indices into the benchmark's class list; for the reduce_zero_label benchmarks voc20, context59 and
ade20k these are the *reduced* ids, i.e. raw label value - 1). ``--resume`` re-scores the predictions
already in DIR (made with the same settings) and only runs the model on the missing ones.

``--bag BAG --image-topic T --label-topic L --classes "a,b,c"`` scores a rosbag2 instead of a benchmark:
its ground-truth label images (0 = background, class i of --classes = i + 1, 255 = ignore) against the
model run with the node's defaults (one pass, background threshold 0.55 or --background-threshold,
background cleaning), with the same metric code; the JSON report holds the result under ``bag``.
Weights: the per-role flags, else their published names in --weights-dir (see fetch_weights).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Protocol as TypingProtocol, Sequence

import numpy as np

from talk2dino_ros.cli_common import (WEIGHT_FLAGS, CliError, add_model_arguments,
                                      background_threshold_arg, config_from_args, resolve_weights, run_cli)
from talk2dino_ros.data.benchmarks import (BENCHMARK_ORDER, Benchmark, Protocol, get_benchmark,
                                           paper_miou, protocol)
from talk2dino_ros.data.datasets import (DatasetError, DatasetNotFoundError, Sample,
                                         SegmentationDataset, load_label)
from talk2dino_ros.metrics import IoUAccumulator
from talk2dino_ros.errors import Talk2DinoError

__all__ = ['WEIGHT_FLAGS', 'build_parser', 'evaluate_dataset', 'main', 'run']  # WEIGHT_FLAGS: re-export


class SegmenterLike(TypingProtocol):
    """What the evaluation loop needs from a segmenter (the real one or a test double)."""

    def set_vocabulary(self, names: Sequence[str]) -> Any: ...

    def segment(self, image: np.ndarray, *, options: Any = None) -> Any: ...


# ---------------------------------------------------------------------------------------------
# Protocol -> engine options
# ---------------------------------------------------------------------------------------------

def make_options(proto: Protocol):
    """The engine's ``InferenceOptions`` for a benchmark protocol."""
    from talk2dino_ros.model.types import InferenceOptions

    kwargs = dict(background=proto.background, background_threshold=proto.background_threshold,
                  bg_clean=proto.bg_clean, pamr=proto.pamr)
    fields = {f.name for f in dataclasses.fields(InferenceOptions)}
    if 'background_rule' in fields:
        kwargs['background_rule'] = proto.background_rule
    elif proto.method == 'clip_dinoiser' and proto.background and not proto.background_rule:
        raise Talk2DinoError(
            f'{proto.benchmark}: CLIP-DINOiser keeps "background" as an ordinary text class here '
            'without its saliency rule, which this engine version cannot express '
            '(InferenceOptions has no background_rule)')
    return InferenceOptions(**kwargs)


def apply_protocol(segmenter: SegmenterLike, options: Any, vocabulary: Sequence[str]) -> None:
    """Give the segmenter a benchmark's options (first: a method may encode 'background' as a
    text class depending on them) and then its vocabulary."""
    with_options = getattr(segmenter, 'with_options', None)
    if callable(with_options):
        with_options(**{f.name: getattr(options, f.name) for f in dataclasses.fields(options)})
    segmenter.set_vocabulary(list(vocabulary))


# ---------------------------------------------------------------------------------------------
# Saved predictions
# ---------------------------------------------------------------------------------------------

def prediction_path(pred_dir: Path, sample: Sample) -> Path:
    return pred_dir / (sample.id + '.png')


def save_prediction(path: Path, labels: np.ndarray) -> None:
    """Write a uint8 PNG atomically (a crash never leaves a truncated file to resume from)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + '.tmp')
    try:
        Image.fromarray(np.asarray(labels, dtype=np.uint8)).save(tmp, format='PNG')
        os.replace(tmp, path)
    except OSError as exc:
        raise Talk2DinoError(f'cannot write prediction {path}: {exc.strerror or exc}') from None


def load_prediction(path: Path, shape: Sequence[int], num_classes: int) -> Optional[np.ndarray]:
    """A saved prediction if it is usable for this sample, else None (it is then recomputed)."""
    if not path.is_file():
        return None
    try:
        pred = load_label(path)
    except DatasetError:
        return None
    if pred.shape != tuple(shape) or (pred.size and int(pred.max()) >= num_classes):
        return None
    return pred


def _check_manifest(pred_dir: Path, fingerprint: Dict[str, Any], resume: bool) -> None:
    manifest = pred_dir / 'run.json'
    if resume and manifest.is_file():
        try:
            old = json.loads(manifest.read_text())
        except (OSError, ValueError):
            raise Talk2DinoError(f'cannot read {manifest}; remove it or run without --resume') from None
        if old != fingerprint:
            diff = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
            raise Talk2DinoError(f'predictions in {pred_dir} were made with other settings '
                                 f'({", ".join(diff)} differ); use another --save-predictions '
                                 'folder or run without --resume')
    pred_dir.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps(fingerprint, indent=1, sort_keys=True))


# ---------------------------------------------------------------------------------------------
# The evaluation loop
# ---------------------------------------------------------------------------------------------

def evaluate_dataset(dataset: SegmentationDataset, get_segmenter: Callable[[], SegmenterLike],
                     proto: Protocol, *, limit: Optional[int] = None,
                     predictions_dir: Optional[Path] = None, resume: bool = False,
                     skip_bad: bool = False, fingerprint: Optional[Dict[str, Any]] = None,
                     progress: bool = True) -> Dict[str, Any]:
    """Run one benchmark and return its result record (metrics, counts, timings).

    ``get_segmenter`` is called only when an image actually needs the model (a fully resumed run
    never loads weights). Labels of the segmentation result are benchmark class ids.
    """
    bench = dataset.benchmark
    names = proto.class_names
    num_classes = len(names)
    acc = IoUAccumulator(num_classes, bench.ignore_index, bench.reduce_zero_label)
    options = make_options(proto)
    if predictions_dir is not None:
        _check_manifest(predictions_dir, dict(fingerprint or {}, benchmark=bench.name), resume)

    skipped: List[Dict[str, str]] = []
    state = {'segmenter': None}
    counts = {'segmented': 0, 'resumed': 0}
    times = {'load_s': 0.0, 'segment_s': 0.0, 'score_s': 0.0}
    engine_timings: Dict[str, float] = {}

    def segmenter() -> SegmenterLike:
        if state['segmenter'] is None:
            seg = get_segmenter()
            apply_protocol(seg, options, proto.vocabulary)
            state['segmenter'] = seg
        return state['segmenter']

    total = len(dataset) if limit is None else min(len(dataset), max(limit, 0))
    bar = _progress_bar(total, bench.name, progress)
    start = time.perf_counter()
    loaded = dataset.iter_loaded(skip_bad=skip_bad, limit=limit,
                                 on_skip=lambda s, e: (skipped.append({'id': s.id, 'error': str(e)}),
                                                       bar.update(1) if bar else None))
    while True:
        t0 = time.perf_counter()
        try:
            sample, image, label = next(loaded)
        except StopIteration:
            break
        times['load_s'] += time.perf_counter() - t0
        pred = None
        path = prediction_path(predictions_dir, sample) if predictions_dir is not None else None
        if resume and path is not None:
            pred = load_prediction(path, label.shape, num_classes)
            counts['resumed'] += pred is not None
        if pred is None:
            seg = segmenter()
            t1 = time.perf_counter()
            result = seg.segment(image, options=options)
            times['segment_s'] += time.perf_counter() - t1
            pred = _result_labels(result, label.shape, num_classes, sample)
            for key, value in (getattr(result, 'timings', None) or {}).items():
                engine_timings[key] = engine_timings.get(key, 0.0) + float(value)
            counts['segmented'] += 1
            if path is not None:
                save_prediction(path, pred)
        t2 = time.perf_counter()
        acc.update(pred, label)
        times['score_s'] += time.perf_counter() - t2
        if bar:
            bar.update(1)
            bar.set_postfix(mIoU=f'{acc.running_miou():.2f}', refresh=False)
    if bar:
        bar.close()
    wall = time.perf_counter() - start
    if acc.num_images == 0:
        raise DatasetError(f'{bench.name}: no usable samples in {dataset.root}'
                           + (f' ({len(skipped)} skipped)' if skipped else ''))
    metrics = acc.metrics(class_names=names)
    scored = acc.num_images
    return {
        'benchmark': bench.name,
        'title': bench.title,
        'data_root': str(dataset.root),
        'protocol': _jsonable(dataclasses.asdict(proto)),
        'reduce_zero_label': bench.reduce_zero_label,
        'num_classes': num_classes,
        'num_samples': len(dataset),
        'num_images': scored,
        'num_segmented': counts['segmented'],
        'num_resumed': counts['resumed'],
        'skipped': skipped,
        'mIoU': metrics['mIoU'],
        'mAcc': metrics['mAcc'],
        'aAcc': metrics['aAcc_percent'],
        'mIoU_exact': acc.metrics(exact=True)['mIoU'],
        'paper_mIoU': paper_miou(bench.name, proto.method, proto.variant, proto.pamr),
        'IoU': {n: _num(v) for n, v in zip(names, metrics['IoU_percent'])},
        'Acc': {n: _num(v) for n, v in zip(names, metrics['Acc_percent'])},
        'accumulator': acc.state_dict(),
        'timings': {
            'wall_s': wall, **times,
            'images_per_s': scored / wall if wall > 0 else None,
            'model_images_per_s': (counts['segmented'] / times['segment_s']
                                   if times['segment_s'] > 0 else None),
            'engine_mean_s': {k: v / counts['segmented'] for k, v in engine_timings.items()}
            if counts['segmented'] else {},
        },
    }


def _result_labels(result: Any, shape: Sequence[int], num_classes: int, sample: Sample) -> np.ndarray:
    labels = np.asarray(result.labels)
    if labels.shape != tuple(shape):
        raise Talk2DinoError(f'segmenter returned labels of shape {labels.shape} for {sample.image_path}, '
                             f'expected {tuple(shape)}')
    class_names = getattr(result, 'class_names', None)
    if class_names is not None and len(class_names) != num_classes:
        raise Talk2DinoError(f'segmenter produced {len(class_names)} classes, the benchmark has '
                             f'{num_classes}')
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise Talk2DinoError(f'segmenter returned label ids outside 0..{num_classes - 1} '
                             f'for {sample.image_path}')
    return labels.astype(np.uint8)


def _progress_bar(total: int, name: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=name, unit='img', file=sys.stderr, dynamic_ncols=True)


def _num(value: float) -> Optional[float]:
    value = float(value)
    return None if math.isnan(value) else value


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    return str(obj)


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------

def _fmt(value: Optional[float]) -> str:
    return '   -  ' if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f'{value:6.2f}'


def format_result(result: Dict[str, Any]) -> str:
    """Per-class table and summary row (beside the published number) of one benchmark."""
    proto = result['protocol']
    width = max(12, max(len(repr(n)) for n in result['IoU']))
    lines = [f"{result['benchmark']}: {result['title']}",
             f"  method {proto['method']} {proto['variant']}, pamr {'on' if proto['pamr'] else 'off'}"
             + (f", background {proto['background_threshold']}" if proto['background']
                and proto['method'] == 'talk2dino' else '')
             + f", {result['num_images']} images"
             + (f" ({len(result['skipped'])} skipped)" if result['skipped'] else ''),
             f"  {'class':<{width}}    IoU    Acc"]
    for name in result['IoU']:
        # repr shows names with odd whitespace exactly (ADE20K's 'bed ')
        shown = repr(name) if name != name.strip() else name
        lines.append(f"  {shown:<{width}} {_fmt(result['IoU'][name])} {_fmt(result['Acc'][name])}")
    paper = result['paper_mIoU']
    delta = '' if paper is None else f" ({result['mIoU'] - paper:+.2f})"
    lines.append(f"  {'summary':<{width}} mIoU {_fmt(result['mIoU'])}  mAcc {_fmt(result['mAcc'])}"
                 f"  aAcc {_fmt(result['aAcc'])}  paper mIoU {_fmt(paper)}{delta}")
    return '\n'.join(lines)


def format_summary(results: Sequence[Dict[str, Any]]) -> str:
    lines = [f"{'benchmark':<12} {'mIoU':>6} {'paper':>6} {'images':>7} {'img/s':>7}"]
    for r in results:
        ips = r['timings']['images_per_s']
        lines.append(f"{r['benchmark']:<12} {_fmt(r['mIoU'])} {_fmt(r['paper_mIoU'])} "
                     f"{r['num_images']:>7} {ips if ips is None else round(ips, 2):>7}")
    return '\n'.join(lines)


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    seen, prep = set(), []
    for name in BENCHMARK_ORDER:  # voc20/voc21 and context59/context60 share their preparation
        text = get_benchmark(name).prepare
        if text not in seen:
            seen.add(text)
            prep.append(text)
    p = argparse.ArgumentParser(prog='evaluate', description=__doc__,
                                epilog='data preparation:\n\n' + '\n\n'.join(prep),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--benchmark', default=None,
                   help=f'one of {", ".join(BENCHMARK_ORDER)}, or "all" (required without --bag)')
    p.add_argument('--data-root', type=Path, default=None,
                   help="mmseg's data/ folder (required with --benchmark)")
    add_model_arguments(p)
    pamr = p.add_mutually_exclusive_group()
    pamr.add_argument('--pamr', dest='pamr', action='store_true', default=None,
                      help='force PAMR refinement on (Talk2DINO default: on)')
    pamr.add_argument('--no-pamr', dest='pamr', action='store_false', help='force PAMR off')
    p.add_argument('--limit', type=int, default=None, help='evaluate only the first N samples')
    p.add_argument('--save-predictions', type=Path, default=None, metavar='DIR',
                   help='write DIR/<benchmark>/<id>.png prediction maps (benchmark class ids)')
    p.add_argument('--resume', action='store_true',
                   help='re-score predictions already in --save-predictions DIR')
    p.add_argument('--skip-bad', action='store_true',
                   help='skip (and count) unreadable or inconsistent samples instead of stopping')
    p.add_argument('--out', type=Path, default=None, help='write a JSON report here')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    from talk2dino_ros.bag_evaluation import add_bag_arguments  # lazy: rosbags is only needed for --bag

    add_bag_arguments(p)
    p.add_argument('--background-threshold', type=background_threshold_arg, default=None, metavar='T',
                   help='--bag only: background score (default 0.55, the node\'s); benchmarks use '
                        'their published protocol thresholds')
    return p


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 20), b''):
                digest.update(chunk)
    except FileNotFoundError:
        raise Talk2DinoError(f'weight file {path} does not exist') from None
    except OSError as exc:
        raise Talk2DinoError(f'cannot read weight file {path}: {exc.strerror or exc}') from None
    return digest.hexdigest()


def collect_weights(args: argparse.Namespace) -> Dict[str, Path]:
    """role -> path for the chosen method (:func:`cli_common.resolve_weights`: the flags, else the
    published names in --weights-dir). Without --allow-random-weights a missing file is refused here,
    before any dataset is read, naming the flags that would give it."""
    weights = {role: Path(path) for role, path in resolve_weights(args).items()}
    if not args.allow_random_weights:
        missing = {role: path for role, path in weights.items() if not path.is_file()}
        if missing:
            flags = WEIGHT_FLAGS[args.method]
            raise CliError(f'{args.method} needs {", ".join(flags[r] for r in missing)} (not found: '
                           f'{", ".join(map(str, missing.values()))}; give the flags or --weights-dir DIR, '
                           'see fetch_weights)')
    return weights


def build_segmenter_config(args: argparse.Namespace, weights: Optional[Dict[str, Path]] = None):
    """The benchmark protocol's config (sliding windows); per-benchmark options are set later.

    ``weights`` (role -> path) replaces the ones the flags resolve to (kept for callers such as
    :func:`talk2dino_ros.bag_evaluation.run_bag_cli`).
    """
    config = config_from_args(args, mode='slide')
    if weights is not None:
        config = dataclasses.replace(config, weights={k: str(v) for k, v in weights.items()})
    return config


def bag_segmenter_config(args: argparse.Namespace):
    """``evaluate --bag``'s config: the node's defaults (one pass, background class at 0.55 or
    --background-threshold, background cleaning), PAMR only with --pamr."""
    from talk2dino_ros.segment_bag import NODE_DEFAULTS

    return config_from_args(args, background=True, pamr=False, **NODE_DEFAULTS)


def _select_benchmarks(name: str) -> List[Benchmark]:
    if name == 'all':
        return [get_benchmark(n) for n in BENCHMARK_ORDER]
    try:
        return [get_benchmark(name)]
    except KeyError as exc:
        raise Talk2DinoError(exc.args[0]) from None


_BAG_ONLY = ('image_topic', 'label_topic', 'classes', 'prediction_topic', 'background_threshold')
_BENCHMARK_ONLY = ('data_root', 'save_predictions', 'resume', 'skip_bad')


def _check_mode(args: argparse.Namespace) -> None:
    """--bag and --benchmark are two modes; refuse flags of the other one instead of ignoring them."""
    def given(names):
        return ['--' + n.replace('_', '-') for n in names if getattr(args, n, None) not in (None, False)]

    if getattr(args, 'bag', None) is not None:
        if args.benchmark is not None:
            raise CliError('--bag and --benchmark are exclusive: score a bag or a benchmark, not both')
        wrong = given(_BENCHMARK_ONLY)
        if wrong:
            raise CliError(f'{", ".join(wrong)}: only used with --benchmark, not with --bag')
        return
    if args.benchmark is None:
        raise CliError('give --benchmark NAME --data-root DIR, or --bag BAG (see evaluate --help)')
    if args.data_root is None:
        raise CliError('--benchmark needs --data-root DIR (mmseg\'s data/ folder)')
    wrong = given(_BAG_ONLY)
    if wrong:
        raise CliError(f'{", ".join(wrong)}: only used with --bag')


def _weight_info(weights: Dict[str, Path]) -> Dict[str, Dict[str, str]]:
    return {role: {'path': str(path), 'sha256': sha256_file(path)} for role, path in weights.items()}


def _report_header(args: argparse.Namespace, config: Any, weight_info: Dict[str, Any]) -> Dict[str, Any]:
    """The fields every evaluate report starts with (benchmark and bag runs alike)."""
    return {
        'tool': 'talk2dino_ros evaluate',
        'started': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'method': args.method, 'variant': args.variant,
        'config': _jsonable(config) if config is not None else None,
        'weights': weight_info, 'device': args.device, 'fp16': args.fp16, 'limit': args.limit,
    }


def _finish(report: Dict[str, Any], out: Optional[Path]) -> Dict[str, Any]:
    report['finished'] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    if out is not None:
        _write_json(out, report)
    return report


def run(args: argparse.Namespace,
        make_segmenter: Optional[Callable[[], SegmenterLike]] = None) -> Dict[str, Any]:
    """Evaluate as the CLI does; ``make_segmenter`` replaces the real engine (tests)."""
    if args.limit is not None and args.limit < 1:
        raise CliError(f'--limit must be >= 1, got {args.limit}')
    _check_mode(args)
    if args.bag is not None:
        return run_bag(args, make_segmenter)
    if args.resume and args.save_predictions is None:
        raise CliError('--resume needs --save-predictions DIR (the predictions to re-score)')
    benches = _select_benchmarks(args.benchmark)
    weights = collect_weights(args)
    # open every dataset before loading any weights: a wrong --data-root fails in a second
    datasets: Dict[str, SegmentationDataset] = {}
    missing: Dict[str, str] = {}
    for bench in benches:
        try:
            datasets[bench.name] = SegmentationDataset(bench, args.data_root)
        except DatasetNotFoundError as exc:
            if len(benches) == 1:
                raise
            missing[bench.name] = str(exc)
            print(f'warning: skipping {exc.summary}', file=sys.stderr)
    if not datasets:
        raise DatasetError(f'no benchmark data found under {args.data_root}')
    weight_info = _weight_info(weights)
    config = None
    if make_segmenter is None:
        config = build_segmenter_config(args, weights)

        def make_segmenter() -> SegmenterLike:
            from talk2dino_ros.model.segmenter import Segmenter
            return Segmenter.from_config(config)

    cache: Dict[str, SegmenterLike] = {}

    def get_segmenter() -> SegmenterLike:
        if 'seg' not in cache:
            cache['seg'] = make_segmenter()
        return cache['seg']

    report = dict(_report_header(args, config, weight_info), benchmarks={}, missing=missing)
    fingerprint = {'method': args.method, 'variant': args.variant, 'fp16': args.fp16,
                   'weights': {r: w['sha256'] for r, w in weight_info.items()},
                   'allow_random_weights': args.allow_random_weights}
    if config is not None:  # settings that change the predictions (not paths or device)
        fingerprint['geometry'] = {k: _jsonable(getattr(config, k, None)) for k in
                                   ('mode', 'resolution', 'window', 'stride', 'max_long_side')}
    results = []
    for bench in benches:
        if bench.name not in datasets:
            continue
        proto = protocol(bench, args.method, args.variant, args.pamr)
        for note in proto.notes:
            print(f'note: {bench.name}: {note}', file=sys.stderr)
        pred_dir = args.save_predictions / bench.name if args.save_predictions else None
        fp = dict(fingerprint, protocol=_jsonable(dataclasses.asdict(proto)))
        result = evaluate_dataset(datasets[bench.name], get_segmenter, proto, limit=args.limit,
                                  predictions_dir=pred_dir, resume=args.resume,
                                  skip_bad=args.skip_bad, fingerprint=fp,
                                  progress=not args.quiet)
        results.append(result)
        report['benchmarks'][bench.name] = result
        print(format_result(result), flush=True)
    if len(results) > 1:
        print(format_summary(results))
    return _finish(report, args.out)


def run_bag(args: argparse.Namespace,
            make_segmenter: Optional[Callable[[], SegmenterLike]] = None) -> Dict[str, Any]:
    """``evaluate --bag``: :func:`talk2dino_ros.bag_evaluation.run_bag_cli` (flag and topic checks
    before any weights load, scoring, the table) inside the benchmark report's envelope."""
    from talk2dino_ros.bag_evaluation import run_bag_cli

    state: Dict[str, Any] = {'config': None, 'weights': {}}

    def factory() -> SegmenterLike:  # called only after the bag and its topics checked out
        if make_segmenter is not None:
            return make_segmenter()
        from talk2dino_ros.model.segmenter import Segmenter

        state['weights'] = _weight_info(collect_weights(args))
        state['config'] = bag_segmenter_config(args)
        return Segmenter.from_config(state['config'])

    # run_bag_cli would write its bare result to --out; the envelope is written below instead
    result = run_bag_cli(argparse.Namespace(**dict(vars(args), out=None)), make_segmenter=factory)
    report = dict(_report_header(args, state['config'], state['weights']), bag=result)
    return _finish(report, args.out)


def _write_json(path: Path, report: Dict[str, Any]) -> None:
    tmp = path.with_name(path.name + '.tmp')
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(_jsonable(report), indent=1, allow_nan=False))
        os.replace(tmp, path)
    except OSError as exc:
        raise Talk2DinoError(f'cannot write {path}: {exc.strerror or exc}') from None


def _run(argv: Optional[Sequence[str]]) -> int:
    run(build_parser().parse_args(argv))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_cli(_run, argv)


if __name__ == '__main__':
    sys.exit(main())
