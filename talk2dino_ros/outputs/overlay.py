"""Colour overlay of a label map on the camera image, with a legend of the classes in view (cv2)."""
from __future__ import annotations

from typing import List, Sequence, Tuple

import cv2
import numpy as np

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def legend_entries(labels: np.ndarray, num_ids: int, max_entries: int) -> List[int]:
    """Label ids (never 0) present in ``labels``, largest area first, at most ``max_entries``."""
    counts = np.bincount(labels.ravel(), minlength=num_ids)[:num_ids]
    present = [int(i) for i in np.flatnonzero(counts) if i != 0]
    present.sort(key=lambda i: (-int(counts[i]), i))
    return present[:max(0, max_entries)]


def ascii_label(name: str, limit: int = 32) -> str:
    """What cv2's Hershey fonts can draw: non-ASCII characters become '?', long names are cut."""
    text = ''.join(ch if 32 <= ord(ch) < 127 else '?' for ch in name)
    return text if len(text) <= limit else text[:limit - 3] + '...'


def _legend_geometry(height: int, width: int) -> Tuple[float, int, int]:
    """Font scale, thickness and row height suited to the image size."""
    scale = float(np.clip(min(height, width) / 900.0, 0.35, 1.2))
    thickness = 1 if scale < 0.8 else 2
    (_, text_h), baseline = cv2.getTextSize('Ag', _FONT, scale, thickness)
    return scale, thickness, text_h + baseline + 6


def draw_legend(image: np.ndarray, ids: Sequence[int], names: Sequence[str], colors: np.ndarray,
                top: int = 0) -> int:
    """Draw a legend box (swatch + name per id) in the top-left corner, ``top`` rows down, in place;
    returns rows drawn.

    ``names[i]`` / ``colors[i]`` describe label id ``i`` (index 0 = background). Rows that do not fit
    the image height are left out.
    """
    full_height, width = image.shape[:2]
    scale, thickness, row_h = _legend_geometry(full_height, width)
    image = image[top:]  # a view: drawing below a banner
    height = image.shape[0]
    fit = max(0, (height - 8) // row_h)
    ids = list(ids)[:fit]
    if not ids:
        return 0
    texts = [ascii_label(names[i]) for i in ids]
    text_w = max(cv2.getTextSize(t, _FONT, scale, thickness)[0][0] for t in texts)
    swatch = row_h - 6
    box_w = min(width, 4 + swatch + 6 + text_w + 6)
    box_h = 4 + row_h * len(ids)
    region = image[:box_h, :box_w]
    region[:] = (region.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken so text stays readable
    for row, (class_id, text) in enumerate(zip(ids, texts)):
        top = 4 + row * row_h
        colour = tuple(int(c) for c in colors[class_id])
        cv2.rectangle(image, (4, top), (4 + swatch - 1, top + swatch - 1), colour, thickness=-1)
        cv2.putText(image, text, (4 + swatch + 6, top + swatch - 2), _FONT, scale, (255, 255, 255),
                    thickness, cv2.LINE_AA)
    return len(ids)


def make_overlay(rgb: np.ndarray, labels: np.ndarray, colors: np.ndarray, names: Sequence[str],
                 alpha: float = 0.5, legend: bool = True, max_legend: int = 12, banner: str = '') -> np.ndarray:
    """rgb8 [H, W, 3] image: class colours blended over ``rgb`` (background pixels, id 0, untouched).

    ``labels``: [H, W] ids into ``colors`` [N + 1, 3] / ``names`` (index 0 = background). ``banner``: a
    warning across the top (e.g. random weights); the legend then starts below it, never under it.
    """
    if rgb.shape[:2] != labels.shape:
        raise ValueError(f'overlay needs labels of the image size {rgb.shape[:2]}, got {labels.shape}')
    out = rgb.astype(np.float32)
    tint = colors[labels].astype(np.float32)
    fg = (labels != 0)[..., None]
    out = np.where(fg, out * (1.0 - alpha) + tint * alpha, out)
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    top = 0
    if banner:
        from talk2dino_ros.outputs.banner import draw_banner, banner_height

        out, top = draw_banner(out, banner), banner_height(out.shape, banner)
    if legend:
        draw_legend(out, legend_entries(labels, len(colors), max_legend), names, colors, top=top)
    return out
