"""Builders of the 3D rows of the output table (``points``, ``detections``, ``detections_3d``) for rclpy.

The rows themselves (topics, types, QoS) are in :mod:`talk2dino_ros.contract.outputs` and their publishers in
:class:`~talk2dino_ros.ros.frame_outputs.FrameOutputs`, like every other output; what is built here is the
message of one frame from its :class:`SpatialResult`. 2D detections carry the camera image's header, the
cloud and the 3D boxes the depth image's (its frame and stamp). A frame without depth has no cloud and no
3D boxes (their builders return None: nothing is published for it).
"""
from __future__ import annotations

import array
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from talk2dino_ros.spatial import messages
from talk2dino_ros.spatial.scene import SpatialFrame

POINTS = 'points'
DETECTIONS = 'detections'
DETECTIONS_3D = 'detections_3d'
SPATIAL_ROWS = (POINTS, DETECTIONS, DETECTIONS_3D)


@dataclass
class SpatialResult:
    """The 3D outputs of one frame and the header of its depth image (None without depth)."""

    frame: SpatialFrame
    depth_header: Optional[Any] = None


class RclpyKit:
    """The message kit of :mod:`talk2dino_ros.spatial.messages` for rclpy's classes."""

    def __init__(self) -> None:
        self._classes: dict = {}

    def make(self, type_name: str, **fields: Any) -> Any:
        cls = self._classes.get(type_name)
        if cls is None:
            import importlib

            package, kind, name = type_name.split('/')
            cls = getattr(importlib.import_module(f'{package}.{kind}'), name)
            self._classes[type_name] = cls
        return cls(**fields)

    def byte_array(self, data: np.ndarray) -> array.array:
        buf = array.array('B')
        buf.frombytes(memoryview(np.ascontiguousarray(data, dtype=np.uint8)).cast('B'))  # fast bulk copy
        return buf


KIT = RclpyKit()


def build_points(ctx: Any) -> Optional[Any]:
    spatial = getattr(ctx, 'spatial', None)
    if spatial is None or spatial.depth_header is None or spatial.frame.cloud is None:
        return None
    return messages.point_cloud_msg(KIT, spatial.depth_header, spatial.frame.cloud)


def build_detections(ctx: Any) -> Optional[Any]:
    spatial = getattr(ctx, 'spatial', None)
    if spatial is None:
        return None
    return messages.detection_2d_array_msg(KIT, ctx.header, spatial.frame.detections)


def build_detections_3d(ctx: Any) -> Optional[Any]:
    spatial = getattr(ctx, 'spatial', None)
    if spatial is None or spatial.depth_header is None:
        return None
    return messages.detection_3d_array_msg(KIT, spatial.depth_header, spatial.frame.detections)
