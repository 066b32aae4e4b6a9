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
Without ``--classes`` the class list stored in the bag is used (its ``talk2dino_ros.classes`` metadata,
written by make_demo_bag, or the first ClassInfo legend on a topic of the bag).

``--plot DIR`` (needs the optional matplotlib extra: ``pip install 'talk2dino_ros[plots]'``) writes, per
benchmark or bag, ``DIR/<name>_iou.png`` (per-class IoU bars) and ``DIR/<name>_confusion.png`` (confusion
matrix, each ground-truth row normalised). The JSON report carries every confusion matrix as pixel counts
under ``accumulator.confusion_matrix`` (rows: ground-truth class, columns: predicted class).
Weights: the per-role flags, else their published names in --weights-dir (see fetch_weights).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from talk2dino_ros.cli.common import (WEIGHT_FLAGS, CliError, add_model_arguments,
                                      background_threshold_arg, config_from_args, resolve_weights, run_cli)
from talk2dino_ros.data.benchmarks import BENCHMARK_ORDER, Benchmark, get_benchmark, protocol
from talk2dino_ros.data.datasets import DatasetError, DatasetNotFoundError, SegmentationDataset
from talk2dino_ros.cli.reminders import is_random, remind_random_weights
from talk2dino_ros.evaluation.loop import EvaluationInterrupted, SegmenterLike, evaluate_dataset
from talk2dino_ros.evaluation.plots import plots_summary, require_matplotlib, write_evaluation_plots
from talk2dino_ros.evaluation.report import format_result, format_summary, to_jsonable
from talk2dino_ros.errors import Talk2DinoError

__all__ = ['WEIGHT_FLAGS', 'build_parser', 'evaluate_dataset', 'main', 'run']  # WEIGHT_FLAGS: re-export


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
    p.add_argument('--overwrite', action='store_true',
                   help='replace predictions already in --save-predictions DIR (without it, or --resume, an '
                        'existing folder is refused)')
    p.add_argument('--skip-bad', action='store_true',
                   help='skip unreadable or inconsistent samples (each one printed with its reason) instead of '
                        'stopping; with --bag, messages that are not valid CDR are always skipped and listed, and '
                        'this flag keeps the exit code 0')
    p.add_argument('--out', type=Path, default=None, metavar='FILE',
                   help='write a JSON report here (settings, per-class IoU/Acc, confusion matrices, timings)')
    p.add_argument('--plot', type=Path, default=None, metavar='DIR',
                   help='write per-class IoU bar charts and normalised confusion matrices as PNG into DIR '
                        '(needs matplotlib: pip install \'talk2dino_ros[plots]\')')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    from talk2dino_ros.cli.evaluate_bag import add_bag_arguments  # lazy: rosbags is only needed for --bag

    add_bag_arguments(p)
    p.add_argument('--background-threshold', type=background_threshold_arg, default=None, metavar='T',
                   help='--bag only: background score (default 0.55, the node\'s); benchmarks use '
                        'their published protocol thresholds')
    return p


