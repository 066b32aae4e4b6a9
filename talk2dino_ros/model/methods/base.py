"""The interface every segmentation method implements; front ends never see which one runs."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import List, Sequence

import torch

from talk2dino_ros.model.types import InferenceOptions


class WindowScores:
    """Scores of a batch of windows [B, C, h, w], produced on demand for a range of channels.

    A method computes what couples the classes once (backbone, patch-grid scores, cleaning) and makes
    the window-resolution maps chunk by chunk in :meth:`render`, so a large vocabulary never holds all
    its window-resolution maps at once.
    """

    #: number of score channels C
    channels: int = 0

    def render(self, start: int, stop: int) -> torch.Tensor:
        """float32 [B, stop - start, h, w]: channels ``start:stop`` at the windows' resolution."""
        raise NotImplementedError


class DenseWindowScores(WindowScores):
    """Window scores already computed for every channel."""

    def __init__(self, scores: torch.Tensor):
        self.scores = scores
        self.channels = int(scores.shape[1])

    def render(self, start: int, stop: int) -> torch.Tensor:
        return self.scores[:, start:stop]


class SegmentationMethod(ABC, torch.nn.Module):
    """Text -> class embeddings, image window -> per-class scores.

    Implementations hold their frozen networks, are moved to a device once and run under
    ``torch.inference_mode`` (the segmenter takes care of that).
    """

    #: registry name, e.g. 'talk2dino'
    name: str = ''
    #: the backbone's patch size; whole-frame inputs are rounded to multiples of it
    patch_size: int = 14
    #: attribute name of the image backbone module (input [B, 3, h, w]) the fast path may replay
    fast_path_module: str = ''
    #: set by the builder: some loaded network has a non-published (random test) width
    test_width: bool = False

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

    def window_stages(self, windows: torch.Tensor, text: torch.Tensor,
                      options: InferenceOptions) -> WindowScores:
        """Like :meth:`window_scores`, but the window-resolution maps are made per channel range on demand.

        The default computes every channel at once; methods override it to make large vocabularies cheap.
        """
        return DenseWindowScores(self.window_scores(windows, text, options).float())

    def adds_background_channel(self, options: InferenceOptions) -> bool:
        """True when :meth:`window_scores` prepends a background channel (not a text class)."""
        return False
