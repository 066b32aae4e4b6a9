"""Score segmentation on a rosbag2 whose ground-truth label images are on a topic (``evaluate --bag``).

Ground truth: ``sensor_msgs/Image`` mono8 (or mono16) with the node's label convention, 0 = background,
class ``i`` of ``classes`` = ``i + 1``; ``ignore_index`` (default 255) marks unlabelled pixels. Scored
classes are ``['background'] + classes`` with the same metric code as the benchmarks
(:class:`talk2dino_ros.evaluation.metrics.IoUAccumulator`: dataset-accumulated IoU, nanmean over classes).

Predictions come either from running ``segmenter`` on ``image_topic`` (its vocabulary is set to
``classes``; labels as ``result.labels_with_background_zero()``), or, with ``prediction_topic``, from
label images already in the bag (e.g. the ``/talk2dino/labels`` of a ``segment_bag`` output).
Images, ground truth and predictions are paired by header stamp; unpaired frames are counted, not scored.
A message that is not valid CDR is skipped, logged on stderr with its topic, index and reason, and listed
in the result's ``bad_messages`` (the caller decides whether that fails the run).
"""
from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from talk2dino_ros.bags import bag_io
from talk2dino_ros.evaluation.metrics import IoUAccumulator
from talk2dino_ros.model.types import BACKGROUND

LABEL_ENCODINGS = ('mono8', 'mono16', '8UC1', '16UC1')


def _label_array(raw: bytes, topic: str) -> tuple:
    """(stamp ns, labels [H, W]) of a serialized label image; BagError for a non-label encoding."""
    from talk2dino_ros.ros.image_conversion import image_to_numpy

    msg = bag_io.deserialize(raw, bag_io.IMAGE_TYPE)
    if msg.encoding not in LABEL_ENCODINGS:
        raise bag_io.BagError(f'label topic {topic} has encoding {msg.encoding!r}; expected one of '
                              f'{", ".join(LABEL_ENCODINGS)}')
    return bag_io.stamp_ns(msg.header), np.array(image_to_numpy(msg))


def check_truth_ids(gt: np.ndarray, num_classes: int, ignore_index: int, topic: str) -> None:
    """BagError when the ground truth has ids beyond the classes given (the benchmarks refuse such labels
    too): left in, they would be dropped from the label area and inflate the IoU of the classes scored."""
    bad = (gt > num_classes) & (gt != ignore_index)
    if bad.any():
        values = np.unique(gt[bad])
        shown = ', '.join(str(v) for v in values[:10]) + (', ...' if len(values) > 10 else '')
        raise bag_io.BagError(f'ground truth on {topic} has label ids {shown}, but the class list names only '
                              f'{num_classes} classes (ids 1..{num_classes}, 0 = background, {ignore_index} '
                              'ignored): give every class of the ground truth in --classes, in id order')


def label_connections(reader, topic: str) -> List[Any]:
    conns = [c for c in reader.connections if c.topic == topic]
    if not conns:
        raise bag_io.BagError(f'topic {topic!r} is not in bag {reader.path}; topics present: '
                              f'{bag_io.describe_topics(reader)}')
    if any(c.msgtype != bag_io.IMAGE_TYPE for c in conns):
        raise bag_io.BagError(f'label topic {topic!r} has type {conns[0].msgtype}; expected {bag_io.IMAGE_TYPE}')
    return conns


