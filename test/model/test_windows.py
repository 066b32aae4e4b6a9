"""Image geometry: mmcv keep-ratio resize, mmseg sliding windows, overlap averaging, final resize."""
import numpy as np
import pytest
import torch

import talk2dino_ros.model  # noqa: F401
from talk2dino_ros.model.windows import (Window, merge_windows, rescale_size, resize_scores, resize_uint8,
                                         round_to_multiple, slide_windows)


@pytest.mark.parametrize('hw,expected', [
    ((375, 500), (448, 597)),      # VOC 500x375 -> 597x448 (docs/method.md §5.1)
    ((1024, 2048), (448, 896)),    # Cityscapes 2048x1024 -> 896x448
    ((500, 375), (597, 448)),      # portrait
    ((448, 448), (448, 448)),
    ((100, 500), (410, 2048)),     # aspect 5 > 2048/448: the long side is capped, short side < 448
    ((200, 2000), (205, 2048)),
    ((37, 41), (448, 496)),        # small images are upscaled
])
def test_rescale_size(hw, expected):
    assert rescale_size(*hw) == expected


def test_rescale_size_other_protocol_sizes():
    assert rescale_size(60, 80, short=56, long=2048) == (56, 75)
    assert rescale_size(375, 500, short=448, long=500) == (375, 500)


def test_slide_windows_examples():
    wins = slide_windows(448, 597)
    assert [(w.x1, w.x2) for w in wins] == [(0, 448), (149, 597)]
    assert all((w.y1, w.y2) == (0, 448) for w in wins)
    wins = slide_windows(448, 896)
    assert [w.x1 for w in wins] == [0, 224, 448]
    assert slide_windows(448, 448) == [Window(0, 448, 0, 448)]
    # a side shorter than the window: one smaller window on that axis
    assert slide_windows(300, 400) == [Window(0, 300, 0, 400)]
    wins = slide_windows(410, 2048)
    assert len(wins) == 9 and all((w.y1, w.y2) == (0, 410) for w in wins)   # (2048-448+223)//224+1
    assert wins[-1].x2 == 2048 and wins[-1].x1 == 1600


def test_slide_windows_grid_rows_major_and_coverage():
    wins = slide_windows(597, 896)
    assert len(wins) == 2 * 3
    assert [(w.y1, w.x1) for w in wins[:3]] == [(0, 0), (0, 224), (0, 448)]
    assert wins[3].y1 == 149
    cover = np.zeros((597, 896), int)
    for w in wins:
        assert (w.y2 - w.y1, w.x2 - w.x1) == (448, 448)
        cover[w.y1:w.y2, w.x1:w.x2] += 1
    assert cover.min() >= 1


def test_slide_windows_formula_matches_mmseg():
    """n = max(H - crop + stride - 1, 0) // stride + 1; windows end at min(i*stride + crop, H)."""
    for H in [14, 56, 57, 84, 100, 111, 112, 113]:
        wins = slide_windows(H, 56, crop=56, stride=28)
        assert len(wins) == max(H - 56 + 27, 0) // 28 + 1
        assert wins[-1].y2 == H
        assert all(w.y2 - w.y1 == min(56, H) for w in wins)


def test_merge_windows_hand_computed():
    # width 5, windows [0,3) and [2,5): column 2 is covered twice
    a = torch.tensor([[[1.0, 2.0, 3.0]]])
    b = torch.tensor([[[10.0, 20.0, 30.0]]])
    merged = merge_windows([a, b], [Window(0, 1, 0, 3), Window(0, 1, 2, 5)], 1, 5)
    np.testing.assert_allclose(merged[0, 0].numpy(), [1, 2, (3 + 10) / 2, 20, 30])


def test_merge_windows_597():
    wins = slide_windows(448, 597)
    maps = [torch.full((2, 448, 448), 1.0), torch.full((2, 448, 448), 3.0)]
    merged = merge_windows(maps, wins, 448, 597)
    assert merged.shape == (2, 448, 597)
    row = merged[0, 0].numpy()
    assert (row[:149] == 1).all() and (row[149:448] == 2).all() and (row[448:] == 3).all()


def test_resize_scores_align_corners_false():
    x = torch.tensor([[[0.0, 1.0]]])
    np.testing.assert_allclose(resize_scores(x, 1, 4)[0, 0].numpy(), [0, 0.25, 0.75, 1], atol=1e-7)
    y = torch.randn(3, 5, 6)
    assert resize_scores(y, 5, 6) is y
    assert resize_scores(y, 375, 500).shape == (3, 375, 500)


def test_resize_uint8_and_round():
    img = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    assert resize_uint8(img, 60, 80) is img
    out = resize_uint8(img, 56, 75)
    assert out.shape == (56, 75, 3) and out.dtype == np.uint8
    const = np.full((10, 12, 3), 77, np.uint8)
    assert (resize_uint8(const, 30, 31) == 77).all()
    assert round_to_multiple(448, 597, 14) == (448, 602)
    assert round_to_multiple(5, 20, 14) == (14, 14)
