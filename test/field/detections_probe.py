"""Child process of test_label_info.py: the node's ~/detections and ~/detections_3d through real rclpy pub/sub.

Runs with the test-only vision_msgs on its paths (set by the test). The node has the fake engine of the
rclpy tests (vertical stripes of classes) and a registered depth image of a wall at 2 m. Prints one JSON
line with the detections it received.
"""
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'test'))
from helpers.segmenters import FakeFactory  # noqa: E402
from label_info_probe import stop_spinning, wait  # noqa: E402  (same folder: the probes share these)
from talk2dino_ros.ros.image_conversion import numpy_to_image  # noqa: E402
from talk2dino_ros.ros.qos import output_qos  # noqa: E402


def as_dict(msg):
    out = []
    for d in msg.detections:
        hyp = d.results[0].hypothesis
        item = {'id': d.id, 'class_id': hyp.class_id, 'score': hyp.score, 'frame_id': d.header.frame_id}
        if hasattr(d.bbox, 'size_x'):
            item.update(center=[d.bbox.center.position.x, d.bbox.center.position.y], size=[d.bbox.size_x, d.bbox.size_y])
        else:
            c, s = d.bbox.center.position, d.bbox.size
            item.update(center=[c.x, c.y, c.z], size=[s.x, s.y, s.z])
        out.append(item)
    return {'frame_id': msg.header.frame_id, 'stamp': [msg.header.stamp.sec, msg.header.stamp.nanosec],
            'detections': out}


def main():
    from vision_msgs.msg import Detection2DArray, Detection3DArray

    from talk2dino_ros.ros.segmentation_node import SegmentationNode

    context = Context()
    rclpy.init(context=context)
    executor = MultiThreadedExecutor(context=context)
    thread = threading.Thread(target=executor.spin, daemon=True)
    try:
        weights = Path(sys.argv[1])
        params = [Parameter('depth', value=True), Parameter('background_threshold', value=0.0),
                  Parameter('min_region_pixels', value=10), Parameter('weights_dir', value=str(weights)),
                  Parameter('vocabulary', Parameter.Type.STRING_ARRAY, ['a', 'b', 'c', 'd'])]
        node = SegmentationNode(context=context, parameter_overrides=params, segmenter_factory=FakeFactory())
        probe = Node('probe', context=context)
        got = {'2d': [], '3d': []}
        probe.create_subscription(Detection2DArray, '/talk2dino/detections', got['2d'].append, output_qos())
        probe.create_subscription(Detection3DArray, '/talk2dino/detections_3d', got['3d'].append, output_qos())
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        image_pub = probe.create_publisher(Image, '/image', qos)
        depth_pub = probe.create_publisher(Image, '/depth/image_raw', qos)
        info_pub = probe.create_publisher(CameraInfo, '/depth/camera_info', qos)
        executor.add_node(node)
        executor.add_node(probe)
        thread.start()
        wait(lambda: node.legend_state is not None, 30.0, 'the model and vocabulary')
        header = Header(frame_id='color_optical')
        header.stamp.sec, header.stamp.nanosec = 77, 5
        depth_header = Header(frame_id='depth_optical', stamp=header.stamp)
        info = CameraInfo(header=depth_header, width=32, height=24)
        info.k = [40.0, 0.0, 15.5, 0.0, 40.0, 11.5, 0.0, 0.0, 1.0]
        deadline = time.monotonic() + 30.0
        while not (got['2d'] and got['3d']) and time.monotonic() < deadline:
            info_pub.publish(info)
            depth_pub.publish(numpy_to_image(np.full((24, 32), 2000, np.uint16), '16UC1', depth_header))
            time.sleep(0.05)
            image_pub.publish(numpy_to_image(np.full((48, 64, 3), 200, np.uint8), 'rgb8', header))
            time.sleep(0.3)
        result = {'2d': [as_dict(m) for m in got['2d']], '3d': [as_dict(m) for m in got['3d']]}
        print(json.dumps(result), flush=True)
        node.destroy_node()
    finally:
        stop_spinning(context, thread, executor)
    return 0


if __name__ == '__main__':
    sys.exit(main())