def evaluate_bag(segmenter: Any, bag: os.PathLike | str, image_topic: Optional[str], label_topic: str,
                 classes: Sequence[str], *, prediction_topic: Optional[str] = None, ignore_index: int = 255,
                 limit: Optional[int] = None, progress: bool = False) -> Dict[str, Any]:
    """mIoU (percent, mmseg rounding) and per-class IoU of a bag; see the module docstring.

    ``segmenter`` may be None when ``prediction_topic`` is given. Raises BagError for a missing topic
    (listing the topics present), a wrong message type or encoding, or a bag with no scorable frame.
    """
    classes = list(classes)
    if not classes:
        raise bag_io.BagError('classes is empty: give the class names of label ids 1, 2, ...')
    if prediction_topic is None and (segmenter is None or not image_topic):
        raise bag_io.BagError('give a segmenter and an image topic, or a prediction topic')
    names = [BACKGROUND] + classes
    acc = IoUAccumulator(len(names), ignore_index=ignore_index)
    started = time.perf_counter()
    reader = bag_io.open_bag(bag)
    try:
        gt_ids = {c.id for c in label_connections(reader, label_topic)}
        if prediction_topic is not None:
            source_ids = {c.id for c in label_connections(reader, prediction_topic)}
            source_topic = prediction_topic
        else:
            source_ids = {c.id for c in bag_io.image_connections(reader, image_topic)}
            source_topic = image_topic
            vocab = segmenter.set_vocabulary(classes)
        total = sum(c.msgcount for c in reader.connections if c.id in source_ids)
        if limit is not None:
            total = min(total, limit)
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=total, desc='evaluate', unit='frame', file=sys.stderr, dynamic_ncols=True)
        counts = {'frames': 0, 'scored': 0, 'unmatched': 0, 'size_mismatch': 0}
        bad_messages: List[Dict[str, Any]] = []
        index: Dict[str, int] = {}  # messages seen per topic

        def skip(conn: Any, timestamp: int, exc: bag_io.BadMessageError) -> None:
            entry = {'topic': conn.topic, 'index': index[conn.topic], 'timestamp': timestamp, 'reason': str(exc)}
            bad_messages.append(entry)
            line = f"skipped message {entry['index']} of {conn.topic} (bag time {timestamp} ns): {exc}"
            if bar is not None:
                bar.write(line, file=sys.stderr)
            else:
                print(line, file=sys.stderr, flush=True)
        timing = {'segment_s': 0.0}
        # One pass in bag order, pairing by header stamp; only not-yet-paired frames are held, so memory
        # stays bounded however long the bag is.
        pending_truth: Dict[int, np.ndarray] = {}
        pending_source: Dict[int, tuple] = {}

        def score(source: tuple, gt: np.ndarray) -> None:
            check_truth_ids(gt, len(classes), ignore_index, label_topic)
            if source[0] == 'pred':
                pred = source[1]
            else:
                t0 = time.perf_counter()
                pred = segmenter.segment(source[1], vocabulary=vocab).labels_with_background_zero()
                timing['segment_s'] += time.perf_counter() - t0
            if gt.shape != pred.shape:
                counts['size_mismatch'] += 1
            else:
                acc.update(pred, gt)
                counts['scored'] += 1
            if bar is not None:
                bar.update(1)
                if acc.num_images:
                    bar.set_postfix(mIoU=f'{acc.running_miou():.2f}', refresh=False)

        wanted = [c for c in reader.connections if c.id in gt_ids or c.id in source_ids]
        for conn, timestamp, raw in reader.messages(wanted):
            index[conn.topic] = index.get(conn.topic, -1) + 1
            if conn.id in gt_ids:
                try:
                    stamp, gt = _label_array(raw, label_topic)
                except bag_io.BadMessageError as exc:
                    skip(conn, timestamp, exc)
                    continue
                if stamp in pending_source:
                    score(pending_source.pop(stamp), gt)
                else:
                    pending_truth[stamp] = gt
                if conn.id not in source_ids:
                    continue
            if limit is not None and counts['frames'] >= limit:
                continue
            counts['frames'] += 1
            try:
                if prediction_topic is not None:
                    stamp, pred = _label_array(raw, prediction_topic)
                    source = ('pred', pred)
                else:
                    header, rgb = bag_io.decode_image(raw, conn.msgtype)
                    stamp, source = bag_io.stamp_ns(header), ('rgb', rgb)
            except bag_io.BadMessageError as exc:
                skip(conn, timestamp, exc)
                continue
            if stamp in pending_truth:
                score(source, pending_truth.pop(stamp))
            else:
                pending_source[stamp] = source
        counts['unmatched'] = len(pending_source)
        segment_s = timing['segment_s']
        if bar is not None:
            bar.close()
    finally:
        reader.close()
    if counts['scored'] == 0:
        raise bag_io.BagError(f'no frame of {source_topic} in {bag} could be paired with a ground-truth '
                              f'image on {label_topic} by header stamp ({counts["frames"]} frames, '
                              f'{counts["unmatched"]} without ground truth, {counts["size_mismatch"]} of '
                              f'another size, {len(bad_messages)} messages not valid)')
    metrics = acc.metrics(class_names=names)
    return {
        'bag': str(bag), 'source_topic': source_topic, 'label_topic': label_topic, 'classes': names,
        **counts, 'bad_messages': bad_messages,
        'mIoU': metrics['mIoU'], 'mAcc': metrics['mAcc'], 'aAcc': metrics['aAcc_percent'],
        'IoU': {n: _num(v) for n, v in zip(names, metrics['IoU_percent'])},
        'Acc': {n: _num(v) for n, v in zip(names, metrics['Acc_percent'])},
        'accumulator': acc.state_dict(),
        'wall_s': time.perf_counter() - started, 'segment_s': segment_s,
    }


def _num(value: float) -> Optional[float]:
    value = float(value)
    return None if math.isnan(value) else value


def format_bag_result(result: Dict[str, Any]) -> str:
    """A per-class table and summary line."""
    from talk2dino_ros.evaluation.report import RANDOM_WEIGHTS_HEADER

    width = max(12, max(len(n) for n in result['IoU']))
    lines = [RANDOM_WEIGHTS_HEADER] if result.get('random_weights') else []
    lines += [f"bag {result['bag']}: {result['source_topic']} vs {result['label_topic']}, "
             f"{result['scored']} of {result['frames']} frames scored",
             f"  {'class':<{width}}    IoU    Acc"]
    for name in result['IoU']:
        iou, acc = result['IoU'][name], result['Acc'][name]
        lines.append(f"  {name:<{width}} {_fmt(iou)} {_fmt(acc)}")
    lines.append(f"  {'summary':<{width}} mIoU {_fmt(result['mIoU'])}  mAcc {_fmt(result['mAcc'])}"
                 f"  aAcc {_fmt(result['aAcc'])}")
    return '\n'.join(lines)


def _fmt(value: Optional[float]) -> str:
    return '   -  ' if value is None or (isinstance(value, float) and math.isnan(value)) else f'{value:6.2f}'
