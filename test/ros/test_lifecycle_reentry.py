"""Lifecycle transitions are re-entrant: deactivate is bounded during a long frame, and any number of cycles
under a 30 Hz stream leave one worker, one legend per change and the same entities (fake engine, real rclpy)."""
import collections
import threading
import time

import numpy as np
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.lifecycle import TransitionCallbackReturn

from ros_fakes import NODE, FakeFactory, wait_for
from talk2dino_ros.msg import ClassInfo
from talk2dino_ros.ros.image_conversion import numpy_to_image
from talk2dino_ros.ros.qos import legend_qos
from test_lifecycle_node import make_lifecycle  # noqa: F401  (the fixture)

SUCCESS = TransitionCallbackReturn.SUCCESS
#: the shutdown bound a transition must keep, whatever frame is running
TRANSITION_BOUND_S = 3.0


def workers():
    return [t for t in threading.enumerate() if t.name == 't2d_worker' and t.is_alive()]


def legend_counts(msgs):
    """How many ~/class_info messages carried each vocabulary version."""
    return collections.Counter(m.vocabulary_version for m in msgs)


class Stream:
    """Frames at 30 Hz from a thread until stopped."""

    def __init__(self, probe, rate=30.0):
        self.probe, self.period = probe, 1.0 / rate
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        rgb = np.full((6, 8, 3), 200, np.uint8)
        while not self.stop.is_set():
            self.probe.image_pub.publish(numpy_to_image(rgb, 'rgb8', self.probe.next_header()))
            time.sleep(self.period)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


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
    wait_for(lambda: node.outputs_for().labels_pub.get_subscription_count(), what='labels subscription')
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


def node_threads():
    """The node's own threads by name (worker, control, loader), with how many of each."""
    return collections.Counter(t.name for t in threading.enumerate() if t.name.startswith('t2d_'))


def entity_counts(node):
    return (len(list(node.subscriptions)), len(list(node.publishers)), len(list(node.timers)),
            len(list(node.guards)), len(list(node.services)), len(list(node.clients)))


def test_cycles_under_a_30_hz_stream_leave_one_worker_one_legend_per_change_and_no_growth(make_lifecycle):
    node, probe, factory = make_lifecycle(factory=FakeFactory(delay=0.02))
    legends = []
    probe.create_subscription(ClassInfo, NODE + '/class_info', legends.append, legend_qos(200))
    assert node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS
    wait_for(lambda: node.outputs_for().labels_pub.get_subscription_count(), what='labels subscription')
    # the per-class mask publishers follow the legend (two classes, before and after)
    wait_for(lambda: len(node.outputs_for().mask_pubs) == 2, what='the mask publishers')
    baseline_entities = entity_counts(node)
    baseline_threads = node_threads()
    with Stream(probe):
        for cycle in range(12):
            time.sleep(0.15)
            assert node.trigger_deactivate() == SUCCESS
            if cycle % 4 == 3:  # a full release and reload every few cycles
                assert node.trigger_cleanup() == SUCCESS and node.segmenter is None
                assert node.trigger_configure() == SUCCESS
            if cycle % 3 == 1:
                assert node.apply_vocabulary([f'class {cycle}', 'other'])[0]
            assert node.trigger_activate() == SUCCESS
            assert len(workers()) == 1, f'cycle {cycle}: {len(workers())} workers'
        time.sleep(0.5)
        assert node.apply_vocabulary(['last', 'one'])[0]
        version = node.legend_state.version
        wait_for(lambda: version in legend_counts(legends), timeout=30.0, what='the last legend')
        labels_before = len(probe.got(NODE + '/labels'))
        wait_for(lambda: len(probe.got(NODE + '/labels')) > labels_before + 3, what='frames after the cycles')
    wait_for(lambda: set(node.outputs_for().mask_pubs) == {'last', 'one'}, what='the last mask publishers')
    assert len(workers()) == 1
    assert entity_counts(node) == baseline_entities
    assert node_threads() == baseline_threads
    counts = legend_counts(legends)
    assert set(counts.values()) == {1}, f'a legend published more than once: {counts}'
    assert len(factory.loads) == 4  # one model per configure
