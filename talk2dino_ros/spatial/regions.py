"""Objects in a label image: connected regions per class, their 2D boxes and robust 3D boxes.

A region is an 8-connected set of pixels of one class with at least ``min_region_pixels`` pixels; the
background (id 0) is never a region. Its score is the mean confidence over its pixels. Its 3D box comes
from the points of its pixels: per axis the ``percentile`` and ``100 - percentile`` values, widened to the
full extent assuming the points spread evenly between them (``size = spread / (1 - 2 p / 100)``), so a
few stray points at the edge (background depth behind an object's outline) do not stretch the box.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import cv2
import numpy as np

from talk2dino_ros.contract.parameters import DEFAULT_MIN_REGION_PIXELS  # noqa: F401  (the parameter's default)
#: default lower percentile of the 3D box (the upper is 100 minus it)
DEFAULT_BOX_PERCENTILE = 2.0
#: fewest points with depth for a 3D box
MIN_POINTS_3D = 10
#: most points of one region the percentiles are taken over: above it a fixed, evenly spread subset is
#: used (the 2nd percentile of 4096 samples is within about 0.2 % of the distribution of the full set)
MAX_BOX_SAMPLES = 4096
_GOLDEN = 0.6180339887498949


def _spread_subset(n: int, m: int) -> np.ndarray:
    """``m`` distinct-ish indices spread evenly over 0..n-1 without following the raster order's rows
    (a plain stride of n / m could pick one image column when it is a multiple of the row length)."""
    return (np.modf(np.arange(m) * _GOLDEN)[0] * n).astype(np.int64)


@dataclass
class Regions:
    """The regions of one label image, in order of class id, then size (largest first).

    ``class_ids``/``pixels``: int64 [R]; ``boxes``: int64 [R, 4] (x, y, width, height) in pixels;
    ``scores``: float32 [R] mean confidence (NaN without a confidence map). With ``with_index``:
    ``components`` int32 [H, W] (a component id per pixel, 0 = background) and ``lut`` (component id ->
    region index + 1, 0 for components too small to count); :meth:`region_at` combines them.
    """

    class_ids: np.ndarray
    pixels: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    components: Optional[np.ndarray] = None
    lut: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return int(self.class_ids.shape[0])

    def region_at(self, flat_pixels: np.ndarray) -> np.ndarray:
        """Region index + 1 (0 = none) of the given flat pixel indices (only those are looked up)."""
        return self.lut[self.components.reshape(-1)[flat_pixels]]

    @property
    def index(self) -> np.ndarray:
        """int32 [H, W]: region index + 1 of every pixel, 0 elsewhere."""
        return self.lut[self.components]


def find_regions(labels: np.ndarray, confidence: Optional[np.ndarray] = None,
                 min_region_pixels: int = DEFAULT_MIN_REGION_PIXELS, with_index: bool = False) -> Regions:
    """Connected regions (8-connectivity) of every class present, background excluded."""
    if labels.ndim != 2:
        raise ValueError(f'labels must be [H, W], got shape {labels.shape}')
    min_px = max(1, int(min_region_pixels))
    counts = np.bincount(labels.reshape(-1), minlength=1)
    present = [int(c) for c in np.flatnonzero(counts >= min_px) if c != 0]
    # every component of every class gets a global id in one int32 image (0 = background); the ids of
    # regions too small to count are mapped away at the end, so each pixel is written once
    comp_ids = np.zeros(labels.shape, np.int32)
    comp_class: List[np.ndarray] = [np.zeros(1, np.int64)]
    comp_stats: List[np.ndarray] = [np.zeros((1, 5), np.int64)]
    comp_scores: List[np.ndarray] = [np.full(1, np.nan, np.float32)]
    base = 1
    for c in present:
        mask = labels == c
        # label only the class's bounding crop: the work follows the class's extent, not the image's
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        crop = np.ascontiguousarray(mask[r0:r1, c0:c1]).view(np.uint8)
        n, comp, stats, _ = cv2.connectedComponentsWithStats(crop, connectivity=8, ltype=cv2.CV_32S)
        if n <= 1:
            continue
        comp_scores.append(_mean_confidence(confidence, (r0, r1, c0, c1), crop, comp, stats, min_px))
        comp += base - 1
        np.copyto(comp_ids[r0:r1, c0:c1], comp, where=crop.view(bool))  # the class's pixels of the crop
        stats = stats[1:].astype(np.int64)
        stats[:, cv2.CC_STAT_LEFT] += c0
        stats[:, cv2.CC_STAT_TOP] += r0
        comp_class.append(np.full(n - 1, c, np.int64))
        comp_stats.append(stats)
        base += n - 1
    classes = np.concatenate(comp_class)
    stats = np.concatenate(comp_stats)
    area = stats[:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(area >= min_px)
    keep = keep[keep > 0]
    keep = keep[np.lexsort((-area[keep], classes[keep]))]  # by class, then largest first
    scores = np.concatenate(comp_scores)[keep]
    lut = None
    if with_index:
        lut = np.zeros(base, np.int32)
        lut[keep] = np.arange(1, keep.size + 1, dtype=np.int32)
    boxes = stats[keep][:, [cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT]]
    return Regions(classes[keep], area[keep].copy(), boxes, scores, comp_ids if with_index else None, lut)


#: a class with more regions than this gets its mean confidences from one bincount over its crop
_MASKED_MEANS = 8


def _mean_confidence(confidence: Optional[np.ndarray], box: tuple, crop: np.ndarray, comp: np.ndarray,
                     stats: np.ndarray, min_px: int) -> np.ndarray:
    """float32 mean confidence of each component of one class's crop (NaN for the ones too small to count,
    and without a confidence map). OpenCV's masked mean reads the crop in place (no float64 copy of it),
    which is what makes the usual case, a class with one or a few regions, cheap."""
    n = stats.shape[0]
    out = np.full(n - 1, np.nan, np.float32)
    if confidence is None:
        return out
    r0, r1, c0, c1 = box
    window = confidence[r0:r1, c0:c1]
    kept = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= min_px) + 1
    if n == 2 and kept.size == 1:  # one region: its mask is the class's crop
        out[0] = cv2.mean(window, mask=crop)[0]
    elif kept.size <= _MASKED_MEANS:
        for k in kept:
            out[k - 1] = cv2.mean(window, mask=(comp == k).view(np.uint8))[0]
    else:
        sums = np.bincount(comp.reshape(-1), weights=window.reshape(-1), minlength=n)
        out[kept - 1] = (sums[kept] / stats[kept, cv2.CC_STAT_AREA]).astype(np.float32)
    return out


@dataclass
class Boxes3D:
    """Robust 3D boxes of regions: ``centers``/``sizes`` float64 [R, 3] (NaN rows where a region has fewer
    than ``MIN_POINTS_3D`` points), ``points``: int64 [R] points per region."""

    centers: np.ndarray
    sizes: np.ndarray
    points: np.ndarray

    def valid(self) -> np.ndarray:
        return np.isfinite(self.centers[:, 0])


def robust_boxes(xyz: np.ndarray, region_of_point: np.ndarray, num_regions: int,
                 percentile: float = DEFAULT_BOX_PERCENTILE, min_points: int = MIN_POINTS_3D,
                 inside: Optional[np.ndarray] = None, pitch: tuple = (0.0, 0.0)) -> Boxes3D:
    """Per-region 3D centre and size from the points (``region_of_point``: region index + 1, 0 = none).

    ``inside`` (bool per point, optional): False for points whose pixel straddles a label edge. Such a
    point measures either the object or what is behind it, so it only counts when its depth lies within
    the depth range of the region's other points (plus 2 %): the outline keeps the object's full width
    without pulling in the background.

    ``pitch``: (x, y) spacing of neighbouring points per metre of depth (``stride / fx``, ``stride / fy``).
    A point stands for its whole pixel, so before the percentiles each point is moved to a random (but
    fixed) place inside its pixel's footprint: the points then fill the object's outline evenly instead of
    in rows and columns, and the extrapolated extent has no pixel-grid bias.
    """
    if not 0.0 <= percentile < 50.0:
        raise ValueError(f'percentile must be in [0, 50), got {percentile}')
    centers = np.full((num_regions, 3), np.nan)
    sizes = np.full((num_regions, 3), np.nan)
    counts = np.bincount(region_of_point, minlength=num_regions + 1)[1:num_regions + 1].astype(np.int64)
    if num_regions == 0 or xyz.shape[0] == 0:
        return Boxes3D(centers, sizes, counts)
    # narrow keys: numpy sorts 8- and 16-bit integers with a radix sort (linear)
    small = np.uint8 if num_regions < 255 else np.uint16 if num_regions < 65535 else np.uint32
    order = np.argsort(region_of_point.astype(small, copy=False), kind='stable')
    ends = np.cumsum(np.bincount(region_of_point, minlength=num_regions + 1))
    widen = 1.0 / (1.0 - 2.0 * percentile / 100.0)
    q = [percentile, 100.0 - percentile]
    for r in np.flatnonzero(counts >= max(1, min_points)):
        members = order[ends[r]:ends[r + 1]]  # region r + 1's points
        if inside is not None:
            sure = members[inside[members]]
            if sure.size >= max(1, min_points):
                z_lo, z_hi = np.percentile(xyz[_capped(sure), 2], q)
                margin = 0.02 * max(abs(z_lo), abs(z_hi))
                z = xyz[members, 2]
                members = members[inside[members] | ((z >= z_lo - margin) & (z <= z_hi + margin))]
        pts = xyz[_capped(members)].astype(np.float64)
        if pitch[0] > 0 or pitch[1] > 0:
            ju, jv = _footprint_offsets(pts.shape[0])
            pts[:, 0] += ju * pitch[0] * np.abs(pts[:, 2])
            pts[:, 1] += jv * pitch[1] * np.abs(pts[:, 2])
        lo, hi = np.percentile(pts, q, axis=0)
        centers[r] = (lo + hi) / 2.0
        sizes[r] = (hi - lo) * widen
        counts[r] = members.size
    return Boxes3D(centers, sizes, counts)


def _footprint_offsets(n: int) -> tuple:
    """Two arrays of ``n`` offsets, uniform in [-0.5, 0.5), the same on every call. Pseudo-random rather than
    a low-discrepancy sequence: the points come in raster order, and any regular sequence lines up with the
    image's columns (every 4th point of a 4-pixel-wide stripe would get the same offset)."""
    offsets = np.random.default_rng(0x7D2).random((2, n)) - 0.5
    return offsets[0], offsets[1]


def _capped(members: np.ndarray) -> np.ndarray:
    """At most :data:`MAX_BOX_SAMPLES` of ``members``, evenly spread."""
    if members.size > MAX_BOX_SAMPLES:
        return members[_spread_subset(members.size, MAX_BOX_SAMPLES)]
    return members