def sha256_file(path: Path) -> str:
    """The weight file's SHA256 for the report; a missing or unreadable file is one CLI error."""
    from talk2dino_ros.model.checkpoints import sha256_file as file_digest

    try:
        return file_digest(path)
    except FileNotFoundError:
        raise Talk2DinoError(f'weight file {path} does not exist') from None
    except OSError as exc:
        raise Talk2DinoError(f'cannot read weight file {path}: {exc.strerror or exc}') from None


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
    :func:`talk2dino_ros.cli.evaluate_bag.run_bag_cli`).
    """
    config = config_from_args(args, mode='slide')
    if weights is not None:
        config = dataclasses.replace(config, weights={k: str(v) for k, v in weights.items()})
    return config


def bag_segmenter_config(args: argparse.Namespace):
    """``evaluate --bag``'s config: the node's defaults (one pass, background class at 0.55 or
    --background-threshold, background cleaning), PAMR only with --pamr."""
    from talk2dino_ros.cli.segment_bag import NODE_DEFAULTS

    return config_from_args(args, background=True, pamr=False, **NODE_DEFAULTS)


def _select_benchmarks(name: str) -> List[Benchmark]:
    if name == 'all':
        return [get_benchmark(n) for n in BENCHMARK_ORDER]
    try:
        return [get_benchmark(name)]
    except KeyError as exc:
        raise Talk2DinoError(exc.args[0]) from None


_BAG_ONLY = ('image_topic', 'label_topic', 'classes', 'prediction_topic', 'background_threshold')
_BENCHMARK_ONLY = ('data_root', 'save_predictions', 'resume', 'overwrite')


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


def _report_header(args: argparse.Namespace, config: Any, weight_info: Dict[str, Any],
                   per_benchmark_options: bool = False) -> Dict[str, Any]:
    """The fields every evaluate report starts with (benchmark and bag runs alike).

    With ``per_benchmark_options`` (benchmark runs) the config's inference options are not the ones used:
    each benchmark's protocol sets its own, so the top level points there instead of contradicting them.
    """
    config_json = to_jsonable(config) if config is not None else None
    if per_benchmark_options and config_json is not None:
        config_json['options'] = 'per benchmark: see benchmarks.<name>.protocol'
    return {
        'tool': 'talk2dino_ros evaluate',
        'started': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'random_weights': bool(getattr(args, 'allow_random_weights', False)),
        'partial': False,
        'method': args.method, 'variant': args.variant,
        'config': config_json,
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
    if getattr(args, 'plot', None) is not None:
        require_matplotlib()  # a missing extra is one line now, not after the whole evaluation
    if args.bag is not None:
        return run_bag(args, make_segmenter)
    if args.resume and args.save_predictions is None:
        raise CliError('--resume needs --save-predictions DIR (the predictions to re-score)')
    if args.resume and args.overwrite:
        raise CliError('--resume keeps the saved predictions and --overwrite replaces them: give one')
    if args.overwrite and args.save_predictions is None:
        raise CliError('--overwrite needs --save-predictions DIR (the predictions to replace)')
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

    report = dict(_report_header(args, config, weight_info, per_benchmark_options=True), benchmarks={},
                  missing=missing)
    fingerprint = {'method': args.method, 'variant': args.variant, 'fp16': args.fp16,
                   'weights': {r: w['sha256'] for r, w in weight_info.items()},
                   'allow_random_weights': args.allow_random_weights,
                   'random_weights': args.allow_random_weights}  # the only path random files load through
    if config is not None:  # settings that change the predictions (not paths or device)
        fingerprint['geometry'] = {k: to_jsonable(getattr(config, k, None)) for k in
                                   ('mode', 'resolution', 'window', 'stride', 'max_long_side')}
        # an exported backend or reduced precision (recorded only when chosen: older runs still resume)
        for key, default in (('backend', 'torch'), ('precision', 'fp32')):
            if getattr(config, key, default) != default:
                fingerprint[key] = getattr(config, key)

    def random() -> bool:  # what was loaded decides, once it is loaded
        return is_random(args, cache.get('seg'))

    results = []
    for bench in benches:
        if bench.name not in datasets:
            continue
        proto = protocol(bench, args.method, args.variant, args.pamr)
        for note in proto.notes:
            print(f'note: {bench.name}: {note}', file=sys.stderr)
        pred_dir = args.save_predictions / bench.name if args.save_predictions else None
        fp = dict(fingerprint, protocol=to_jsonable(dataclasses.asdict(proto)))
        try:
            result = evaluate_dataset(datasets[bench.name], get_segmenter, proto, limit=args.limit,
                                      predictions_dir=pred_dir, resume=args.resume, overwrite=args.overwrite,
                                      skip_bad=args.skip_bad, fingerprint=fp, progress=not args.quiet,
                                      on_skip=lambda line: print(f'warning: {line}', file=sys.stderr, flush=True))
        except EvaluationInterrupted as stop:
            report['random_weights'] = random()
            report['partial'] = True
            report['interrupted'] = {'benchmark': bench.name, 'images_done': stop.done, 'images_total': stop.total,
                                     'not_run': [b.name for b in benches[benches.index(bench) + 1:]
                                                 if b.name in datasets]}
            if stop.result is not None:
                report['benchmarks'][bench.name] = stop.result
                print(format_result(stop.result, report['random_weights']), flush=True)
            else:
                print(f'PARTIAL ({bench.name}): interrupted before the first image was scored', flush=True)
            _finish(report, args.out)
            raise
        results.append(result)
        report['benchmarks'][bench.name] = result
        report['random_weights'] = random()
        print(format_result(result, report['random_weights']), flush=True)
        _plot(args, result, bench.name, f'{bench.name}, {args.method} {args.variant}', report)
    if len(results) > 1:
        print(format_summary(results, report['random_weights']))
    return _finish(report, args.out)


def run_bag(args: argparse.Namespace,
            make_segmenter: Optional[Callable[[], SegmenterLike]] = None) -> Dict[str, Any]:
    """``evaluate --bag``: :func:`talk2dino_ros.cli.evaluate_bag.run_bag_cli` (flag and topic checks
    before any weights load, scoring, the table) inside the benchmark report's envelope."""
    from talk2dino_ros.cli.evaluate_bag import run_bag_cli

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
    report['random_weights'] = bool(result.get('random_weights')) or report['random_weights']
    _plot(args, result, 'bag_' + Path(str(args.bag)).name,
          f'bag {Path(str(args.bag)).name}, {result["source_topic"]}', report)
    return _finish(report, args.out)


