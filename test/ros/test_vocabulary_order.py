"""The newest vocabulary wins: bursts on the latched and the plain topic, the service and the parameter, mixed,
while frames stream; no frame is ever labelled with a legend older than one published before it was sent."""
import threading
import time

import numpy as np
import pytest
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from helpers.ros import NODE, Repeating, wait_for
from helpers.segmenters import FakeFactory
from talk2dino_ros.msg import ClassInfo, ClassMasks
from talk2dino_ros.ros.image_conversion import numpy_to_image
from talk2dino_ros.ros.qos import legend_qos, output_qos
from talk2dino_ros.srv import SetVocabulary

BURST = 20
RATE_HZ = 30.0


def vocab(path, i):
    return [f'{path} {i}', f'thing {i % 3}']


class Stream(Repeating):
    """Frames at 30 Hz from a thread; records, per frame, the newest legend the probe had when it was sent."""

    def __init__(self, probe):
        self.probe = probe
        self.legends = []              # (received monotonic, version, names)
        self.sent = {}                 # stamp -> newest legend version received before sending
        self.lock = threading.Lock()
        self.rgb = np.full((6, 8, 3), 200, np.uint8)
        probe.create_subscription(ClassInfo, NODE + '/class_info', self._on_legend, legend_qos(200))
        probe.listen(NODE + '/masks', ClassMasks, output_qos(depth=200))
        super().__init__(self._send, RATE_HZ)

    def _on_legend(self, msg):
        with self.lock:
            self.legends.append((time.monotonic(), msg.vocabulary_version, tuple(msg.class_names[1:])))

    def newest(self):
        with self.lock:
            return max((v for _, v, _ in self.legends), default=0)

    def _send(self):
        header = self.probe.next_header()
        self.sent[(header.stamp.sec, header.stamp.nanosec)] = self.newest()
        self.probe.image_pub.publish(numpy_to_image(self.rgb, 'rgb8', header))

    def check_frames(self):
        """Every frame's masks carry a legend at least as new as the newest one published before it was sent,
        one that was published with the same names."""
        time.sleep(0.5)
        with self.lock:
            published = {v: names for _, v, names in self.legends}
        masks = self.probe.got(NODE + '/masks')
        assert masks, 'no frame came out while the vocabulary changed'
        for m in masks:
            key = (m.header.stamp.sec, m.header.stamp.nanosec)
            assert m.vocabulary_version >= self.sent[key], (
                f'frame {key} labelled with v{m.vocabulary_version}, v{self.sent[key]} was out before it was sent')
            assert published.get(m.vocabulary_version) == tuple(m.class_names)
        versions = [m.vocabulary_version for m in sorted(masks, key=lambda m: (m.header.stamp.sec, m.header.stamp.nanosec))]
        assert versions == sorted(versions), 'a later frame carries an older legend'


def settled_on(node, names, what):
    """The node ends on ``names`` (legend and parameter) and stays there."""
    names = tuple(names)
    wait_for(lambda: node.legend_state is not None and node.legend_state.names == names, what=what)
    time.sleep(0.6)  # copies delivered late (the second subscription, queued jobs) must not undo it
    assert node.legend_state.names == names, f'{what}: the node went back to {node.legend_state.names}'
    wait_for(lambda: tuple(node.get_parameter('vocabulary').value) == names, what=f'{what}: the parameter')


@pytest.fixture
def streaming(make_node):
    node, probe, _ = make_node(vocabulary=['start'], factory=FakeFactory())
    stream = Stream(probe)
    wait_for(lambda: node.outputs_for().pubs['masks'].get_subscription_count(), what='masks subscription')
    wait_for(lambda: stream.newest() == node.legend_state.version, what='the first legend')
    return node, probe, stream


def test_burst_on_the_latched_topic_ends_on_the_last(streaming):
    node, probe, stream = streaming
    with stream:
        for i in range(BURST):
            probe.vocab_pub.publish(String(data=', '.join(vocab('latched', i))))
        settled_on(node, vocab('latched', BURST - 1), 'latched burst')
    stream.check_frames()


def test_burst_on_a_plain_volatile_publisher_ends_on_the_last(streaming):
    node, probe, stream = streaming
    plain = probe.create_publisher(String, '/t2d/vocab', QoSProfile(
        depth=BURST, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE))
    wait_for(lambda: plain.get_subscription_count() >= 1, what='volatile match')
    with stream:
        for i in range(BURST):
            plain.publish(String(data=', '.join(vocab('volatile', i))))
        settled_on(node, vocab('volatile', BURST - 1), 'volatile burst')
    stream.check_frames()


def test_burst_of_service_calls_ends_on_the_last(streaming):
    node, probe, stream = streaming
    # a client that keeps every answer of the burst (the default keeps the last 10)
    client = probe.create_client(SetVocabulary, NODE + '/set_vocabulary', qos_profile=QoSProfile(depth=BURST))
    assert client.wait_for_service(timeout_sec=5.0)
    with stream:
        futures = [client.call_async(SetVocabulary.Request(names=vocab('service', i))) for i in range(BURST)]
        wait_for(lambda: all(f.done() for f in futures), what='every service answer')
        settled_on(node, vocab('service', BURST - 1), 'service burst')
    assert all(f.result().success for f in futures)
    stream.check_frames()


