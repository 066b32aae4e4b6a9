"""The benchmark evaluation loop: a segmenter over a dataset, predictions saved and resumed, mmseg's metric.

``evaluate_dataset`` is what the ``evaluate`` CLI runs per benchmark; it takes any object with
``set_vocabulary`` and ``segment`` (the real :class:`Segmenter` or a test double).
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Protocol as TypingProtocol, Sequence

import numpy as np

from talk2dino_ros.data.benchmarks import Protocol, paper_miou
from talk2dino_ros.atomic_files import atomic_path, atomic_write_text
from talk2dino_ros.data.datasets import DatasetError, Sample, SegmentationDataset, check_sample_id, load_label
from talk2dino_ros.errors import Talk2DinoError
from talk2dino_ros.evaluation.metrics import IoUAccumulator
from talk2dino_ros.evaluation.report import finite_or_none, to_jsonable


class EvaluationInterrupted(Exception):
    """Ctrl-C during a benchmark: ``result`` holds the metrics of the images scored so far (marked
    ``partial``, with ``images_done`` / ``images_total``), or None when none was."""

    def __init__(self, result: Optional[Dict[str, Any]], done: int, total: int):
        super().__init__(f'interrupted after {done} of {total} images')
        self.result, self.done, self.total = result, done, total


class SegmenterLike(TypingProtocol):
    """What the evaluation loop needs from a segmenter (the real one or a test double)."""

    def set_vocabulary(self, names: Sequence[str]) -> Any: ...

    def segment(self, image: np.ndarray, *, options: Any = None) -> Any: ...


def make_options(proto: Protocol):
    """The engine's ``InferenceOptions`` for a benchmark protocol."""
    from talk2dino_ros.model.types import InferenceOptions

    return InferenceOptions(background=proto.background, background_threshold=proto.background_threshold,
                            background_rule=proto.background_rule, bg_clean=proto.bg_clean, pamr=proto.pamr)


def apply_protocol(segmenter: SegmenterLike, options: Any, vocabulary: Sequence[str]) -> None:
    """Give the segmenter a benchmark's options (first: a method may encode 'background' as a
    text class depending on them) and then its vocabulary."""
    with_options = getattr(segmenter, 'with_options', None)
    if callable(with_options):
        with_options(**{f.name: getattr(options, f.name) for f in dataclasses.fields(options)})
    segmenter.set_vocabulary(list(vocabulary))


def prediction_path(pred_dir: Path, sample: Sample) -> Path:
    """``pred_dir/<id>.png``; ``DatasetError`` when the id would lead outside ``pred_dir``."""
    check_sample_id(sample.id, f'sample {sample.image_path}')
    path = pred_dir / (sample.id + '.png')
    check_inside(path, pred_dir)
    return path


def check_inside(path: Path, root: Path) -> None:
    """``DatasetError`` unless ``path``, symbolic links resolved, lies inside ``root``."""
    resolved, base = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    if resolved != base and base not in resolved.parents:
        raise DatasetError(f'prediction {path} would be written outside {root} (it resolves to {resolved})')


def save_prediction(path: Path, labels: np.ndarray, root: Optional[Path] = None) -> None:
    """Write a uint8 PNG atomically (a crash never leaves a truncated file to resume from).

    With ``root``, the path is checked to resolve inside it once its folder exists (a symbolic link
    planted in the prediction folder cannot redirect the write).
    """
    from PIL import Image

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if root is not None:
            check_inside(path, root)
        # no fsync: thousands of predictions, and a lost one is simply recomputed on --resume
        with atomic_path(path, fsync=False) as tmp:
            Image.fromarray(np.asarray(labels, dtype=np.uint8)).save(tmp, format='PNG')
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


def _check_manifest(pred_dir: Path, fingerprint: Dict[str, Any], resume: bool, overwrite: bool = False) -> None:
    manifest = pred_dir / 'run.json'
    if not resume and not overwrite and (manifest.is_file() or
                                         (pred_dir.is_dir() and any(pred_dir.glob('*.png')))):
        raise Talk2DinoError(f'{pred_dir} already holds predictions: add --resume to keep them and compute only '
                             'the missing ones, or --overwrite to replace them')
    if resume and manifest.is_file():
        try:
            old = json.loads(manifest.read_text(encoding='utf-8'))
        except (OSError, ValueError):
            raise Talk2DinoError(f'cannot read {manifest}; remove it or run without --resume') from None
        if old != fingerprint:
            diff = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
            raise Talk2DinoError(f'predictions in {pred_dir} were made with other settings '
                                 f'({", ".join(diff)} differ); use another --save-predictions '
                                 'folder or run without --resume')
    pred_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(manifest, json.dumps(fingerprint, indent=1, sort_keys=True))