def _plot(args: argparse.Namespace, result: Dict[str, Any], name: str, title: str,
          report: Dict[str, Any]) -> None:
    """``--plot DIR``: the IoU chart and confusion matrix of one result; their paths go into the report."""
    if getattr(args, 'plot', None) is None:
        return
    paths = write_evaluation_plots(result, args.plot, name, title,
                                   random_weights=bool(report.get('random_weights')))
    report.setdefault('plots', []).extend(str(p) for p in paths)
    print(plots_summary(paths), flush=True)


def _write_json(path: Path, report: Dict[str, Any]) -> None:
    from talk2dino_ros.atomic_files import atomic_write_text

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(to_jsonable(report), indent=1, allow_nan=False))
    except OSError as exc:
        raise Talk2DinoError(f'cannot write {path}: {exc.strerror or exc}') from None


def resume_command(argv: Sequence[str]) -> str:
    """The command that continues an interrupted run: the same arguments with --resume (not --overwrite)."""
    import shlex

    kept = [a for a in argv if a not in ('--overwrite', '--resume')]
    return shlex.join(['evaluate', *kept, '--resume'])


def _run(argv: Optional[Sequence[str]]) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        report = run(args)
    except EvaluationInterrupted as stop:
        where = f' and in {args.out}' if args.out is not None else ''
        print(f'interrupted after {stop.done} of {stop.total} images: partial results above{where}, marked '
              'partial', file=sys.stderr)
        if args.save_predictions is not None:
            print(f'continue with: {resume_command(argv)}', file=sys.stderr)
        else:
            print('nothing was saved to continue from: add --save-predictions DIR to make a run resumable',
                  file=sys.stderr)
        remind_random_weights(args)
        return 130
    bad = len(report.get('bag', {}).get('bad_messages', ()))
    if bad and not args.skip_bad:
        # each was logged when skipped; the score is over the other frames
        print(f'error: {bad} message(s) in {args.bag} are not valid messages and were skipped (listed above); '
              '--skip-bad accepts that', file=sys.stderr)
    remind_random_weights(args, random=bool(report.get('random_weights')))
    return 1 if bad and not args.skip_bad else 0


def main(argv: Optional[List[str]] = None) -> int:
    return run_cli(_run, argv)


if __name__ == '__main__':
    sys.exit(main())
