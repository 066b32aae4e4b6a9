"""Lifecycle transitions are re-entrant: deactivate is bounded during a long frame, and any number of cycles
under a 30 Hz stream leave one worker, one legend per change and the same entities (fake engine, real rclpy)."""
import collections
import threading
import time

import numpy as np
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from helpers.ros import NODE, Repeating, SpunNode, wait_for
from helpers.segmenters import FakeFactory
from talk2dino_ros.msg import ClassInfo
from talk2dino_ros.ros.image_conversion import numpy_to_image
from talk2dino_ros.ros.qos import legend_qos, output_qos
from test_lifecycle_node import make_lifecycle  # noqa: F401  (the fixture)

#: the shutdown bound a transition must keep, whatever frame is running
TRANSITION_BOUND_S = 3.0


def workers():
    return [t for t in threading.enumerate() if t.name == 't2d_worker' and t.is_alive()]


def legend_counts(msgs):
    """How many ~/class_info messages carried each vocabulary version."""
    return collections.Counter(m.vocabulary_version for m in msgs)


class Stream(Repeating):
    """Frames at 30 Hz on ``publisher`` from a thread while inside ``with``."""

    def __init__(self, publisher, rate=30.0):
        self.publisher, self.stamp = publisher, 0
        self.rgb = np.full((6, 8, 3), 200, np.uint8)
        super().__init__(self._send, rate)

    def _send(self):
        self.stamp += 1
        header = Header(frame_id='camera')
        header.stamp.sec = self.stamp
        self.publisher.publish(numpy_to_image(self.rgb, 'rgb8', header))


def test_deactivate_during_a_long_frame_is_bounded_and_the_next_activate_runs_one_worker(make_lifecycle):
    node, probe, factory = make_lifecycle(factory=FakeFactory(delay=6.0))
    legends = []
    probe.create_subscription(ClassInfo, NODE + '/class_info', legends.append, legend_qos(100))
    change = probe.create_client(ChangeState, NODE + '/change_state')
    assert change.wait_for_service(timeout_sec=5.0)

    def transition(label):
        started = time.monotonic()
        future = change.call_async(ChangeState.Request(transition=Transition(label=label)))
        result = wait_for(lambda: future.done() and future.result(), timeout=30.0, what=label)
        return result.success, time.monotonic() - started

    assert transition('configure')[0] and transition('activate')[0]
    wait_for(lambda: node.outputs_for().pubs['labels'].get_subscription_count(), what='labels subscription')
    wait_for(lambda: legends, what='the first legend')
    probe.image_pub.publish(numpy_to_image(np.full((6, 8, 3), 200, np.uint8), 'rgb8', probe.next_header()))
    wait_for(lambda: node.segmenter.segment_calls == 1, what='the long frame to start')

    ok, seconds = transition('deactivate')
    assert ok and seconds <= TRANSITION_BOUND_S, f'deactivate took {seconds:.1f} s during a long frame'
    ok, seconds = transition('activate')
    assert ok and seconds <= TRANSITION_BOUND_S
    # the frame of the first activation ends; its worker leaves without publishing, one worker remains
    wait_for(lambda: len(workers()) == 1 and not node_threads()['t2d_worker_retiring'], timeout=15.0,
             what='the earlier worker to end')
    assert probe.got(NODE + '/labels') == [], 'a frame taken before deactivate was published after it'
    factory.loads[0].delay = 0.0
    assert node.apply_vocabulary(['tree', 'sky'])[0]
    version = node.legend_state.version
    wait_for(lambda: version in legend_counts(legends), what='the new legend')
    time.sleep(0.5)
    counts = legend_counts(legends)
    assert set(counts.values()) == {1}, f'legends published more than once: {counts}'
    assert len(workers()) == 1
    assert transition('deactivate')[0] and transition('cleanup')[0]


def spin_alive():
    """The test's executor thread still spins (it dies on an entity destroyed under its wait set)."""
    return any('_spin_quietly' in t.name for t in threading.enumerate())