def test_burst_of_parameter_sets_ends_on_the_last(streaming):
    node, probe, stream = streaming
    params = AsyncParameterClient(probe, NODE)
    assert params.wait_for_services(timeout_sec=5.0)
    with stream:
        futures = [params.set_parameters([Parameter('vocabulary', Parameter.Type.STRING_ARRAY, vocab('param', i))])
                   for i in range(BURST)]
        wait_for(lambda: all(f.done() for f in futures), what='every parameter answer')
        settled_on(node, vocab('param', BURST - 1), 'parameter burst')
    stream.check_frames()


def test_mixed_bursts_follow_arrival_and_a_late_copy_never_wins(streaming):
    """Every path in one burst, one change at a time (each waits for the previous one to arrive), and then
    a latched and a plain publisher back to back, whose copies reach the node through both subscriptions."""
    node, probe, stream = streaming
    plain = probe.create_publisher(String, '/t2d/vocab', QoSProfile(
        depth=BURST, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE))
    client = probe.create_client(SetVocabulary, NODE + '/set_vocabulary')
    params = AsyncParameterClient(probe, NODE)
    assert client.wait_for_service(timeout_sec=5.0) and params.wait_for_services(timeout_sec=5.0)
    wait_for(lambda: plain.get_subscription_count() >= 1, what='volatile match')
    with stream:
        last = None
        for i in range(BURST):
            path = ('latched', 'volatile', 'service', 'param')[i % 4]
            names = vocab(path, i)
            if path == 'latched':
                probe.vocab_pub.publish(String(data=', '.join(names)))
            elif path == 'volatile':
                plain.publish(String(data=', '.join(names)))
            elif path == 'service':
                client.call_async(SetVocabulary.Request(names=names))
            else:
                params.set_parameters([Parameter('vocabulary', Parameter.Type.STRING_ARRAY, names)])
            last = names
            time.sleep(0.02)
        settled_on(node, last, 'mixed burst')
        for i in range(BURST):  # the volatile copies of the plain publisher's samples queue up behind
            plain.publish(String(data=', '.join(vocab('volatile', i))))
            probe.vocab_pub.publish(String(data=', '.join(vocab('latched', i))))
        settled_on(node, vocab('latched', BURST - 1), 'latched after plain, back to back')
    stream.check_frames()


# ---------------------------------------------------------------- the order rule itself (no rclpy)
def _sample(writer, seq, text='x'):
    from talk2dino_ros.ros.vocabulary_order import sample_id
    return sample_id(text, {'publisher_gid': {'data': bytes([writer]) * 16} if writer else None,
                            'publication_sequence_number': seq}, 0.0)


def test_order_rule_latched_copy_first_then_the_queued_volatile_samples():
    from talk2dino_ros.ros.vocabulary_order import VocabularyOrder

    order = VocabularyOrder()
    held = order.from_latched(_sample(1, 20))          # the newest, through the transient-local subscription
    assert held is not None
    taken = [seq for seq in range(11, 21) if order.from_volatile(_sample(1, seq))]
    assert taken == list(range(11, 21))                # the volatile copies in order, the last one included
    assert not order.release(held)                     # its copy was applied in order
    assert order.from_latched(_sample(1, 20)) is None  # and a replay after a re-match is dropped
    assert not order.from_volatile(_sample(1, 15))


def test_order_rule_history_is_applied_unless_a_later_change_arrived():
    from talk2dino_ros.ros.vocabulary_order import VocabularyOrder

    order = VocabularyOrder()
    held = order.from_latched(_sample(1, 3))           # published before the node matched it
    assert order.release(held)
    held = order.from_latched(_sample(2, 7))           # history of a second publisher ...
    order.local_change()                               # ... and a service call after it
    assert not order.release(held)
    held = order.from_latched(_sample(3, 1))
    assert order.from_volatile(_sample(4, 1))          # another publisher's live sample came after it
    assert not order.release(held)


def test_order_rule_without_publisher_ids_drops_only_the_second_copy():
    from talk2dino_ros.ros.vocabulary_order import VocabularyOrder, sample_id

    order = VocabularyOrder()
    a = sample_id('a', {}, 10.2)
    assert not a.ordered and order.from_volatile(a)
    assert order.from_latched(sample_id('a', None, 10.7)) is None
    assert order.from_volatile(sample_id('b', None, 10.7))


def test_a_frame_that_arrives_after_a_vocabulary_is_installed_is_computed_with_it(make_node):
    """The worker takes the frame, then reads the vocabulary: one installed while it woke up (after a frame it
    was woken by, before the newer frame that replaced it) is the one the newer frame is computed with."""
    node, probe, _ = make_node(vocabulary=['old'], factory=FakeFactory())
    probe.listen(NODE + '/masks', ClassMasks, output_qos(depth=20))
    wait_for(lambda: node.outputs_for().pubs['masks'].get_subscription_count(), what='masks subscription')
    mailbox = node._mailbox
    real_take_all = mailbox.take_all
    installed = []

    def take_all():
        frames = real_take_all()
        if frames and not installed:  # the install lands while the worker takes the frame
            assert node.apply_vocabulary(['new', 'one'])[0]
            installed.append(node.legend_state.version)
        return frames

    mailbox.take_all = take_all
    probe.image_pub.publish(numpy_to_image(np.full((6, 8, 3), 200, np.uint8), 'rgb8', probe.next_header()))
    masks = wait_for(lambda: probe.got(NODE + '/masks'), what='the masks of the frame')
    assert installed and masks[0].vocabulary_version == installed[0], (masks[0].vocabulary_version, installed)
    assert tuple(masks[0].class_names) == ('new', 'one')
