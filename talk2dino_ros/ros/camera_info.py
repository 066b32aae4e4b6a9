"""The ``camera_info`` output: the camera's CameraInfo for the node's output images.

The copy carries the outputs' header (the camera image's exact header), so RViz's Camera display and
``depth_image_proc`` pair it with ``labels`` the same way they pair the camera's own info with its image. When the
outputs have another size than the camera image, the calibration is scaled as an image resize scales it
(pixel edges kept aligned: ``cx' = (cx + 0.5) * s - 0.5``, ``fx' = fx * s``; P's Tx/Ty follow fx/fy).
"""
from __future__ import annotations

import copy
from typing import Any, Tuple


def _scaled_row(values, sx: float, sy: float, stride: int) -> list:
    """K (stride 3) or P (stride 4): fx, cx (and Tx) by sx; fy, cy (and Ty) by sy."""
    out = [float(v) for v in values]
    if len(out) != 3 * stride:
        return out
    fx_i, cx_i, fy_i, cy_i = 0, 2, stride + 1, stride + 2
    if out[fx_i] == 0 and out[fy_i] == 0:
        return out  # no calibration: nothing to scale
    out[fx_i] *= sx
    out[cx_i] = (out[cx_i] + 0.5) * sx - 0.5
    out[fy_i] *= sy
    out[cy_i] = (out[cy_i] + 0.5) * sy - 0.5
    if stride == 4:
        out[3] *= sx  # Tx = -fx * baseline
        out[7] *= sy
    return out


def output_camera_info(info: Any, header: Any, image_size: Tuple[int, int], output_size: Tuple[int, int]) -> Any:
    """A copy of ``info`` stamped with ``header``, scaled from the camera image's ``(width, height)`` to the
    outputs' ``(width, height)``."""
    out = copy.deepcopy(info)
    out.header = header
    (iw, ih), (ow, oh) = image_size, output_size
    if (iw, ih) == (ow, oh) or iw < 1 or ih < 1:
        return out
    sx, sy = ow / iw, oh / ih
    out.width, out.height = int(round(info.width * sx)), int(round(info.height * sy))
    out.k = _scaled_row(info.k, sx, sy, 3)
    out.p = _scaled_row(info.p, sx, sy, 4)
    roi = out.roi
    roi.x_offset, roi.width = int(round(roi.x_offset * sx)), int(round(roi.width * sx))
    roi.y_offset, roi.height = int(round(roi.y_offset * sy)), int(round(roi.height * sy))
    return out
