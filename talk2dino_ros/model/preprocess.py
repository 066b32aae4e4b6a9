"""Frame -> model input on the model's device: one uint8 upload, resize there, float RGB 0..255 out.

On the CPU the resize is OpenCV's bilinear (INTER_LINEAR) on uint8, exactly as before (the benchmarks'
mmcv resize). On CUDA the uint8 frame is uploaded once and resized by ``torch`` bilinear
(align_corners=False, no antialias: the same sampling grid as OpenCV) and rounded back to uint8 levels;
OpenCV's fixed-point interpolation differs from it by at most one grey level per pixel, so the CUDA input
is within 1/255 of the CPU one (scores stay within the fp32 tolerance the engine tests use).
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from talk2dino_ros.model.windows import resize_uint8


def to_model_input(images: Sequence[np.ndarray], size: Tuple[int, int], device: torch.device) -> torch.Tensor:
    """Same-size HxWx3 uint8 RGB frames -> float32 [N, 3, h, w] on ``device`` (values 0..255, integral)."""
    h, w = size
    if device.type == 'cpu':
        batch = [torch.from_numpy(resize_uint8(img, h, w)).permute(2, 0, 1) for img in images]
        return torch.stack(batch).float()
    host = torch.from_numpy(np.stack(images) if len(images) > 1 else images[0][None])
    if device.type == 'cuda':
        host = host.pin_memory()
    frames = host.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    if tuple(frames.shape[-2:]) == (h, w):
        return frames.contiguous()
    resized = F.interpolate(frames, size=(h, w), mode='bilinear', align_corners=False)
    return resized.round_().clamp_(0, 255)
