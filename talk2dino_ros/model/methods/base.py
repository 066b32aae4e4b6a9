"""The interface every segmentation method implements; front ends never see which one runs."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import List, Sequence

import torch

from talk2dino_ros.model.types import InferenceOptions


class SegmentationMethod(ABC, torch.nn.Module):
    """Text -> class embeddings, image window -> per-class scores.

    Implementations hold their frozen networks, are moved to a device once and run under
    ``torch.inference_mode`` (the segmenter takes care of that).
    """

    #: registry name, e.g. 'talk2dino'
    name: str = ''
    #: the backbone's patch size; whole-frame inputs are rounded to multiples of it
    patch_size: int = 14

    def text_names(self, names: Sequence[str], background: bool) -> List[str]:
        """Strings to encode for a vocabulary (a method whose background is a text class adds it)."""
        return list(names)

    @abstractmethod
    def encode_text(self, names: Sequence[str]) -> torch.Tensor:
        """Class embeddings [len(names), D] for these names; each row depends only on its own name."""

    @abstractmethod
    def window_scores(self, windows: torch.Tensor, text: torch.Tensor,
                      options: InferenceOptions) -> torch.Tensor:
        """Scores for a batch of windows.

        ``windows``: float32 [B, 3, h, w], RGB in 0..255, on the method's device.
        ``text``: [K, D] rows from :meth:`encode_text` of :meth:`text_names`.
        Returns [B, C, h, w] float32 scores at window resolution, with C = K, or K + 1 when the method
        adds a constant background channel at index 0 (``options.background``).
        """

    def adds_background_channel(self, options: InferenceOptions) -> bool:
        """True when :meth:`window_scores` prepends a background channel (not a text class)."""
        return False
