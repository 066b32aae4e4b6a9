"""The pinhole model of a (registered) depth image: fx, fy, cx, cy for a given image size.

Pixel coordinates are 0-based pixel centres (OpenCV, ROS CameraInfo). Scaling to another resolution keeps
pixel *edges* aligned, as an image resize does: ``cx' = (cx + 0.5) * s - 0.5``, ``fx' = fx * s``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from talk2dino_ros.spatial.depth import DepthError


@dataclass(frozen=True)
class Intrinsics:
    """Focal lengths and principal point (pixels) valid for images of ``width`` x ``height``."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        if not (self.fx > 0 and self.fy > 0):
            raise DepthError(f'focal lengths must be > 0, got fx={self.fx}, fy={self.fy}')
        if self.width < 1 or self.height < 1:
            raise DepthError(f'intrinsics need an image size, got {self.width}x{self.height}')

    def scaled_to(self, width: int, height: int) -> 'Intrinsics':
        """The same camera for an image resized to ``width`` x ``height``."""
        if (width, height) == (self.width, self.height):
            return self
        sx, sy = width / self.width, height / self.height
        return Intrinsics(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5,
                          int(width), int(height))


def parse_intrinsics(text: str, width: int, height: int) -> Intrinsics:
    """``"fx,fy,cx,cy"`` (pixels of an image of ``width`` x ``height``)."""
    parts = [p.strip() for p in str(text).split(',')]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4:
        raise DepthError(f'intrinsics must be four numbers "fx,fy,cx,cy", got {text!r}')
    return Intrinsics(values[0], values[1], values[2], values[3], int(width), int(height))


def intrinsics_from_camera_info(info: Any) -> Intrinsics:
    """Intrinsics of the images a ``sensor_msgs/CameraInfo`` describes (rclpy or rosbags message).

    Uses K (P when K is all zeros, as some drivers send for rectified streams); honours ``roi`` (offsets
    into the calibrated image) and ``binning_x/y``, so the result describes the images actually published.
    """
    k: Sequence[float] = [float(v) for v in info.k]
    if len(k) != 9:
        raise DepthError(f'CameraInfo.k must have 9 values, got {len(k)}')
    fx, cx, fy, cy = k[0], k[2], k[4], k[5]
    if fx == 0 and fy == 0:
        p = [float(v) for v in info.p]
        if len(p) == 12:
            fx, cx, fy, cy = p[0], p[2], p[5], p[6]
    width, height = int(info.width), int(info.height)
    if fx <= 0 or fy <= 0 or width < 1 or height < 1:
        raise DepthError(f'CameraInfo has no usable calibration (fx={fx}, fy={fy}, size {width}x{height})')
    roi = getattr(info, 'roi', None)
    if roi is not None and int(roi.width) > 0 and int(roi.height) > 0:
        cx, cy = cx - int(roi.x_offset), cy - int(roi.y_offset)
        width, height = int(roi.width), int(roi.height)
    bx, by = max(1, int(getattr(info, 'binning_x', 0) or 1)), max(1, int(getattr(info, 'binning_y', 0) or 1))
    if bx > 1 or by > 1:
        # divided as image_geometry does, so our points agree with the rest of a ROS system
        fx, cx, width = fx / bx, cx / bx, width // bx
        fy, cy, height = fy / by, cy / by, height // by
    return Intrinsics(fx, fy, cx, cy, width, height)
