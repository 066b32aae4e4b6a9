"""Image geometry shared by every method: evaluation resize, sliding windows, merge, resize back."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def rescale_size(height: int, width: int, short: int = 448, long: int = 2048) -> Tuple[int, int]:
    """mmcv ``imrescale`` keep-ratio size: s = min(long/max, short/min); returns (new_h, new_w).

    Each side is at least 1 pixel: for extreme aspect ratios (e.g. 1x10000) mmcv's rounding gives 0,
    which no resize accepts; every other size is mmcv's.
    """
    s = min(long / max(height, width), short / min(height, width))
    return max(1, int(height * s + 0.5)), max(1, int(width * s + 0.5))


def resize_uint8(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """cv2 bilinear (INTER_LINEAR) resize of a uint8 HxWxC image, as mmcv does for the benchmarks."""
    if image.shape[:2] == (height, width):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def round_to_multiple(height: int, width: int, multiple: int) -> Tuple[int, int]:
    """Nearest multiples of ``multiple`` (at least one patch) for the whole-frame mode."""
    return (max(multiple, int(round(height / multiple)) * multiple),
            max(multiple, int(round(width / multiple)) * multiple))


@dataclass(frozen=True)
class Window:
    y1: int
    y2: int
    x1: int
    x2: int


def slide_windows(height: int, width: int, crop: int = 448, stride: int = 224) -> List[Window]:
    """mmseg ``slide_inference`` window grid: rows-major, last window shifted to end at the border."""
    n_rows = max(height - crop + stride - 1, 0) // stride + 1
    n_cols = max(width - crop + stride - 1, 0) // stride + 1
    out = []
    for r in range(n_rows):
        for c in range(n_cols):
            y2 = min(r * stride + crop, height)
            x2 = min(c * stride + crop, width)
            out.append(Window(max(y2 - crop, 0), y2, max(x2 - crop, 0), x2))
    return out


def merge_windows(window_scores: List[torch.Tensor], windows: List[Window], height: int, width: int) -> torch.Tensor:
    """Sum window maps [C, h, w] into a canvas and divide by the per-pixel window count -> [C, H, W]."""
    C = window_scores[0].shape[0]
    canvas = window_scores[0].new_zeros((C, height, width))
    count = window_scores[0].new_zeros((1, height, width))
    for s, w in zip(window_scores, windows):
        canvas[:, w.y1:w.y2, w.x1:w.x2] += s
        count[:, w.y1:w.y2, w.x1:w.x2] += 1
    return canvas / count


def resize_scores(scores: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[C, h, w] -> [C, H, W] bilinear, align_corners=False (mmseg's final resize)."""
    if scores.shape[-2:] == (height, width):
        return scores
    return F.interpolate(scores[None], size=(height, width), mode='bilinear', align_corners=False)[0]
