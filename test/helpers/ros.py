"""rclpy helpers for the node tests: the node's name, a probe node that publishes and records, wait_for."""
from __future__ import annotations

import threading as _threading
import time
from collections import defaultdict

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header, String

from talk2dino_ros.ros.qos import latched_qos, output_qos


def wait_for(predicate, timeout=10.0, period=0.01, what='condition'):
    """Poll ``predicate`` until it returns a truthy value; fail the test with ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(period)
    raise AssertionError(f'timed out after {timeout} s waiting for {what}')


# ---------------------------------------------------------------- rclpy side of the tests


NODE = '/talk2dino'


class Probe(Node):
    """The test's side: publishes images and vocabularies, records every output by topic."""

    def __init__(self, context):
        super().__init__('probe', context=context)
        self.lock = _threading.Lock()
        self.msgs = defaultdict(list)
        self.image_pub = self.create_publisher(
            Image, '/image', QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
        self.compressed_pub = self.create_publisher(
            CompressedImage, '/image/compressed', QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self.vocab_pub = self.create_publisher(String, '/t2d/vocab', latched_qos())
        self.stamp = 0

    def listen(self, topic, msg_type, qos=None):
        def store(msg):
            with self.lock:
                self.msgs[topic].append(msg)
        return self.create_subscription(msg_type, topic, store, qos or output_qos(depth=50))

    def got(self, topic):
        with self.lock:
            return list(self.msgs[topic])

    def next_header(self, frame_id='camera'):
        self.stamp += 1
        header = Header(frame_id=frame_id)
        header.stamp.sec, header.stamp.nanosec = 1000 + self.stamp, 123456789
        return header

    def output_for(self, topic, header):
        for msg in self.got(topic):
            if msg.header.stamp == header.stamp and msg.header.frame_id == header.frame_id:
                return msg
        return None

    def send(self, msg, topic=NODE + '/labels', timeout=10.0, compressed=False):
        """Publish until the output for this frame arrives on ``topic`` (covers discovery)."""
        deadline = time.monotonic() + timeout
        pub = self.compressed_pub if compressed else self.image_pub
        while time.monotonic() < deadline:
            pub.publish(msg)
            try:
                return wait_for(lambda: self.output_for(topic, msg.header), timeout=0.3)
            except AssertionError:
                continue
        raise AssertionError(f'no {topic} for frame {msg.header.stamp}')




class Repeating:
    """Calls ``step()`` ``rate`` times a second from a thread while inside ``with`` (e.g. a camera stream)."""

    def __init__(self, step, rate):
        self._step, self._period = step, 1.0 / rate
        self._stop = _threading.Event()
        self._thread = _threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self._step()
            time.sleep(self._period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class SpunNode:
    """A node spun by its own executor thread, so that a stalled node under test cannot stall it.

    ``context=None`` gives it a context of its own (its own DDS participant, as another process has), shut
    down by :meth:`close`. ``start=False`` leaves the spinning to :meth:`start`.
    """

    def __init__(self, name, context=None, start=True):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        self._own_context = context is None
        if self._own_context:
            context = Context()
            rclpy.init(context=context)
        self.context = context
        self.node = Node(name, context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.thread = _threading.Thread(target=self._spin, daemon=True)
        if start:
            self.start()

    def _spin(self):
        try:
            self.executor.spin()
        except Exception:
            pass

    def start(self):
        self.thread.start()

    def close(self):
        import rclpy

        self.executor.shutdown(timeout_sec=1.0)
        self.thread.join(timeout=5.0)
        self.node.destroy_node()
        if self._own_context:
            rclpy.try_shutdown(context=self.context)
