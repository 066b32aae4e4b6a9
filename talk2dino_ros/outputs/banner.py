"""A warning banner burnt into a picture (e.g. "RANDOM WEIGHTS" on the demo's overlays)."""
from __future__ import annotations

import numpy as np

BANNER_RGB = (200, 20, 20)
TEXT_RGB = (255, 255, 255)


def draw_banner(rgb: np.ndarray, text: str) -> np.ndarray:
    """A copy of ``rgb`` (uint8 [H, W, 3]) with ``text`` in white on a red band across the top.

    The font scale follows the image width so the whole text fits on one line; the band covers about
    an eighth of the height at most and never more than the image.
    """
    import cv2

    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f'draw_banner needs uint8 [H, W, 3], got {rgb.dtype} {rgb.shape}')
    out = np.ascontiguousarray(rgb).copy()
    height, width = out.shape[:2]
    font, thickness = cv2.FONT_HERSHEY_SIMPLEX, max(1, width // 400)
    (text_w, text_h), baseline = cv2.getTextSize(text, font, 1.0, thickness)
    scale = max(0.3, min((width * 0.94) / max(text_w, 1), (height / 8) / max(text_h + baseline, 1)))
    (text_w, text_h), baseline = cv2.getTextSize(text, font, scale, thickness)
    band = min(height, text_h + baseline + 2 * max(2, int(4 * scale)))
    out[:band] = BANNER_RGB
    origin = (max(0, (width - text_w) // 2), min(height - 1, (band + text_h) // 2))
    cv2.putText(out, text, origin, font, scale, TEXT_RGB, thickness, cv2.LINE_AA)
    return out
