"""One frame's 3D outputs from its labels, confidence and registered depth: the semantic cloud and the
per-object 2D / 3D detections. Front ends (node, ``segment_bag``, ``segment_image``) turn the result into
messages or files; only what is asked for is computed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np

from talk2dino_ros.spatial.cloud import CloudData, pack_cloud
from talk2dino_ros.spatial.depth import DEFAULT_DEPTH_MAX_M, DepthError
from talk2dino_ros.spatial.intrinsics import Intrinsics
from talk2dino_ros.spatial.projection import back_project, colour_index_grid, voxel_first
from talk2dino_ros.spatial.sampling import uniform_footprint
from talk2dino_ros.spatial.regions import (DEFAULT_BOX_PERCENTILE, DEFAULT_MIN_REGION_PIXELS, MIN_POINTS_3D,
                                           Regions, find_regions, robust_boxes)


@dataclass(frozen=True)
class SpatialOptions:
    """``stride``: every n-th depth pixel (both axes) for the cloud and the 3D boxes; ``voxel_size``
    (metres, 0 = off): at most one point per cube in the cloud; ``rgb``: colour field in the cloud;
    ``depth_max_m``: what the front ends pass to :func:`~talk2dino_ros.spatial.depth.depth_to_metres`."""

    stride: int = 1
    voxel_size: float = 0.0
    depth_max_m: float = DEFAULT_DEPTH_MAX_M
    min_region_pixels: int = DEFAULT_MIN_REGION_PIXELS
    box_percentile: float = DEFAULT_BOX_PERCENTILE
    min_points_3d: int = MIN_POINTS_3D
    rgb: bool = False

    def __post_init__(self) -> None:
        if self.stride < 1:
            raise DepthError(f'stride must be >= 1, got {self.stride}')
        if self.voxel_size < 0:
            raise DepthError(f'voxel_size must be >= 0 (0 = off), got {self.voxel_size}')
        if not self.depth_max_m > 0:
            raise DepthError(f'depth_max_m must be > 0, got {self.depth_max_m}')
        if self.min_region_pixels < 1:
            raise DepthError(f'min_region_pixels must be >= 1, got {self.min_region_pixels}')
        if not 0 <= self.box_percentile < 50:
            raise DepthError(f'box_percentile must be in [0, 50), got {self.box_percentile}')


@dataclass(frozen=True)
class Detection:
    """One object: a region of one class. ``center_x/y``, ``size_x/y``: its 2D box in pixels of the label
    image (centre in pixel-centre coordinates, size in pixels). ``center``/``size``: its robust 3D box in
    metres in the depth optical frame, None without enough depth."""

    class_id: int
    name: str
    score: float
    pixels: int
    center_x: float
    center_y: float
    size_x: float
    size_y: float
    id: str
    center: Optional[tuple] = None
    size: Optional[tuple] = None
    points: int = 0

    def as_dict(self) -> dict:
        out = {'id': self.id, 'class_id': self.class_id, 'name': self.name, 'score': round(self.score, 6),
               'pixels': self.pixels, 'bbox_2d': {'center_x': self.center_x, 'center_y': self.center_y,
                                                  'size_x': self.size_x, 'size_y': self.size_y}}
        if self.center is not None:
            out['bbox_3d'] = {'center': [round(v, 5) for v in self.center],
                              'size': [round(v, 5) for v in self.size], 'points': self.points}
        return out


@dataclass
class SpatialFrame:
    """The 3D outputs of one frame (each None / empty when not asked for)."""

    cloud: Optional[CloudData] = None
    detections: List[Detection] = field(default_factory=list)
    has_depth: bool = False
    points_valid: int = 0


def _class_name(names: Sequence[str], class_id: int) -> str:
    return names[class_id - 1] if 0 < class_id <= len(names) else f'class_{class_id}'


def detections_from_regions(regions: Regions, names: Sequence[str], boxes=None) -> List[Detection]:
    """Detections of ``regions`` (2D only when ``boxes`` is None or a region has no valid 3D box)."""
    out: List[Detection] = []
    per_class: dict = {}
    for r in range(len(regions)):
        c = int(regions.class_ids[r])
        k = per_class.get(c, 0)
        per_class[c] = k + 1
        x, y, w, h = (int(v) for v in regions.boxes[r])
        center = size = None
        points = 0
        if boxes is not None and np.isfinite(boxes.centers[r, 0]):
            center = tuple(float(v) for v in boxes.centers[r])
            size = tuple(float(v) for v in boxes.sizes[r])
            points = int(boxes.points[r])
        out.append(Detection(class_id=c, name=_class_name(names, c), score=float(regions.scores[r]),
                             pixels=int(regions.pixels[r]), center_x=x + (w - 1) / 2.0, center_y=y + (h - 1) / 2.0,
                             size_x=float(w), size_y=float(h), id=f'{c}-{k}', center=center, size=size,
                             points=points))
    return out


#: the 3D boxes use at most about this many points of a frame (a coarser pixel grid above it): the
#: percentiles of a region need a fair sample of its pixels, not every one of them
BOX_POINTS = 80_000


def _boxes(regions: Regions, labels: np.ndarray, depth_m: np.ndarray, intr: Intrinsics, options: SpatialOptions,
           proj=None, pix: Optional[np.ndarray] = None):
    """Robust 3D boxes of the regions from the depth points (a coarser grid of them on large frames)."""
    height, width = labels.shape
    dh, dw = depth_m.shape
    grid = ((dh + options.stride - 1) // options.stride) * ((dw + options.stride - 1) // options.stride)
    step = options.stride * max(1, int(np.ceil(np.sqrt(grid / BOX_POINTS))))
    if proj is None or step != options.stride:
        proj = back_project(depth_m, intr, step)
        pix = proj.take(colour_index_grid((height, width), (dh, dw), step))
    region_of_point = regions.region_at(pix)
    # a depth pixel larger than a colour pixel may straddle a label edge and see either side: its
    # nearest-neighbour label is right for the cloud, the box checks its depth first
    inside = proj.take(uniform_footprint(labels, dh, dw, step)) if (dh, dw) != (height, width) else None
    return robust_boxes(proj.xyz, region_of_point, len(regions), options.box_percentile, options.min_points_3d,
                        inside, pitch=(step / intr.fx, step / intr.fy))


def build_spatial(labels: np.ndarray, confidence: Optional[np.ndarray], names: Sequence[str],
                  depth_m: Optional[np.ndarray] = None, intrinsics: Optional[Intrinsics] = None,
                  options: SpatialOptions = SpatialOptions(), *, rgb: Optional[np.ndarray] = None,
                  cloud: bool = True, detections: bool = True) -> SpatialFrame:
    """The cloud and/or the detections of a frame.

    ``labels`` (0 = background, class i = i + 1), ``confidence`` (float32) and ``rgb`` are at the colour
    image's resolution; ``depth_m`` (float32 metres, NaN = no measurement, see
    :func:`~talk2dino_ros.spatial.depth.depth_to_metres`) may have another resolution, and ``intrinsics``
    (of any size, scaled here) describe it. Without depth, detections are 2D only and there is no cloud.
    """
    height, width = labels.shape
    if confidence is not None and confidence.shape != labels.shape:
        raise DepthError(f'confidence {confidence.shape} and labels {labels.shape} differ in size')
    out = SpatialFrame(has_depth=depth_m is not None)
    regions = find_regions(labels, confidence, options.min_region_pixels,
                           with_index=detections and depth_m is not None) if detections else None
    if depth_m is None:
        if regions is not None:
            out.detections = detections_from_regions(regions, names)
        return out
    if intrinsics is None:
        raise DepthError('depth needs its intrinsics (fx, fy, cx, cy)')
    dh, dw = depth_m.shape
    intr = intrinsics.scaled_to(dw, dh)
    if not (cloud or detections):
        return out
    proj = pix = None
    if cloud:
        proj = back_project(depth_m, intr, options.stride)
        out.points_valid = int(proj.z.shape[0])
        # the colour pixel of each point (nearest neighbour, never blended)
        pix = proj.take(colour_index_grid((height, width), (dh, dw), options.stride))
    if regions is not None:
        out.detections = detections_from_regions(regions, names, _boxes(regions, labels, depth_m, intr, options,
                                                                         proj, pix))
    if cloud:
        keep = voxel_first(proj.xyz, options.voxel_size) if options.voxel_size > 0 else None
        sel = pix if keep is None else pix[keep]
        xyz = (proj.x, proj.y, proj.z) if keep is None else (proj.x[keep], proj.y[keep], proj.z[keep])
        conf = (confidence.reshape(-1)[sel] if confidence is not None else np.full(sel.size, np.nan, np.float32))
        colours = rgb.reshape(-1, 3)[sel] if (options.rgb and rgb is not None) else None
        if options.rgb and rgb is None:
            raise DepthError('the rgb cloud field needs the colour image')
        out.cloud = pack_cloud(xyz, labels.reshape(-1)[sel], conf, colours)
    return out
