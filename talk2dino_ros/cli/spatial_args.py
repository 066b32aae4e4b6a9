"""The 3D flags shared by ``segment_image`` and ``segment_bag``, and reading depth files.

* ``add_spatial_arguments(parser)``: ``--depth-max``, ``--stride``, ``--voxel``, ``--min-region-pixels``,
  ``--rgb`` (colour in the cloud).
* ``spatial_options(args) -> SpatialOptions``: the options they describe (a bad value is one clear error).
* ``read_depth_file(path) -> (array, encoding)``: a 16-bit PNG/TIFF (millimetres, ``16UC1``) or a ``.npy``
  (uint16 millimetres, or float metres ``32FC1``).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Tuple

import numpy as np

from talk2dino_ros.spatial.depth import DEFAULT_DEPTH_MAX_M, DepthError
from talk2dino_ros.spatial.regions import DEFAULT_MIN_REGION_PIXELS
from talk2dino_ros.spatial.scene import SpatialOptions


def add_spatial_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    g = parser.add_argument_group('3D outputs (with depth)')
    g.add_argument('--depth-max', type=float, default=DEFAULT_DEPTH_MAX_M, metavar='M',
                   help=f'farthest depth kept, metres (default {DEFAULT_DEPTH_MAX_M:g})')
    g.add_argument('--stride', type=int, default=1, metavar='N',
                   help='use every N-th depth pixel in both directions for the cloud and the 3D boxes (default 1)')
    g.add_argument('--voxel', type=float, default=0.0, metavar='M',
                   help='keep at most one cloud point per cube of M metres (default 0: off)')
    g.add_argument('--min-region-pixels', type=int, default=DEFAULT_MIN_REGION_PIXELS, metavar='N',
                   help=f'smallest region that is a detection, in pixels (default {DEFAULT_MIN_REGION_PIXELS})')
    g.add_argument('--rgb', action='store_true', help='add the image colour to every cloud point')
    return g


def spatial_options(args: argparse.Namespace) -> SpatialOptions:
    """SpatialOptions from the flags; DepthError (one line) for an out-of-range value."""
    return SpatialOptions(stride=args.stride, voxel_size=args.voxel, depth_max_m=args.depth_max,
                          min_region_pixels=args.min_region_pixels, rgb=args.rgb)


def read_depth_file(path: Path) -> Tuple[np.ndarray, str]:
    """(pixels, '16UC1' | '32FC1') of a depth file; DepthError naming the file when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise DepthError(f'cannot read depth {path}: no such file')
    if path.suffix.lower() == '.npy':
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise DepthError(f'cannot read depth {path}: {exc}') from None
    else:
        import cv2

        arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
        if arr is None:
            raise DepthError(f'cannot read depth {path}: not an image OpenCV can read')
    if arr.ndim != 2:
        raise DepthError(f'depth {path} must have one channel, got shape {arr.shape}')
    if arr.dtype == np.uint16:
        return arr, '16UC1'
    if arr.dtype in (np.float32, np.float64):
        return arr.astype(np.float32, copy=False), '32FC1'
    raise DepthError(f'depth {path} has {arr.dtype} pixels: expected 16-bit millimetres or float metres')
