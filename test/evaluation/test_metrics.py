"""mmseg-0.30 metric semantics: hand-computed cases and a torch.histc replica of the reference path."""
import json
import math

import numpy as np
import pytest
import torch

from talk2dino_ros.evaluation.metrics import (IoUAccumulator, intersect_and_union, reduce_zero_label,
                                   total_area_to_metrics)


def test_reduce_zero_label_order_of_steps():
    raw = np.array([0, 1, 2, 150, 253, 254, 255], np.uint8)
    assert reduce_zero_label(raw).tolist() == [255, 0, 1, 149, 252, 253, 255]
    assert raw.tolist()[0] == 0  # input untouched


def test_intersect_and_union_hand_computed_with_ignore():
    label = np.array([[0, 0, 1, 1],
                      [2, 2, 255, 255]], np.uint8)
    pred = np.array([[0, 1, 1, 1],
                     [2, 0, 0, 2]])
    inter, union, area_pred, area_label = intersect_and_union(pred, label, 3)
    # valid pixels: first 6; pred there = 0,1,1,1,2,0 ; label = 0,0,1,1,2,2
    assert inter.tolist() == [1, 2, 1]
    assert area_pred.tolist() == [2, 3, 1]
    assert area_label.tolist() == [2, 2, 2]
    assert union.tolist() == [3, 3, 2]
    assert inter.dtype == np.int64


def test_out_of_range_values_fall_out_of_histograms():
    label = np.array([0, 1, 5, 255], np.uint8)   # 5 >= K: invalid GT, as histc drops it
    pred = np.array([0, 7, 1, 2])                # 7 >= K: dropped from the pred histogram
    inter, union, area_pred, area_label = intersect_and_union(pred, label, 3)
    assert inter.tolist() == [1, 0, 0]
    assert area_pred.tolist() == [1, 1, 0]       # pred 1 at the invalid-GT pixel still counts
    assert area_label.tolist() == [1, 1, 0]
    assert union.tolist() == [1, 2, 0]


def test_reduce_zero_label_in_intersect_and_union():
    label = np.array([0, 1, 2, 3, 255], np.uint8)  # -> ignore, 0, 1, 2, ignore
    pred = np.array([2, 0, 0, 2, 1])
    inter, union, area_pred, area_label = intersect_and_union(pred, label, 3, reduce_zero_label=True)
    assert inter.tolist() == [1, 0, 1]
    assert area_label.tolist() == [1, 1, 1]
    assert area_pred.tolist() == [2, 0, 1]


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match='shape'):
        intersect_and_union(np.zeros((2, 3)), np.zeros((3, 2), np.uint8), 2)


def test_absent_class_is_nan_and_excluded_from_mean():
    # class 2 never in GT nor predicted -> NaN; class 1 predicted but absent from GT -> IoU 0, Acc NaN
    inter = np.array([3, 0, 0], np.float32)
    union = np.array([4, 1, 0], np.float32)
    pred = np.array([3, 1, 0], np.float32)
    label = np.array([4, 0, 0], np.float32)
    m = total_area_to_metrics(inter, union, pred, label, class_names=['a', 'b', 'c'])
    assert m['IoU'][0] == pytest.approx(0.75) and m['IoU'][1] == 0 and math.isnan(m['IoU'][2])
    assert m['Acc'][0] == pytest.approx(0.75) and math.isnan(m['Acc'][1]) and math.isnan(m['Acc'][2])
    assert m['mIoU'] == 37.5          # (75 + 0) / 2, NaN excluded
    assert m['mAcc'] == 75.0
    assert m['aAcc_percent'] == 75.0
    assert m['class_names'] == ('a', 'b', 'c')


def test_all_nan_gives_nan_summary():
    z = np.zeros(2, np.float32)
    m = total_area_to_metrics(z, z, z, z)
    assert math.isnan(m['mIoU']) and math.isnan(m['mAcc'])


def test_summary_rounds_to_two_decimals():
    inter = np.array([1, 2], np.float32)
    union = np.array([3, 3], np.float32)
    m = total_area_to_metrics(inter, union, union, union)
    assert m['mIoU'] == 50.0
    m = total_area_to_metrics(np.array([1], np.float32), np.array([3], np.float32),
                              np.array([3], np.float32), np.array([3], np.float32))
    assert m['mIoU'] == 33.33
    assert m['IoU_percent'].tolist() == [pytest.approx(33.33, abs=1e-4)]


