"""The evaluation accumulator's confusion matrix (rows ground truth, columns prediction)."""
import json

import numpy as np

from talk2dino_ros.evaluation.metrics import IoUAccumulator, confusion_matrix, intersect_and_union, normalize_confusion


def test_confusion_hand_computed_with_ignore():
    label = np.array([[0, 0, 1, 1],
                      [2, 2, 255, 255]], np.uint8)
    pred = np.array([[0, 1, 1, 1],
                     [2, 0, 0, 2]])
    cm = confusion_matrix(pred, label, 3)
    assert cm.tolist() == [[1, 1, 0],
                           [0, 2, 0],
                           [1, 0, 1]]
    assert cm.dtype == np.int64


def test_confusion_agrees_with_areas_on_random_maps():
    rng = np.random.default_rng(0)
    for reduce_zero in (False, True):
        # in-range labels only (raw 0..5 become 0..4 or ignored with the shift); out-of-range: next test
        label = rng.integers(0, 6 if reduce_zero else 5, size=(17, 23)).astype(np.uint8)
        label[rng.random(label.shape) < 0.1] = 255
        pred = rng.integers(0, 5, size=label.shape)
        inter, _, area_pred, area_label = intersect_and_union(pred, label, 5, reduce_zero_label=reduce_zero)
        cm = confusion_matrix(pred, label, 5, reduce_zero_label=reduce_zero)
        assert np.diag(cm).tolist() == inter.tolist()
        assert cm.sum(axis=0).tolist() == area_pred.tolist()
        assert cm.sum(axis=1).tolist() == area_label.tolist()


def test_out_of_range_prediction_is_not_counted():
    cm = confusion_matrix(np.array([0, 9, -1]), np.array([0, 1, 1], np.uint8), 2)
    assert cm.tolist() == [[1, 0], [0, 0]]


def test_normalized_rows_sum_to_one_and_absent_rows_are_nan():
    norm = normalize_confusion(np.array([[3, 1, 0], [0, 0, 0], [0, 2, 2]]))
    assert np.allclose(norm[0], [0.75, 0.25, 0.0])
    assert np.isnan(norm[1]).all()
    assert np.allclose(norm[2], [0.0, 0.5, 0.5])


def test_accumulator_sums_and_round_trips_the_matrix():
    acc = IoUAccumulator(3)
    acc.update(np.array([[0, 1], [2, 2]]), np.array([[0, 1], [1, 2]], np.uint8))
    acc.update(np.array([[0, 0]]), np.array([[2, 0]], np.uint8))
    assert acc.confusion.tolist() == [[2, 0, 0], [0, 1, 1], [1, 0, 1]]
    state = json.loads(json.dumps(acc.state_dict()))
    assert state['confusion_matrix'] == acc.confusion.tolist()
    again = IoUAccumulator(3)
    again.load_state_dict(state)
    assert again.confusion.tolist() == acc.confusion.tolist()
    acc.reset()
    assert acc.confusion.sum() == 0
