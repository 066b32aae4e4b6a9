"""The 3D outputs of one camera namespace: ``points``, ``detections``, ``detections_3d`` (lazy, like the rest).

``points`` (sensor_msgs/PointCloud2) always exists; the detections need ``vision_msgs`` (not installable
from pip): where it is missing they are switched off with one warning, and ``points`` and ``~/locate`` work
as before. Only outputs with a subscriber are computed; 2D detections need no depth.
"""
from __future__ import annotations

import array
from typing import Any, Set

import numpy as np

from talk2dino_ros.ros.label_info import vision_msgs_available
from talk2dino_ros.ros.qos import output_qos
from talk2dino_ros.spatial import messages
from talk2dino_ros.spatial.scene import SpatialFrame

POINTS = 'points'
DETECTIONS = 'detections'
DETECTIONS_3D = 'detections_3d'
_WARNED = {'vision_msgs': False}


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


class SpatialPublishers:
    """Publishers of the 3D outputs under ``prefix`` (``~`` or ``~/<camera>``)."""

    def __init__(self, node: Any, prefix: str = '~') -> None:
        from sensor_msgs.msg import PointCloud2

        self._node = node
        self.prefix = prefix.rstrip('/') or '~'
        self.kit = RclpyKit()
        self.points_pub = node.create_publisher(PointCloud2, f'{self.prefix}/{POINTS}', output_qos())
        self.detections_pub = self.detections_3d_pub = None
        if vision_msgs_available():
            from vision_msgs.msg import Detection2DArray, Detection3DArray

            self.detections_pub = node.create_publisher(Detection2DArray, f'{self.prefix}/{DETECTIONS}', output_qos())
            self.detections_3d_pub = node.create_publisher(Detection3DArray, f'{self.prefix}/{DETECTIONS_3D}',
                                                           output_qos())
        elif not _WARNED['vision_msgs']:
            _WARNED['vision_msgs'] = True
            node.get_logger().warning('vision_msgs is not installed: ~/detections and ~/detections_3d are off '
                                      '(install ros-$ROS_DISTRO-vision-msgs); ~/points and ~/locate work')

    def wanted(self, has_depth_input: bool) -> Set[str]:
        """The outputs with a subscriber (points and detections_3d only where depth comes in)."""
        out = set()
        if has_depth_input and self.points_pub.get_subscription_count() > 0:
            out.add(POINTS)
        if self.detections_pub is not None and self.detections_pub.get_subscription_count() > 0:
            out.add(DETECTIONS)
        if has_depth_input and self.detections_3d_pub is not None and \
                self.detections_3d_pub.get_subscription_count() > 0:
            out.add(DETECTIONS_3D)
        return out

    def publish(self, frame: SpatialFrame, wanted: Set[str], colour_header: Any, depth_header: Any) -> None:
        """2D detections with the camera image's header, the cloud and 3D boxes with the depth image's."""
        if DETECTIONS in wanted and self.detections_pub is not None:
            self.detections_pub.publish(messages.detection_2d_array_msg(self.kit, colour_header, frame.detections))
        if depth_header is None:
            return
        if POINTS in wanted and frame.cloud is not None:
            self.points_pub.publish(messages.point_cloud_msg(self.kit, depth_header, frame.cloud))
        if DETECTIONS_3D in wanted and self.detections_3d_pub is not None:
            self.detections_3d_pub.publish(messages.detection_3d_array_msg(self.kit, depth_header, frame.detections))

    def destroy(self) -> None:
        for pub in (self.points_pub, self.detections_pub, self.detections_3d_pub):
            if pub is not None:
                self._node.destroy_publisher(pub)