def node_threads():
    """The node's own threads by name (worker, control, loader), with how many of each."""
    return collections.Counter(t.name for t in threading.enumerate() if t.name.startswith('t2d_'))


def entity_counts(node):
    return (len(list(node.subscriptions)), len(list(node.publishers)), len(list(node.timers)),
            len(list(node.guards)), len(list(node.services)), len(list(node.clients)))


def test_cycles_under_a_30_hz_stream_leave_one_worker_one_legend_per_change_and_no_growth(make_lifecycle):
    node, _, factory = make_lifecycle(factory=FakeFactory(delay=0.02))
    # camera, readers and the lifecycle manager in their own participant, as other processes are; the
    # transitions go through ~/change_state, so they run on the node's executor as a manager's do
    side = SpunNode('manager_camera_readers', start=False)
    legends, labels = [], []
    side.node.create_subscription(ClassInfo, NODE + '/class_info', legends.append, legend_qos(200))
    side.node.create_subscription(Image, NODE + '/labels', labels.append, output_qos(depth=50))
    camera = side.node.create_publisher(Image, '/image', QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    change = side.node.create_client(ChangeState, NODE + '/change_state')
    side.start()

    target = {'configure': 'inactive', 'activate': 'active', 'deactivate': 'inactive', 'cleanup': 'unconfigured'}

    sent = []

    def transition(label):
        # Done when the answer comes or the node is in the target state. Right after discovery the first
        # request or its answer can be lost (the other side's reader not matched yet): the state is awaited,
        # and only the first request is sent again when nothing happened in 3 s (a late copy of it, a
        # 'configure' in another state, is refused by the node and changes nothing).
        reached = lambda: node._state_machine.current_state[1] == target[label]  # noqa: E731
        deadline = time.monotonic() + 30.0
        while True:
            future = change.call_async(ChangeState.Request(transition=Transition(label=label)))
            try:
                wait_for(lambda: (future.done() and future.result()) or reached(),
                         timeout=3.0 if not sent else 30.0, what=label)
                break
            except AssertionError:
                if sent or time.monotonic() > deadline:
                    raise
        sent.append(label)
        return reached() and (not future.done() or future.result().success)

    try:
        assert change.wait_for_service(timeout_sec=10.0)
        assert transition('configure') and transition('activate')
        wait_for(lambda: node.outputs_for().pubs['labels'].get_subscription_count(), what='labels subscription')
        # the per-class mask publishers follow the legend (two classes, before and after)
        wait_for(lambda: len(node.outputs_for().mask_pubs) == 2, what='the mask publishers')
        baseline_entities = entity_counts(node)
        baseline_threads = node_threads()
        with Stream(camera):
            for cycle in range(12):
                time.sleep(0.15)
                assert transition('deactivate')
                if cycle % 4 == 3:  # a full release and reload every few cycles
                    assert transition('cleanup') and node.segmenter is None
                    assert transition('configure')
                if cycle % 3 == 1:
                    assert node.apply_vocabulary([f'class {cycle}', 'other'])[0]
                assert transition('activate')
                assert len(workers()) == 1, f'cycle {cycle}: {len(workers())} workers'
            time.sleep(0.5)
            assert node.apply_vocabulary(['last', 'one'])[0]
            version = node.legend_state.version
            wait_for(lambda: version in legend_counts(legends), timeout=30.0, what='the last legend')
            count = len(labels)
            wait_for(lambda: len(labels) > count + 3, timeout=30.0, what='frames after the cycles')
            assert node.executor is not None and spin_alive(), 'the executor stopped during the cycles'

        wait_for(lambda: set(node.outputs_for().mask_pubs) == {'last', 'one'}, what='the last mask publishers')
        assert len(workers()) == 1
        assert entity_counts(node) == baseline_entities
        assert node_threads() == baseline_threads
        counts = legend_counts(legends)
        assert set(counts.values()) == {1}, f'a legend published more than once: {counts}'
        assert len(factory.loads) == 4  # one model per configure
    finally:
        side.close()
