"""Shared fixtures: ROS isolation for parallel runs, an rclpy Context per test, tiny random weights."""
import itertools
import os
import random
import sys
import threading
from pathlib import Path

# Before anything imports rclpy: a random DDS domain and localhost-only discovery, so parallel test runs
# (and other ROS processes on this machine) never cross-talk.
os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(1, 101)))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('ROS_LOCALHOST_ONLY', '1')

import pytest  # noqa: E402

# the shared test helpers (test/helpers/) import as `helpers.<module>` from every folder
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope='session')
def tiny_weights(tmp_path_factory):
    """role -> path of tiny random Talk2DINO checkpoints (official DINOv2 / OpenAI TorchScript / ψ layouts)."""
    from talk2dino_ros.model.random_weights import write_random_weights
    return write_random_weights(tmp_path_factory.mktemp('tiny_weights'), method='talk2dino', width='tiny')


@pytest.fixture(scope='session')
def tiny_segmenter(tiny_weights):
    """A CPU Talk2DINO segmenter over the tiny random weights, vocabulary not set."""
    from talk2dino_ros.model.random_weights import tiny_segmenter_config
    from talk2dino_ros.model.segmenter import Segmenter
    return Segmenter.from_config(tiny_segmenter_config(tiny_weights))


@pytest.fixture
def fresh_tiny_segmenter(tiny_weights):
    """Like ``tiny_segmenter`` but new per test (for tests that change options or vocabulary)."""
    from talk2dino_ros.model.random_weights import tiny_segmenter_config
    from talk2dino_ros.model.segmenter import Segmenter
    return Segmenter.from_config(tiny_segmenter_config(tiny_weights))


@pytest.fixture
def hide_matplotlib(monkeypatch):
    """Call it to make ``import matplotlib`` fail for the rest of the test (the optional plots extra missing)."""
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == 'matplotlib' or name.startswith('matplotlib.'):
            raise ImportError('No module named matplotlib')
        return real_import(name, *args, **kwargs)

    return lambda: monkeypatch.setattr(builtins, '__import__', no_matplotlib)


_domains = itertools.count(int(os.environ['ROS_DOMAIN_ID']))


@pytest.fixture
def ros_context(monkeypatch):
    """An rclpy Context on a DDS domain of its own (the next of 1..101 in turn).

    A test that ends leaves its nodes in other participants' discovery data for a moment; the next test,
    on another domain, never sees them (a '/talk2dino' left over from the last test hid the new one's
    publishers from the graph queries). Set in the environment, so processes the test starts use it too.
    """
    import rclpy
    from rclpy.context import Context

    monkeypatch.setenv('ROS_DOMAIN_ID', str(next(_domains) % 101 + 1))
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
def ros_log(monkeypatch):
    """What rclpy loggers emitted during the test (``.text``, ``.lines``), read from rclpy rather than fd 2."""
    from helpers.ros_log import record_ros_log
    return record_ros_log(monkeypatch)
