"""The 3D outputs as ROS messages, for any message implementation (rclpy on the node, rosbags in bags).

A *kit* gives the classes: ``kit.make('vision_msgs/msg/Detection2D', **fields)`` builds one message with
every field given (rosbags' classes have no defaults), and ``kit.byte_array(uint8 array)`` turns bytes into
the value of a ``uint8[]`` field. So the node and ``segment_bag`` write the same messages from one place.

* ``~/points``: ``sensor_msgs/PointCloud2`` in the layout of :mod:`talk2dino_ros.spatial.cloud`.
* ``~/detections``: ``vision_msgs/Detection2DArray``, a box in pixels of the label image per region.
* ``~/detections_3d``: ``vision_msgs/Detection3DArray``, per region with enough depth: centre (pose with
  identity orientation) and size in metres in the depth optical frame.

Every detection has one hypothesis: ``class_id`` = the legend's id as a string (``"3"``; the names are in
``~/class_info`` / ``~/label_info``), ``score`` = the region's mean confidence. ``id`` is ``"<class>-<k>"``,
the k-th largest region of that class in the frame.
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np

from talk2dino_ros.spatial.cloud import CloudData
from talk2dino_ros.spatial.scene import Detection

POINT_CLOUD2 = 'sensor_msgs/msg/PointCloud2'
DETECTION2D_ARRAY = 'vision_msgs/msg/Detection2DArray'
DETECTION3D_ARRAY = 'vision_msgs/msg/Detection3DArray'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'

#: the vision_msgs 4.x definitions our outputs use (field lists only; for tools that must describe the
#: types without the package, e.g. the bag writer)
VISION_MSGS_DEFINITIONS = {
    'vision_msgs/msg/Point2D': 'float64 x\nfloat64 y\n',
    'vision_msgs/msg/Pose2D': 'vision_msgs/Point2D position\nfloat64 theta\n',
    'vision_msgs/msg/BoundingBox2D': 'vision_msgs/Pose2D center\nfloat64 size_x\nfloat64 size_y\n',
    'vision_msgs/msg/BoundingBox3D': 'geometry_msgs/Pose center\ngeometry_msgs/Vector3 size\n',
    'vision_msgs/msg/ObjectHypothesis': 'string class_id\nfloat64 score\n',
    'vision_msgs/msg/ObjectHypothesisWithPose': ('vision_msgs/ObjectHypothesis hypothesis\n'
                                                 'geometry_msgs/PoseWithCovariance pose\n'),
    'vision_msgs/msg/Detection2D': ('std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n'
                                    'vision_msgs/BoundingBox2D bbox\nstring id\n'),
    'vision_msgs/msg/Detection2DArray': 'std_msgs/Header header\nvision_msgs/Detection2D[] detections\n',
    'vision_msgs/msg/Detection3D': ('std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n'
                                    'vision_msgs/BoundingBox3D bbox\nstring id\n'),
    'vision_msgs/msg/Detection3DArray': 'std_msgs/Header header\nvision_msgs/Detection3D[] detections\n',
}


class MessageKit(Protocol):
    def make(self, type_name: str, **fields: Any) -> Any: ...

    def byte_array(self, data: np.ndarray) -> Any: ...


def point_cloud_msg(kit: MessageKit, header: Any, cloud: CloudData) -> Any:
    fields = [kit.make('sensor_msgs/msg/PointField', name=f.name, offset=f.offset, datatype=f.datatype,
                       count=f.count) for f in cloud.fields]
    return kit.make(POINT_CLOUD2, header=header, height=cloud.height, width=cloud.width, fields=fields,
                    is_bigendian=cloud.is_bigendian, point_step=cloud.point_step, row_step=cloud.row_step,
                    data=kit.byte_array(cloud.data), is_dense=cloud.is_dense)


def _pose(kit: MessageKit, xyz=(0.0, 0.0, 0.0)) -> Any:
    return kit.make('geometry_msgs/msg/Pose',
                    position=kit.make('geometry_msgs/msg/Point', x=float(xyz[0]), y=float(xyz[1]), z=float(xyz[2])),
                    orientation=kit.make('geometry_msgs/msg/Quaternion', x=0.0, y=0.0, z=0.0, w=1.0))


def _results(kit: MessageKit, det: Detection, xyz=(0.0, 0.0, 0.0)) -> list:
    hypothesis = kit.make('vision_msgs/msg/ObjectHypothesis', class_id=str(det.class_id),
                          score=float(det.score) if np.isfinite(det.score) else 0.0)
    pose = kit.make('geometry_msgs/msg/PoseWithCovariance', pose=_pose(kit, xyz), covariance=np.zeros(36))
    return [kit.make('vision_msgs/msg/ObjectHypothesisWithPose', hypothesis=hypothesis, pose=pose)]


def detection_2d_array_msg(kit: MessageKit, header: Any, detections: Sequence[Detection]) -> Any:
    out = []
    for det in detections:
        center = kit.make('vision_msgs/msg/Pose2D', position=kit.make('vision_msgs/msg/Point2D', x=det.center_x,
                                                                      y=det.center_y), theta=0.0)
        bbox = kit.make('vision_msgs/msg/BoundingBox2D', center=center, size_x=det.size_x, size_y=det.size_y)
        out.append(kit.make('vision_msgs/msg/Detection2D', header=header, results=_results(kit, det), bbox=bbox,
                            id=det.id))
    return kit.make(DETECTION2D_ARRAY, header=header, detections=out)


def detection_3d_array_msg(kit: MessageKit, header: Any, detections: Sequence[Detection]) -> Any:
    """Only detections with a 3D box (enough depth) are listed."""
    out = []
    for det in detections:
        if det.center is None:
            continue
        size = kit.make('geometry_msgs/msg/Vector3', x=det.size[0], y=det.size[1], z=det.size[2])
        bbox = kit.make('vision_msgs/msg/BoundingBox3D', center=_pose(kit, det.center), size=size)
        out.append(kit.make('vision_msgs/msg/Detection3D', header=header, results=_results(kit, det, det.center),
                            bbox=bbox, id=det.id))
    return kit.make(DETECTION3D_ARRAY, header=header, detections=out)
