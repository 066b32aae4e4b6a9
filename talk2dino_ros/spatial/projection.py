"""Depth pixels -> 3D points in the depth image's optical frame (x right, y down, z forward).

``x = (u - cx) * z / fx``, ``y = (v - cy) * z / fy`` with (u, v) the pixel centre and z the depth in
metres. Everything is vectorised: the work is a handful of array passes whatever the image size.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from talk2dino_ros.spatial.depth import DepthError
from talk2dino_ros.spatial.intrinsics import Intrinsics
from talk2dino_ros.spatial.sampling import nearest_indices


@dataclass
class ProjectedPixels:
    """The valid depth pixels of a (strided) depth image and their points.

    ``x``, ``y``, ``z``: float32 [N] in raster order of ``mask``, the bool [h, w] grid of the strided depth
    image that is True where a point was made; :meth:`take` picks the same pixels out of any grid of that
    shape. Kept as three columns: the cloud is written from them without an [N, 3] copy in between.
    """

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    mask: np.ndarray

    @property
    def xyz(self) -> np.ndarray:
        """float32 [N, 3] (a new array)."""
        return np.stack([self.x, self.y, self.z], axis=1)

    def take(self, grid: np.ndarray) -> np.ndarray:
        return grid[self.mask]


def back_project(depth_m: np.ndarray, intrinsics: Intrinsics, stride: int = 1) -> ProjectedPixels:
    """Points of every ``stride``-th pixel (both axes) with a finite depth; NaN depths are skipped.

    ``intrinsics`` must describe the depth image's size (see :meth:`Intrinsics.scaled_to`).
    """
    if stride < 1:
        raise DepthError(f'stride must be >= 1, got {stride}')
    height, width = depth_m.shape
    if (intrinsics.width, intrinsics.height) != (width, height):
        raise DepthError(f'intrinsics for {intrinsics.width}x{intrinsics.height} used on a depth image '
                         f'of {width}x{height}; scale them first')
    grid = depth_m[::stride, ::stride]
    mask = np.isfinite(grid)
    # ray slopes per column and per row: a whole-grid product (one scratch array for both), then a compress
    xs = (np.arange(0, width, stride, dtype=np.float32) - np.float32(intrinsics.cx)) / np.float32(intrinsics.fx)
    ys = (np.arange(0, height, stride, dtype=np.float32) - np.float32(intrinsics.cy)) / np.float32(intrinsics.fy)
    scratch = np.multiply(grid, xs[None, :])
    x = scratch[mask]
    np.multiply(grid, ys[:, None], out=scratch)
    y = scratch[mask]
    return ProjectedPixels(x, y, grid[mask], mask)


@functools.lru_cache(maxsize=8)
def colour_index_grid(colour_shape: tuple, depth_shape: tuple, stride: int = 1) -> np.ndarray:
    """int32 [h, w] (read-only, cached per shape): for every ``stride``-th depth pixel, the flat index of its
    colour pixel (nearest neighbour, see :func:`~talk2dino_ros.spatial.sampling.nearest_indices`)."""
    if colour_shape[0] * colour_shape[1] >= 2 ** 31:
        raise DepthError(f'a colour image of {colour_shape} pixels is too large')
    rows = nearest_indices(colour_shape[0], depth_shape[0])[::stride]
    cols = nearest_indices(colour_shape[1], depth_shape[1])[::stride]
    grid = (rows[:, None] * colour_shape[1] + cols[None, :]).astype(np.int32)
    grid.flags.writeable = False
    return grid


def voxel_first(xyz: np.ndarray, voxel_size: float) -> np.ndarray:
    """Indices (ascending) keeping the first point of every occupied ``voxel_size`` cube.

    A point is kept whole (never averaged), so its label and confidence stay those of a real pixel.
    """
    if not voxel_size > 0:
        raise DepthError(f'voxel_size must be > 0, got {voxel_size}')
    if xyz.shape[0] == 0:
        return np.zeros(0, np.int64)
    cells = np.floor(np.asarray(xyz) / np.float32(voxel_size)).astype(np.int64)
    cells -= cells.min(axis=0)
    span = cells.max(axis=0) + 1
    if float(span[0]) * float(span[1]) * float(span[2]) >= 2.0 ** 62:
        raise DepthError(f'voxel_size {voxel_size} m is too small for a cloud this large')
    keys = (cells[:, 0] * span[1] + cells[:, 1]) * span[2] + cells[:, 2]
    _, first = np.unique(keys, return_index=True)
    first.sort()
    return first