def test_known_prediction_set_hand_computed_miou():
    """Three images, 3 classes, VOC-20-like reduce_zero_label; areas counted by hand."""
    labels = [np.array([[1, 1, 2], [0, 3, 255]], np.uint8),   # -> 0 0 1 / ign 2 ign
              np.array([[2, 2, 2], [2, 0, 0]], np.uint8),     # -> 1 1 1 / 1 ign ign
              np.array([[3, 3, 1], [1, 1, 1]], np.uint8)]     # -> 2 2 0 / 0 0 0
    preds = [np.array([[0, 1, 1], [2, 2, 0]]),
             np.array([[1, 1, 0], [1, 2, 2]]),
             np.array([[2, 0, 0], [0, 0, 1]])]
    acc = IoUAccumulator(3, reduce_zero_label=True)
    for p, lbl in zip(preds, labels):
        acc.update(p, lbl)
    # image 1 valid: (p,l) = (0,0) (1,0) (1,1) (2,2)
    # image 2 valid: (1,1) (1,1) (0,1) (1,1)
    # image 3 valid: (2,2) (0,2) (0,0) (0,0) (0,0) (1,0)
    # I = [1+0+3, 1+3+0, 1+0+1] = [4, 4, 2]
    # pred areas = [1+1+4, 2+3+1, 1+0+1] = [6, 6, 2]; label areas = [2+0+4, 1+4+0, 1+0+2] = [6, 5, 3]
    # U = [8, 7, 3]; IoU = [.5, 4/7, 2/3]; mIoU = 57.94; Acc = [4/6, 4/5, 2/3]; aAcc = 10/14
    assert acc.exact_area_intersect.tolist() == [4, 4, 2]
    assert acc.exact_area_union.tolist() == [8, 7, 3]
    m = acc.metrics(class_names=['x', 'y', 'z'])
    assert m['mIoU'] == round((0.5 + 4 / 7 + 2 / 3) / 3 * 100, 2) == 57.94
    assert m['mAcc'] == round((4 / 6 + 4 / 5 + 2 / 3) / 3 * 100, 2)
    assert m['aAcc_percent'] == round(10 / 14 * 100, 2)
    assert acc.num_images == 3
    assert acc.running_miou() == 57.94


def _mmseg_replica(preds, labels, num_classes, reduce_zero):
    """The reference path as described in docs/method.md §7.4, with torch.histc and a
    Python sum of float32 tensors."""
    per_image = []
    for pred, label in zip(preds, labels):
        pred = torch.from_numpy(pred)
        label = torch.from_numpy(label.copy())
        if reduce_zero:
            label[label == 0] = 255
            label = label - 1
            label[label == 254] = 255
        mask = label != 255
        pred = pred[mask]
        label = label[mask]
        inter = pred[pred == label]
        ai = torch.histc(inter.float(), bins=num_classes, min=0, max=num_classes - 1)
        ap = torch.histc(pred.float(), bins=num_classes, min=0, max=num_classes - 1)
        al = torch.histc(label.float(), bins=num_classes, min=0, max=num_classes - 1)
        per_image.append((ai, ap + al - ai, ap, al))
    totals = [sum(t[i] for t in per_image) for i in range(4)]
    iou = (totals[0] / totals[1]).numpy()
    acc = (totals[0] / totals[3]).numpy()
    return totals, np.round(np.float64(np.nanmean(iou)) * 100, 2), \
        np.round(np.float64(np.nanmean(acc)) * 100, 2)


@pytest.mark.parametrize('num_classes,reduce_zero', [(7, False), (5, True), (171, False)])
def test_matches_torch_histc_reference_bit_exactly(num_classes, reduce_zero):
    rng = np.random.RandomState(num_classes)
    preds, labels = [], []
    for k in range(6):
        shape = (37 + k, 53)
        top = num_classes + (1 if reduce_zero else 0)
        label = rng.randint(0, top, size=shape).astype(np.uint8)
        label[rng.rand(*shape) < 0.1] = 255
        pred = rng.randint(0, num_classes, size=shape).astype(np.int64)
        agree = rng.rand(*shape) < 0.3   # some hits; copies 255 / K too (out-of-range preds)
        pred[agree] = label[agree]
        labels.append(label)
        preds.append(pred)
    acc = IoUAccumulator(num_classes, reduce_zero_label=reduce_zero)
    for p, lbl in zip(preds, labels):
        acc.update(p, lbl)
    totals, miou, macc = _mmseg_replica(preds, labels, num_classes, reduce_zero)
    for mine, ref in zip([acc.total_area_intersect, acc.total_area_union,
                          acc.total_area_pred_label, acc.total_area_label], totals):
        np.testing.assert_array_equal(mine, ref.numpy())
    m = acc.metrics()
    assert m['mIoU'] == pytest.approx(float(miou), abs=1e-9)
    assert m['mAcc'] == pytest.approx(float(macc), abs=1e-9)


def test_state_dict_round_trips_through_json_and_resumes():
    rng = np.random.RandomState(0)
    data = [(rng.randint(0, 4, (9, 11)), rng.randint(0, 4, (9, 11)).astype(np.uint8))
            for _ in range(4)]
    full = IoUAccumulator(4)
    for p, lbl in data:
        full.update(p, lbl)
    half = IoUAccumulator(4)
    for p, lbl in data[:2]:
        half.update(p, lbl)
    resumed = IoUAccumulator(4)
    resumed.load_state_dict(json.loads(json.dumps(half.state_dict())))
    for p, lbl in data[2:]:
        resumed.update(p, lbl)
    assert resumed.num_images == 4
    for name in IoUAccumulator.FIELDS:
        np.testing.assert_array_equal(getattr(resumed, 'total_' + name), getattr(full, 'total_' + name))
        np.testing.assert_array_equal(getattr(resumed, 'exact_' + name), getattr(full, 'exact_' + name))
    assert resumed.metrics()['mIoU'] == full.metrics()['mIoU']


def test_load_state_dict_refuses_other_settings():
    state = IoUAccumulator(4).state_dict()
    with pytest.raises(ValueError, match='num_classes'):
        IoUAccumulator(5).load_state_dict(state)
    with pytest.raises(ValueError, match='reduce_zero_label'):
        IoUAccumulator(4, reduce_zero_label=True).load_state_dict(state)
