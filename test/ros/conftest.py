"""Fixtures for the rclpy tests: an isolated ROS domain and one rclpy Context per test."""
import os
import random
import sys
import threading
from pathlib import Path

import pytest

# Before any rclpy.init: a private domain and localhost-only discovery (parallel runs must not cross-talk).
os.environ.setdefault('ROS_DOMAIN_ID', str(random.Random().randint(0, 101)))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def ros_context():
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        rclpy.try_shutdown(context=context)


@pytest.fixture
def spin(ros_context):
    """spin(*nodes): spin these nodes in a background thread until the test ends."""
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=ros_context)
    nodes = []
    thread = None

    def start(*new_nodes):
        nonlocal thread
        for node in new_nodes:
            executor.add_node(node)
            nodes.append(node)
        if thread is None:
            thread = threading.Thread(target=_spin_quietly, args=(executor,), daemon=True)
            thread.start()
        return executor

    yield start
    executor.shutdown(timeout_sec=1.0)
    if thread is not None:
        thread.join(timeout=5.0)
    for node in nodes:
        node.destroy_node()


def _spin_quietly(executor):
    from rclpy.executors import ExternalShutdownException
    try:
        executor.spin()
    except (ExternalShutdownException, Exception):
        pass


@pytest.fixture
def make_node(ros_context, spin, tmp_path):
    """make(params=None, factory=None, vocabulary=None) -> (SegmentationNode, Probe, factory), spinning."""
    from rclpy.parameter import Parameter

    from ros_fakes import NODE, FakeFactory, Probe, wait_for
    from sensor_msgs.msg import Image
    from talk2dino_ros.ros.segmentation_node import SegmentationNode

    from talk2dino_ros.model.pretrained import default_paths

    # stand-in files where the node looks for the published weights (the fake engine never reads them)
    weights_dir = tmp_path / 'weights'
    weights_dir.mkdir()
    for method in ('talk2dino', 'clip_dinoiser'):
        for path in default_paths(method, 'vitb', weights_dir).values():
            path.write_bytes(b'stand-in')

    def make(params=None, factory=None, vocabulary=None):
        overrides = []
        params = {'weights_dir': str(weights_dir), **(params or {})}
        for key, value in params.items():
            if isinstance(value, list):
                overrides.append(Parameter(key, Parameter.Type.STRING_ARRAY, value))
            else:
                overrides.append(Parameter(key, value=value))
        factory = factory or FakeFactory()
        # the node's vocabulary topic is relative; the launch file maps it to the documented /t2d/vocab
        node = SegmentationNode(segmenter_factory=factory, context=ros_context, parameter_overrides=overrides,
                                cli_args=['--ros-args', '-r', 'vocab:=/t2d/vocab'])
        probe = Probe(ros_context)
        probe.listen(NODE + '/labels', Image)
        spin(node, probe)
        if vocabulary:
            wait_for(lambda: node.segmenter is not None, what='model load')
            assert node.apply_vocabulary(vocabulary)[0]
        return node, probe, factory
    return make


