"""Per-class score maps kept at the processing resolution; full-resolution maps made chunk by chunk.

The merged window scores of a frame are one [C, h, w] tensor at the resolution the windows were scored
at (the "low-resolution" tensor). Everything a front end asks for at the output size (labels, maxima,
selected channels) is computed from it in chunks of classes, so the memory of a frame grows with the
vocabulary only by that one tensor, never by C full-resolution maps.

A chunk is bounded by the larger of the two sizes: the CPU resize copies its whole input, so a chunk
sized by a small output alone (thousands of classes for a 64x48 frame) would copy most of the
low-resolution tensor again.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from talk2dino_ros.model.windows import resize_scores

#: full-resolution elements (classes x pixels) made at once: 16 MiB of float32
FULL_RES_CHUNK_ELEMENTS = 1 << 22


def class_chunk(height: int, width: int, budget: int = FULL_RES_CHUNK_ELEMENTS, low_res_pixels: int = 0) -> int:
    """Classes per chunk within ``budget`` elements (>= 1), for an output of ``height`` x ``width`` made from
    maps of ``low_res_pixels`` pixels (whichever is larger bounds the chunk)."""
    return max(1, budget // max(1, height * width, low_res_pixels))


class ScoreMaps:
    """Low-resolution scores [C, h, w] (any device) plus the output size they are resized to (bilinear)."""

    def __init__(self, low_res: torch.Tensor, output_size: Tuple[int, int],
                 chunk_elements: int = FULL_RES_CHUNK_ELEMENTS):
        if low_res.dim() != 3:
            raise ValueError(f'score maps must be [C, h, w], got {tuple(low_res.shape)}')
        self.low_res = low_res
        self.output_size = (int(output_size[0]), int(output_size[1]))
        self.chunk = class_chunk(*self.output_size, budget=chunk_elements,
                                 low_res_pixels=int(low_res.shape[1]) * int(low_res.shape[2]))
        self._labels: Optional[torch.Tensor] = None

    @property
    def num_channels(self) -> int:
        return int(self.low_res.shape[0])

    def _full(self, start: int, stop: int) -> torch.Tensor:
        return resize_scores(self.low_res[start:stop], *self.output_size)

    def full_resolution(self, start: int = 0, stop: Optional[int] = None) -> torch.Tensor:
        """Channels ``start:stop`` at the output size, float32 [stop - start, H, W] (the only call that
        makes several full-resolution maps at once: use it for what is published, not for labels). Resized a
        chunk at a time into the result, so nothing but the result grows with the number of channels."""
        stop = self.num_channels if stop is None else stop
        if stop - start <= self.chunk:
            return self._full(start, stop)
        out = self.low_res.new_empty((stop - start, *self.output_size), dtype=torch.float32)
        for first in range(start, stop, self.chunk):
            last = min(first + self.chunk, stop)
            out[first - start:last - start] = self._full(first, last)
        return out

    def labels(self) -> torch.Tensor:
        """int32 [H, W] argmax over all channels at the output size (first maximum wins, as ``argmax``);
        computed once."""
        if self._labels is None:
            self._labels = self._argmax()
        return self._labels

    def _argmax(self) -> torch.Tensor:
        best_val: Optional[torch.Tensor] = None
        best_idx: Optional[torch.Tensor] = None
        for start in range(0, self.num_channels, self.chunk):
            part = self._full(start, min(start + self.chunk, self.num_channels))
            idx = part.argmax(dim=0, keepdim=True)
            val = part.gather(0, idx)[0]
            idx = idx[0]
            if best_val is None:
                best_val, best_idx = val, idx + start
            else:
                # strictly greater: on a tie the earlier channel keeps the pixel, as one argmax would
                better = val > best_val
                best_val = torch.where(better, val, best_val)
                best_idx = torch.where(better, idx + start, best_idx)
        assert best_idx is not None
        return best_idx.to(torch.int32)

    def channel_max(self, start: int = 0) -> torch.Tensor:
        """float32 [H, W] maximum over channels ``start:`` at the output size."""
        out: Optional[torch.Tensor] = None
        for first in range(start, self.num_channels, self.chunk):
            part = self._full(first, min(first + self.chunk, self.num_channels)).amax(dim=0)
            out = part if out is None else torch.maximum(out, part)
        if out is None:
            raise ValueError('no channels to take the maximum of')
        return out
