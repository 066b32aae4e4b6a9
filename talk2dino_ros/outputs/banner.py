"""A warning banner on a picture (e.g. "RANDOM WEIGHTS" on every overlay made from random weights)."""
from __future__ import annotations

import numpy as np

BANNER_RGB = (200, 20, 20)
TEXT_RGB = (255, 255, 255)
#: the banner on every picture made from random weights (node overlays, segment_image, segment_bag)
RANDOM_WEIGHTS_BANNER = 'RANDOM WEIGHTS - results are meaningless'


def banner_strip(width: int, height_limit: int, text: str) -> np.ndarray:
    """uint8 [h, width, 3]: ``text`` in white on a red band, ``h`` at most ``height_limit`` (and about an
    eighth of it); the font scale follows the width so that the whole text fits on one line."""
    import cv2

    font, thickness = cv2.FONT_HERSHEY_SIMPLEX, max(1, width // 400)
    (text_w, text_h), baseline = cv2.getTextSize(text, font, 1.0, thickness)
    scale = max(0.3, min((width * 0.94) / max(text_w, 1), (height_limit / 8) / max(text_h + baseline, 1)))
    (text_w, text_h), baseline = cv2.getTextSize(text, font, scale, thickness)
    band = max(1, min(height_limit, text_h + baseline + 2 * max(2, int(4 * scale))))
    strip = np.empty((band, width, 3), np.uint8)
    strip[:] = BANNER_RGB
    origin = (max(0, (width - text_w) // 2), min(band - 1, (band + text_h) // 2))
    cv2.putText(strip, text, origin, font, scale, TEXT_RGB, thickness, cv2.LINE_AA)
    return strip


def _check(rgb: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f'a banner needs uint8 [H, W, 3], got {rgb.dtype} {rgb.shape}')


def draw_banner(rgb: np.ndarray, text: str) -> np.ndarray:
    """A copy of ``rgb`` (uint8 [H, W, 3]) whose top rows are the banner (the size stays; a caller that
    draws more, like the overlay's legend, starts below :func:`banner_height`)."""
    _check(rgb)
    out = np.ascontiguousarray(rgb).copy()
    strip = banner_strip(out.shape[1], out.shape[0], text)
    out[:strip.shape[0]] = strip
    return out


def banner_height(rgb_shape, text: str) -> int:
    """Rows :func:`draw_banner` covers on an image of this shape."""
    return int(banner_strip(int(rgb_shape[1]), int(rgb_shape[0]), text).shape[0])


def stack_banner(rgb: np.ndarray, text: str) -> np.ndarray:
    """``rgb`` with the banner added above it (taller picture): nothing of the picture is covered."""
    _check(rgb)
    return np.concatenate([banner_strip(rgb.shape[1], rgb.shape[0], text), rgb], axis=0)
