"""Scenes of known geometry rendered to a label image and a registered depth image (tests, demo bag).

The camera looks along +z (optical frame: x right, y down) at ``camera_height`` metres above a flat
floor; upright rectangular panels stand at known distances in front of an optional back wall. Every pixel
is ray-cast at its centre with the intrinsics of its own image, so the labels (colour resolution) and the
depth (any resolution) agree exactly on the geometry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from talk2dino_ros.spatial.intrinsics import Intrinsics

FLOOR_ID = 1
WALL_ID = 2


@dataclass(frozen=True)
class Panel:
    """An upright rectangle facing the camera: x in [x0, x1], y in [y0, y1] (y down), at depth z."""

    class_id: int
    x0: float
    x1: float
    y0: float
    y1: float
    z: float

    @property
    def center(self) -> Tuple[float, float, float]:
        return ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2, self.z)

    @property
    def size(self) -> Tuple[float, float, float]:
        return (self.x1 - self.x0, self.y1 - self.y0, 0.0)


@dataclass(frozen=True)
class Scene:
    panels: Sequence[Panel]
    camera_height: float = 0.6
    wall_z: Optional[float] = 6.0
    floor_id: int = FLOOR_ID
    wall_id: int = WALL_ID

    def render(self, intrinsics: Intrinsics) -> Tuple[np.ndarray, np.ndarray]:
        """(labels uint8 [H, W], depth float32 metres [H, W], NaN where a ray hits nothing)."""
        h, w = intrinsics.height, intrinsics.width
        xs = (np.arange(w, dtype=np.float64) - intrinsics.cx) / intrinsics.fx
        ys = (np.arange(h, dtype=np.float64) - intrinsics.cy) / intrinsics.fy
        sx, sy = np.meshgrid(xs, ys)
        depth = np.full((h, w), np.inf)
        labels = np.zeros((h, w), np.uint8)
        with np.errstate(divide='ignore'):
            floor_z = np.where(sy > 0, self.camera_height / np.where(sy > 0, sy, 1.0), np.inf)
        hit = floor_z < depth
        depth[hit], labels[hit] = floor_z[hit], self.floor_id
        if self.wall_z is not None:
            hit = self.wall_z < depth
            depth[hit], labels[hit] = self.wall_z, self.wall_id
        for p in sorted(self.panels, key=lambda p: -p.z):  # far to near: nearer panels paint over
            x, y = sx * p.z, sy * p.z
            hit = (x >= p.x0) & (x <= p.x1) & (y >= p.y0) & (y <= p.y1) & (p.z < depth)
            depth[hit], labels[hit] = p.z, p.class_id
        depth[~np.isfinite(depth)] = np.nan
        return labels, depth.astype(np.float32)


def standing_panel(class_id: int, x_center: float, width: float, height: float, z: float,
                   camera_height: float = 0.6) -> Panel:
    """A panel whose bottom edge rests on the floor."""
    return Panel(class_id, x_center - width / 2, x_center + width / 2, camera_height - height, camera_height, z)


def default_scene() -> Scene:
    """Floor, wall at 6 m and three panels at 1.5, 2.5 and 4 m (classes 3, 4, 5)."""
    return Scene([standing_panel(3, -0.6, 0.5, 0.5, 1.5), standing_panel(4, 0.3, 0.7, 0.9, 2.5),
                  standing_panel(5, 1.5, 0.6, 0.4, 4.0)])


def confidence_for(labels: np.ndarray, per_class: Sequence[float]) -> np.ndarray:
    """A float32 confidence map with one value per class id (``per_class[id]``)."""
    return np.asarray(per_class, np.float32)[labels]


def truth_of(scene: Scene) -> List[Tuple[int, Tuple[float, float, float], Tuple[float, float, float]]]:
    """(class id, centre, size) of every panel."""
    return [(p.class_id, p.center, p.size) for p in scene.panels]
