"""Semantic-segmentation metrics with exactly the semantics of mmsegmentation 0.30.

The reference path (``CustomDataset.pre_eval`` -> ``intersect_and_union`` -> ``pre_eval_to_metrics``
-> ``total_area_to_metrics`` -> ``evaluate``) is split into one function per step:

1. :func:`reduce_zero_label` - 0 -> 255, minus 1, 254 -> 255 (only for the benchmarks that set it);
2. :func:`intersect_and_union` - per image, the four per-class pixel areas over non-ignored pixels;
   values outside ``[0, num_classes - 1]`` fall out of the histograms as with ``torch.histc``;
3. :class:`IoUAccumulator` - sums the per-image areas in dataset order. mmseg sums float32 tensors;
   we keep that float32 running sum (used for the reported numbers, so they are bit-identical to
   the reference) and an exact int64 sum beside it;
4. :func:`total_area_to_metrics` - per-class IoU = I/U and Acc = I/L (NaN where the denominator is 0),
   aAcc = sum(I)/sum(L), and the summary ``round(nanmean(x) * 100, 2)`` (percent).

Beside mmseg's areas the accumulator keeps a confusion matrix (:func:`confusion_matrix`; rows = ground
truth, columns = prediction) for the report's pictures; it never enters the reported numbers.
"""
from __future__ import annotations

import warnings
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

Areas = Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def reduce_zero_label(label: np.ndarray) -> np.ndarray:
    """mmseg's label shift: 0 -> 255 (ignored), v -> v - 1 for 1..254, 255 stays 255.

    The three steps run in mmseg's order on a uint8 copy, so nothing underflows.
    """
    out = np.array(label, dtype=np.uint8, copy=True)
    out[out == 0] = 255
    out -= 1                # 255 -> 254 (original 0 and 255 both), v -> v - 1
    out[out == 254] = 255
    return out


