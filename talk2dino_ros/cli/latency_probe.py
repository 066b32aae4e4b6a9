"""Measure what the node adds on top of the engine: image published -> labels received.

    python -m talk2dino_ros.cli.latency_probe                    # null engine: the node's own cost
    python -m talk2dino_ros.cli.latency_probe --engine tiny      # tiny random-weight Talk2DINO (real engine)
    python -m talk2dino_ros.cli.latency_probe --width 1280 --height 720 --frames 100

The node and a probe node run in one process, each on its own executor thread (as two processes on one
machine would), talking over real DDS on a private domain. Frames are sent one at a time (the next one
only after the previous labels arrived), so nothing is dropped or queued. For every frame:
``end_to_end`` = labels received - image published, ``engine`` = the node's timing of the
``segment()`` call, ``added`` = end_to_end - engine (conversion, label encoding, serialisation,
transport both ways, thread hand-over). Only ~/labels is subscribed, like a costmap consumer.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from typing import List, Optional

import numpy as np


class NullSegmenter:
    """An engine that costs nothing: constant scores, so the measured time is the node's alone."""

    def __init__(self) -> None:
        import torch

        self.device = torch.device('cpu')
        self._version = 0
        self.vocabulary = None

    def with_options(self, *, vocabulary_names=None, **changes) -> None:
        if vocabulary_names is not None:
            self.set_vocabulary(vocabulary_names)

    def set_vocabulary(self, names):
        import torch

        from talk2dino_ros.model.types import Vocabulary

        self._version += 1
        self.vocabulary = Vocabulary(names=tuple(names), text_names=tuple(names),
                                     embeddings=torch.zeros(len(names), 1), background=True, version=self._version)
        return self.vocabulary

    def segment(self, image, *, vocabulary=None, options=None, output_size=None):
        from talk2dino_ros.model.types import SegmentationResult

        h, w = image.shape[:2]
        scores = np.zeros((len(vocabulary.names) + 1, h, w), np.float32)
        labels = np.zeros((h, w), np.int64)
        return SegmentationResult(scores=scores, labels=labels, class_names=vocabulary.class_names,
                                  has_background=True, vocabulary_version=vocabulary.version)


def _weights_dir(engine: str) -> str:
    """A directory the node finds its weight files in: tiny random checkpoints, or empty stand-ins."""
    import tempfile

    out = tempfile.mkdtemp(prefix='t2d_latency_')
    if engine == 'tiny':
        from talk2dino_ros.model.random_weights import write_random_weights
        write_random_weights(out)  # official file names, tiny widths
    else:
        from talk2dino_ros.model.pretrained import default_paths
        for path in default_paths('talk2dino', 'vitb', out).values():
            path.write_bytes(b'')  # never read by the null engine
    return out


def _percentiles(values: List[float]) -> str:
    arr = np.asarray(values)
    return f'p50 {np.percentile(arr, 50):7.2f}  p95 {np.percentile(arr, 95):7.2f}  max {arr.max():7.2f}'


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='latency_probe', description=__doc__.split('\n')[0])
    parser.add_argument('--engine', choices=('null', 'tiny'), default='null',
                        help='null: an engine that returns at once (the node\'s own cost); tiny: the real engine '
                             'with tiny random weights (default null)')
    parser.add_argument('--frames', type=int, default=60, help='frames measured (default 60)')
    parser.add_argument('--warmup', type=int, default=5, help='frames sent first and not measured (default 5)')
    parser.add_argument('--width', type=int, default=640, help='frame width in pixels (default 640)')
    parser.add_argument('--height', type=int, default=480, help='frame height in pixels (default 480)')
    parser.add_argument('--classes', type=int, default=5, help='vocabulary size (default 5)')
    parser.add_argument('--resolution', type=int, default=448, help='engine short side (tiny engine)')
    parser.add_argument('--device', default='auto', help='engine device (tiny engine)')
    args = parser.parse_args(argv)
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(0, 101)))
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')

    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from talk2dino_ros.errors import Talk2DinoError
    from talk2dino_ros.ros.image_conversion import numpy_to_image
    from talk2dino_ros.ros.qos import output_qos
    from talk2dino_ros.ros.segmentation_node import SegmentationNode, default_segmenter_factory

    try:
        weights_dir = _weights_dir(args.engine)
    except (ImportError, Talk2DinoError) as exc:
        print(f'error: cannot write the {args.engine} weights: {exc}', file=sys.stderr)
        return 2
    factory = (lambda settings: NullSegmenter()) if args.engine == 'null' else default_segmenter_factory

    context = Context()
    rclpy.init(context=context)
    node = SegmentationNode(segmenter_factory=factory, context=context, parameter_overrides=[
        Parameter('resolution', value=args.resolution), Parameter('allow_random_weights', value=True),
        Parameter('weights_dir', value=weights_dir), Parameter('device', value=args.device)])
    probe = Node('latency_probe', context=context)
    arrived = threading.Event()
    arrivals = {}

    def on_labels(msg):
        arrivals[msg.header.stamp.sec] = time.perf_counter()
        arrived.set()
    probe.create_subscription(Image, '/talk2dino/labels', on_labels, output_qos())
    publisher = probe.create_publisher(Image, '/image', QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    executors, threads = [], []
    for n in (node, probe):
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(n)
        threads.append(threading.Thread(target=executor.spin, daemon=True))
        threads[-1].start()
        executors.append(executor)
    try:
        deadline = time.monotonic() + 120
        while node.legend_state is None and time.monotonic() < deadline:
            if node.segmenter is not None:
                node.apply_vocabulary([f'class {i}' for i in range(args.classes)])
            time.sleep(0.05)
        if node.legend_state is None:
            print(f'error: the node did not get ready: {node.model_error}', file=sys.stderr)
            return 2
        rgb = np.random.default_rng(0).integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
        end_to_end, engine = [], []
        for i in range(args.warmup + args.frames):
            msg = numpy_to_image(rgb, 'rgb8')
            msg.header.stamp.sec = i + 1
            msg.header.frame_id = 'camera'
            arrived.clear()
            engine_before = len(node.stats.inference_ms.values())
            sent = time.perf_counter()
            publisher.publish(msg)
            while i + 1 not in arrivals:  # the first frames may be lost to discovery: resend
                if not arrived.wait(timeout=5.0 if i else 0.5):
                    sent = time.perf_counter()
                    publisher.publish(msg)
                arrived.clear()
            if i >= args.warmup:
                end_to_end.append((arrivals[i + 1] - sent) * 1000.0)
                engine.append(node.stats.inference_ms.values()[-1] if
                              len(node.stats.inference_ms.values()) > engine_before else float('nan'))
        added = [e - g for e, g in zip(end_to_end, engine)]
        print(f'latency_probe: engine={args.engine} image {args.width}x{args.height} rgb8, '
              f'{args.classes} classes, {args.frames} frames (ms)')
        print(f'  end_to_end  {_percentiles(end_to_end)}')
        print(f'  engine      {_percentiles(engine)}')
        print(f'  added       {_percentiles(added)}')
    finally:
        for executor in executors:
            executor.shutdown(timeout_sec=1.0)
        for thread in threads:
            thread.join(timeout=5.0)
        node.destroy_node()
        probe.destroy_node()
        rclpy.try_shutdown(context=context)
    return 0


if __name__ == '__main__':
    sys.exit(main())
