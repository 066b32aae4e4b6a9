"""Child process of test_label_info.py: vision_msgs/LabelInfo through real rclpy pub/sub.

Runs with the test-only vision_msgs on PYTHONPATH / LD_LIBRARY_PATH / AMENT_PREFIX_PATH (set by the
test), so the test process itself never imports it. Prints one JSON line with what it saw.

  python label_info_probe.py pubsub
  python label_info_probe.py node DINOV2 CLIP PROJ
"""
import json
import sys
import threading
import time

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import Header

from talk2dino_ros.ros.label_info import make_label_info, vision_msgs_available
from talk2dino_ros.ros.qos import latched_qos


def wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise SystemExit(f'timed out after {timeout} s waiting for {what}')


def as_dict(msg):
    return {'stamp': [msg.header.stamp.sec, msg.header.stamp.nanosec], 'frame_id': msg.header.frame_id,
            'class_map': [[c.class_id, c.class_name] for c in msg.class_map], 'threshold': msg.threshold,
            'type': type(msg).__module__ + '.' + type(msg).__name__}


class Listener(Node):
    def __init__(self, context, topic, msg_type, name='listener'):
        super().__init__(name, context=context)
        self.got = []
        self.create_subscription(msg_type, topic, self.got.append, latched_qos())


def pubsub(context, executor):
    from vision_msgs.msg import LabelInfo

    node = Node('label_info_pub', context=context)
    executor.add_node(node)
    pub = node.create_publisher(LabelInfo, '/field_test/label_info', latched_qos())
    header = Header(frame_id='camera')
    header.stamp.sec, header.stamp.nanosec = 42, 7
    pub.publish(make_label_info(header, ['road', '猫', 'tall grass'], 0.55))
    # a subscriber that only appears after the publish still gets it (transient-local)
    late = Listener(context, '/field_test/label_info', LabelInfo)
    executor.add_node(late)
    wait(lambda: late.got, 10.0, 'the latched LabelInfo')
    return {'received': [as_dict(m) for m in late.got]}


def node_run(context, executor, weights):
    from talk2dino_ros.msg import ClassInfo
    from vision_msgs.msg import LabelInfo
    from rclpy.parameter import Parameter

    from talk2dino_ros.ros.segmentation_node import SegmentationNode

    params = [Parameter('allow_random_weights', value=True), Parameter('device', value='cpu'),
              Parameter('resolution', value=56),
              Parameter('dinov2_weights', value=weights[0]), Parameter('clip_weights', value=weights[1]),
              Parameter('proj_weights', value=weights[2])]
    node = SegmentationNode(context=context, parameter_overrides=params)
    listener = Listener(context, '/talk2dino/label_info', LabelInfo)
    legend = Listener(context, '/talk2dino/class_info', ClassInfo, name='legend')
    executor.add_node(node)
    executor.add_node(listener)
    executor.add_node(legend)
    wait(lambda: node.model_error == '', 60.0, 'the model to load')
    ok, why = node.apply_vocabulary(['cat', '猫'])
    assert ok, why
    wait(lambda: any(len(m.class_map) == 3 for m in listener.got), 10.0, 'the first LabelInfo')
    ok, why = node.apply_vocabulary(['dog', 'tall grass', 'sky'])
    assert ok, why
    wait(lambda: any(len(m.class_map) == 4 for m in listener.got), 10.0, 'the re-published LabelInfo')
    wait(lambda: any(len(m.class_names) == 4 for m in legend.got), 10.0, 'the ClassInfo')
    late = Listener(context, '/talk2dino/label_info', LabelInfo, name='late')
    executor.add_node(late)
    wait(lambda: late.got, 10.0, 'the latched LabelInfo for a late subscriber')
    info = [m for m in legend.got if len(m.class_names) == 4][-1]
    result = {'received': [as_dict(m) for m in listener.got], 'late': [as_dict(m) for m in late.got],
              'class_info': {'names': list(info.class_names), 'ids': list(info.class_ids),
                             'threshold': info.background_threshold}}
    node.destroy_node()
    return result


def main(argv):
    context = Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    thread = threading.Thread(target=executor.spin, daemon=True)
    try:
        result = {'available': vision_msgs_available()}
        thread.start()
        if argv[0] == 'pubsub':
            result.update(pubsub(context, executor))
        else:
            result.update(node_run(context, executor, argv[1:4]))
        print(json.dumps(result, ensure_ascii=False), flush=True)
    finally:
        stop_spinning(context, thread, executor)
    return 0


def stop_spinning(context, thread, executor):
    """Stop spinning and join the executor thread before the interpreter exits: a still-running DDS thread at
    exit aborts the process ("terminate called without an active exception")."""
    rclpy.try_shutdown(context=context)
    if thread.is_alive():
        thread.join(timeout=5.0)
    executor.shutdown(timeout_sec=1.0)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