def evaluate_dataset(dataset: SegmentationDataset, get_segmenter: Callable[[], SegmenterLike],
                     proto: Protocol, *, limit: Optional[int] = None,
                     predictions_dir: Optional[Path] = None, resume: bool = False,
                     skip_bad: bool = False, fingerprint: Optional[Dict[str, Any]] = None,
                     progress: bool = True, overwrite: bool = False,
                     on_skip: Optional[Callable[[str], None]] = None) -> Dict[str, Any]:
    """Run one benchmark and return its result record (metrics, counts, timings).

    ``get_segmenter`` is called only when an image actually needs the model (a fully resumed run
    never loads weights). Labels of the segmentation result are benchmark class ids. Existing predictions
    are kept with ``resume``, replaced with ``overwrite``, and otherwise refused. ``on_skip`` gets one line
    per sample ``skip_bad`` leaves out (its image and why). Ctrl-C raises :class:`EvaluationInterrupted`
    with the metrics of the images scored so far.
    """
    bench = dataset.benchmark
    names = proto.class_names
    num_classes = len(names)
    acc = IoUAccumulator(num_classes, bench.ignore_index, bench.reduce_zero_label)
    options = make_options(proto)
    if predictions_dir is not None:
        _check_manifest(predictions_dir, dict(fingerprint or {}, benchmark=bench.name), resume, overwrite)

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

    def skip(sample: Sample, error: Exception) -> None:
        skipped.append({'id': sample.id, 'image': str(sample.image_path), 'error': str(error)})
        if on_skip is not None:
            on_skip(f'skipped {sample.image_path}: {error}')
        if bar:
            bar.update(1)

    loaded = dataset.iter_loaded(skip_bad=skip_bad, limit=limit, on_skip=skip)
    try:
        _score_all(loaded, acc, bar, times, counts, engine_timings, predictions_dir, resume, num_classes, segmenter,
                   options)
    except KeyboardInterrupt:
        if bar:
            bar.close()
        done = acc.num_images
        result = None
        if done:
            result = _result(dataset, proto, acc, counts, skipped, times, engine_timings, time.perf_counter() - start)
            result.update(partial=True, images_done=done, images_total=total)
        raise EvaluationInterrupted(result, done, total) from None
    if bar:
        bar.close()
    wall = time.perf_counter() - start
    if acc.num_images == 0:
        raise DatasetError(f'{bench.name}: no usable samples in {dataset.root}'
                           + (f' ({len(skipped)} skipped)' if skipped else ''))
    result = _result(dataset, proto, acc, counts, skipped, times, engine_timings, wall)
    result.update(partial=False, images_done=acc.num_images, images_total=total)
    return result


def _score_all(loaded, acc: IoUAccumulator, bar, times: Dict[str, float], counts: Dict[str, int],
               engine_timings: Dict[str, float], predictions_dir: Optional[Path], resume: bool, num_classes: int,
               segmenter: Callable[[], SegmenterLike], options: Any) -> None:
    """Segment (or reload) and score every sample ``loaded`` yields, updating the counters in place."""
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
                save_prediction(path, pred, root=predictions_dir)
        t2 = time.perf_counter()
        acc.update(pred, label)
        times['score_s'] += time.perf_counter() - t2
        if bar:
            bar.update(1)
            bar.set_postfix(mIoU=f'{acc.running_miou():.2f}', refresh=False)


def _result(dataset: SegmentationDataset, proto: Protocol, acc: IoUAccumulator, counts: Dict[str, int],
            skipped: List[Dict[str, str]], times: Dict[str, float], engine_timings: Dict[str, float],
            wall: float) -> Dict[str, Any]:
    """The result record of the images scored so far."""
    bench = dataset.benchmark
    names = proto.class_names
    num_classes = len(names)
    metrics = acc.metrics(class_names=names)
    scored = acc.num_images
    return {
        'benchmark': bench.name,
        'title': bench.title,
        'data_root': str(dataset.root),
        'protocol': to_jsonable(dataclasses.asdict(proto)),
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
        'IoU': {n: finite_or_none(v) for n, v in zip(names, metrics['IoU_percent'])},
        'Acc': {n: finite_or_none(v) for n, v in zip(names, metrics['Acc_percent'])},
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
