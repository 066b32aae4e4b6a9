"""Values of the colour-resolution images (labels, confidence, colour) at depth resolution.

Nearest neighbour only: a depth pixel takes the value of the colour pixel whose area holds its centre.
Label ids are never blended, so an edge between class 1 and class 3 never produces a 2.
"""
from __future__ import annotations

import numpy as np


def nearest_indices(source: int, target: int) -> np.ndarray:
    """int64 [target]: for each pixel centre of a ``target``-long axis, the ``source`` pixel containing it.

    Both axes span the same field of view (pixel edges aligned), as for a depth image registered to colour.
    """
    if source < 1 or target < 1:
        raise ValueError(f'axis lengths must be >= 1, got {source} and {target}')
    if source == target:
        return np.arange(target, dtype=np.int64)
    return np.minimum(((np.arange(target) + 0.5) * (source / target)).astype(np.int64), source - 1)


def sample_nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` ([H, W] or [H, W, C]) resampled to ``height`` x ``width`` by nearest neighbour."""
    rows = nearest_indices(image.shape[0], height)
    cols = nearest_indices(image.shape[1], width)
    return image[rows[:, None], cols[None, :]]


def footprint_ends(source: int, target: int) -> tuple:
    """(first, last) int64 [target]: the ``source`` pixels under the first and the last edge of each
    ``target`` pixel (equal for a 1:1 or an upsampled axis, two apart for a 2:1 one)."""
    i = np.arange(target)
    first = np.minimum((i * source) // target, source - 1)
    last = np.minimum(-((-(i + 1) * source) // target) - 1, source - 1)
    return first.astype(np.int64), np.maximum(last, first).astype(np.int64)


def uniform_footprint(labels: np.ndarray, height: int, width: int, stride: int = 1) -> np.ndarray:
    """bool [h, w] for every ``stride``-th pixel of a ``height`` x ``width`` grid over ``labels``: True where
    the corners of the pixel's footprint in ``labels`` all carry the nearest-neighbour label, i.e. the pixel
    does not straddle a label edge."""
    rows = nearest_indices(labels.shape[0], height)[::stride]
    cols = nearest_indices(labels.shape[1], width)[::stride]
    r0, r1 = (a[::stride] for a in footprint_ends(labels.shape[0], height))
    c0, c1 = (a[::stride] for a in footprint_ends(labels.shape[1], width))
    centre = labels[rows[:, None], cols[None, :]]
    pure = labels[r0[:, None], c0[None, :]] == centre
    pure &= labels[r0[:, None], c1[None, :]] == centre
    pure &= labels[r1[:, None], c0[None, :]] == centre
    pure &= labels[r1[:, None], c1[None, :]] == centre
    return pure
