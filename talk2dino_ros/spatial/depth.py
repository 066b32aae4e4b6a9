"""Depth images in their ROS encodings -> float32 metres, invalid measurements as NaN.

REP 118: ``16UC1`` holds unsigned millimetres with 0 = no measurement; ``32FC1`` holds metres with NaN
(and +-inf, 0) = no measurement. Anything else is refused with the encoding named: a guessed unit would put
every point at the wrong distance.
"""
from __future__ import annotations

import numpy as np

from talk2dino_ros.errors import Talk2DinoError

#: encoding -> metres per stored unit
DEPTH_ENCODINGS = {'16UC1': 0.001, '32FC1': 1.0}
from talk2dino_ros.contract.parameters import DEFAULT_DEPTH_MAX_M  # noqa: F401  (the node parameter's default)


class DepthError(Talk2DinoError, ValueError):
    """A depth image or its intrinsics that cannot be used (encoding, shape, parameters)."""


def depth_to_metres(pixels: np.ndarray, encoding: str, depth_max_m: float = DEFAULT_DEPTH_MAX_M) -> np.ndarray:
    """float32 [H, W] metres of a depth image; NaN where there is no usable measurement.

    Dropped: 0, NaN, +-inf, negative values and anything beyond ``depth_max_m`` (> 0).
    """
    if encoding not in DEPTH_ENCODINGS:
        raise DepthError(f'unsupported depth encoding {encoding!r}: expected 16UC1 (millimetres) or 32FC1 (metres)')
    if not depth_max_m > 0:
        raise DepthError(f'depth_max_m must be > 0, got {depth_max_m}')
    arr = np.asarray(pixels)
    if arr.ndim != 2 or arr.size == 0:
        raise DepthError(f'a depth image must be one non-empty channel [H, W], got shape {arr.shape}')
    expected = np.uint16 if encoding == '16UC1' else np.float32
    if arr.dtype != expected:
        raise DepthError(f'{encoding} depth needs dtype {np.dtype(expected).name}, got {arr.dtype}')
    metres = np.empty(arr.shape, np.float32)
    if encoding == '16UC1':
        np.multiply(arr, np.float32(DEPTH_ENCODINGS[encoding]), out=metres, dtype=np.float32)
    else:
        np.copyto(metres, arr)
    # one mask, built in place: not (0 < d <= max); NaN compares False, so it is dropped too
    bad = np.greater(metres, np.float32(0.0))
    np.logical_and(bad, np.less_equal(metres, np.float32(depth_max_m)), out=bad)
    np.logical_not(bad, out=bad)
    metres[bad] = np.nan
    return metres


def metres_to_depth(metres: np.ndarray, encoding: str) -> np.ndarray:
    """The inverse for writing depth images: NaN -> 0 (16UC1) / NaN (32FC1); millimetres rounded."""
    if encoding not in DEPTH_ENCODINGS:
        raise DepthError(f'unsupported depth encoding {encoding!r}: expected 16UC1 or 32FC1')
    m = np.asarray(metres, dtype=np.float32)
    if encoding == '32FC1':
        return np.ascontiguousarray(m)
    mm = np.rint(np.nan_to_num(m, nan=0.0, posinf=0.0, neginf=0.0) * 1000.0)
    return np.clip(mm, 0, np.iinfo(np.uint16).max).astype(np.uint16)