def _checked_pair(pred: np.ndarray, label: np.ndarray, num_classes: int,
                  reduce_zero_label: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Both maps as arrays of one shape, with ``reduce_zero_label`` applied to the label once."""
    pred = np.asarray(pred)
    label = np.asarray(label)
    if pred.shape != label.shape:
        raise ValueError(f'prediction shape {pred.shape} != label shape {label.shape}')
    if num_classes < 1:
        raise ValueError(f'num_classes must be >= 1, got {num_classes}')
    if reduce_zero_label:
        label = _reduce_zero_label(label)
    return pred, label


def intersect_and_union(pred: np.ndarray, label: np.ndarray, num_classes: int,
                        ignore_index: int = 255, reduce_zero_label: bool = False) -> Areas:
    """Per-class (intersection, union, predicted, ground-truth) pixel areas of one image.

    ``pred``: integer map of predicted class ids; ``label``: the ground truth as loaded (uint8 raw
    values; ``reduce_zero_label`` is applied here, exactly once, as mmseg does). Pixels whose
    (shifted) label equals ``ignore_index`` are excluded. Returns four int64 arrays of length
    ``num_classes``; union = pred + label - intersect.
    """
    pred, label = _checked_pair(pred, label, num_classes, reduce_zero_label)
    valid = label != ignore_index
    pred = pred[valid].astype(np.int64, copy=False)
    label = label[valid].astype(np.int64, copy=False)
    intersect = pred[pred == label]
    area_intersect = _histogram(intersect, num_classes)
    area_pred = _histogram(pred, num_classes)
    area_label = _histogram(label, num_classes)
    area_union = area_pred + area_label - area_intersect
    return area_intersect, area_union, area_pred, area_label


def confusion_matrix(pred: np.ndarray, label: np.ndarray, num_classes: int, ignore_index: int = 255,
                     reduce_zero_label: bool = False) -> np.ndarray:
    """int64 [K, K] pixel counts of one image: ``[g, p]`` = pixels of ground-truth class g predicted as p.

    Same pixels as :func:`intersect_and_union` (ignored labels dropped, ``reduce_zero_label`` applied
    once); a pixel whose label or prediction lies outside ``0..K-1`` is not counted. Its diagonal is the
    intersection, its row sums the label areas of in-range predictions.
    """
    pred, label = _checked_pair(pred, label, num_classes, reduce_zero_label)
    pred = pred.astype(np.int64, copy=False).ravel()
    label = label.astype(np.int64, copy=False).ravel()
    keep = (label != ignore_index) & (label >= 0) & (label < num_classes) & (pred >= 0) & (pred < num_classes)
    flat = label[keep] * num_classes + pred[keep]
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def normalize_confusion(confusion: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the share of a ground-truth class given to each prediction);
    rows of classes absent from the ground truth are NaN."""
    confusion = np.asarray(confusion, dtype=np.float64)
    with np.errstate(divide='ignore', invalid='ignore'):
        return confusion / confusion.sum(axis=1, keepdims=True)


def _reduce_zero_label(label: np.ndarray) -> np.ndarray:
    if label.dtype != np.uint8:
        if label.size and (label.min() < 0 or label.max() > 255):
            raise ValueError('reduce_zero_label needs label values in 0..255 (uint8 semantics)')
    return reduce_zero_label(label)


def _histogram(values: np.ndarray, num_classes: int) -> np.ndarray:
    """``torch.histc(values, bins=K, min=0, max=K-1)`` for integer values: out-of-range dropped."""
    inside = values[(values >= 0) & (values < num_classes)]
    return np.bincount(inside, minlength=num_classes).astype(np.int64, copy=False)


def total_area_to_metrics(total_area_intersect: np.ndarray, total_area_union: np.ndarray,
                          total_area_pred_label: np.ndarray, total_area_label: np.ndarray,
                          class_names: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """Final metrics from the accumulated areas, as mmseg 0.30 ``total_area_to_metrics`` + ``evaluate``.

    The divisions run in the dtype of the inputs (float32 for mmseg-exact totals). Returns
    ``IoU``/``Acc``: per-class fractions as float64 arrays (NaN where union / label area is 0);
    ``aAcc``: fraction; ``mIoU``/``mAcc``/``aAcc_percent``: percent rounded to 2 decimals the way
    mmseg does (``round(nanmean(x) * 100, 2)``, NaN when every class is NaN); ``class_names``:
    echoed when given; and ``IoU_percent``/``Acc_percent``: per-class percent, 2 decimals.
    """
    inter = np.asarray(total_area_intersect)
    union = np.asarray(total_area_union)
    label = np.asarray(total_area_label)
    del total_area_pred_label  # part of mmseg's signature; not needed for IoU/Acc/aAcc
    with np.errstate(divide='ignore', invalid='ignore'):
        iou = inter / union
        acc = inter / label
        all_acc = inter.sum() / label.sum()
    out: Dict[str, object] = {
        'IoU': iou.astype(np.float64),
        'Acc': acc.astype(np.float64),
        'aAcc': float(all_acc),
        'mIoU': _summary(iou),
        'mAcc': _summary(acc),
        'aAcc_percent': _summary(np.atleast_1d(all_acc)),
        'IoU_percent': _per_class_percent(iou),
        'Acc_percent': _per_class_percent(acc),
    }
    if class_names is not None:
        if len(class_names) != len(iou):
            raise ValueError(f'{len(class_names)} class names for {len(iou)} classes')
        out['class_names'] = tuple(class_names)
    return out


def _summary(values: np.ndarray) -> float:
    """mmseg's ``np.round(np.nanmean(v) * 100, 2)`` in the input dtype, as a 2-decimal float."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)  # all-NaN slice -> NaN, on purpose
        mean = np.nanmean(values)
    # numpy 1.x (mmseg's era): float32 scalar * Python int -> float64, so the x100 runs in float64
    value = np.round(np.float64(mean) * 100, 2)
    return float('nan') if np.isnan(value) else round(float(value), 2)


def _per_class_percent(values: np.ndarray) -> np.ndarray:
    # mmseg rounds in the input dtype; the second rounding only tidies the float32 -> float64 view
    return np.round(np.round(values * values.dtype.type(100), 2).astype(np.float64), 2)


class IoUAccumulator:
    """Sums per-image areas over a dataset (mmseg ``pre_eval`` path) and turns them into metrics.

    ``total_area_*`` are float32 sums in update order (bit-identical to mmseg's Python ``sum`` of
    float32 tensors); ``exact_area_*`` are the same sums in int64; ``confusion`` is the summed
    :func:`confusion_matrix` (int64 [K, K], rows ground truth). ``state_dict()`` / ``load_state_dict()``
    round-trip all of them exactly (JSON-safe), for resuming.
    """

    FIELDS = ('area_intersect', 'area_union', 'area_pred_label', 'area_label')

    def __init__(self, num_classes: int, ignore_index: int = 255,
                 reduce_zero_label: bool = False) -> None:
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.reduce_zero_label = bool(reduce_zero_label)
        self.reset()

    def reset(self) -> None:
        self.num_images = 0
        for name in self.FIELDS:
            setattr(self, 'total_' + name, np.zeros(self.num_classes, np.float32))
            setattr(self, 'exact_' + name, np.zeros(self.num_classes, np.int64))
        self.confusion = np.zeros((self.num_classes, self.num_classes), np.int64)

    def update(self, pred: np.ndarray, label: np.ndarray) -> Areas:
        """Score one image (``label`` raw, as loaded) and add its areas; returns the areas."""
        areas = intersect_and_union(pred, label, self.num_classes, self.ignore_index,
                                    self.reduce_zero_label)
        for name, area in zip(self.FIELDS, areas):
            total = getattr(self, 'total_' + name)
            # float32 + float32 elementwise, one image at a time: mmseg's accumulation order
            setattr(self, 'total_' + name, (total + area.astype(np.float32)).astype(np.float32))
            getattr(self, 'exact_' + name).__iadd__(area)
        self.confusion += confusion_matrix(pred, label, self.num_classes, self.ignore_index,
                                           self.reduce_zero_label)
        self.num_images += 1
        return areas

    def metrics(self, class_names: Optional[Sequence[str]] = None,
                exact: bool = False) -> Dict[str, object]:
        """Metrics of everything seen so far (float32 mmseg path, or the exact int64 sums)."""
        prefix = 'exact_' if exact else 'total_'
        totals = [getattr(self, prefix + name) for name in self.FIELDS]
        if exact:
            totals = [t.astype(np.float64) for t in totals]
        return total_area_to_metrics(*totals, class_names=class_names)

    def running_miou(self) -> float:
        """Current mIoU in percent (for a progress bar)."""
        return float(self.metrics()['mIoU'])

    def state_dict(self) -> Dict[str, object]:
        """JSON-serialisable snapshot (float32 values are exact in Python floats)."""
        state: Dict[str, object] = {
            'num_classes': self.num_classes, 'ignore_index': self.ignore_index,
            'reduce_zero_label': self.reduce_zero_label, 'num_images': self.num_images,
        }
        for name in self.FIELDS:
            state['total_' + name] = [float(v) for v in getattr(self, 'total_' + name)]
            state['exact_' + name] = [int(v) for v in getattr(self, 'exact_' + name)]
        state['confusion_matrix'] = self.confusion.tolist()  # rows: ground truth, columns: prediction
        return state

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Restore a :meth:`state_dict` snapshot; refuses one made for other settings."""
        for key in ('num_classes', 'ignore_index', 'reduce_zero_label'):
            if state.get(key) != getattr(self, key):
                raise ValueError(f'accumulator state has {key}={state.get(key)!r}, '
                                 f'expected {getattr(self, key)!r}')
        for name in self.FIELDS:
            total = np.asarray(state['total_' + name], dtype=np.float32)
            exact = np.asarray(state['exact_' + name], dtype=np.int64)
            if total.shape != (self.num_classes,) or exact.shape != (self.num_classes,):
                raise ValueError(f'accumulator state field {name} has the wrong length')
            setattr(self, 'total_' + name, total)
            setattr(self, 'exact_' + name, exact)
        # snapshots written before the matrix existed restore the areas and leave the matrix empty
        confusion = np.asarray(state.get('confusion_matrix', np.zeros((self.num_classes,) * 2)), dtype=np.int64)
        if confusion.shape != (self.num_classes, self.num_classes):
            raise ValueError('accumulator state field confusion_matrix has the wrong shape')
        self.confusion = confusion
        self.num_images = int(state['num_images'])
