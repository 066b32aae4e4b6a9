"""``python -m talk2dino_ros.cli.output_saver``: watch the node's outputs without RViz.

Subscribes to ``<node>/overlay`` and ``<node>/class_info``, prints the legend when it changes and the
output rate, and writes every N-th overlay as a PNG (for headless machines and the demo script).
``--banner TEXT`` adds a warning band above every saved picture (e.g. a reminder that the model is a test one);
``--input-topic T`` also counts the camera frames, for the one-line summary printed at exit.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Iterable, Optional

import cv2
import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from talk2dino_ros.msg import ClassInfo

from talk2dino_ros.atomic_files import atomic_path
from talk2dino_ros.ros.image_conversion import ImageConversionError, image_to_numpy
from talk2dino_ros.ros.spin import spin_until_shutdown


class OutputSaver(Node):
    """Logs the legend and output rate; saves every ``every``-th overlay as ``out_dir/overlay_NNNNN.png``."""

    def __init__(self, node_name: str, out_dir: str, every: int, context=None, banner: str = '',
                 input_topic: str = '', input_reliability: str = 'reliable'):
        super().__init__('talk2dino_output_saver', context=context)
        self.out_dir, self.every, self.banner = out_dir, max(1, every), banner
        os.makedirs(out_dir, exist_ok=True)
        self.count = 0
        self.saved = 0
        self.frames_in = 0
        self.count_inputs = bool(input_topic)
        self.t0 = time.monotonic()
        self.first_out = self.last_out = None  # monotonic times of the first and last overlay
        if input_topic:  # counted only; a best-effort reader of large frames would miss lost fragments
            from talk2dino_ros.ros.qos import image_input_qos

            self.create_subscription(Image, input_topic, self.on_input, image_input_qos(input_reliability))
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.create_subscription(ClassInfo, f'{node_name}/class_info', self.on_info, latched)
        self.create_subscription(Image, f'{node_name}/overlay', self.on_overlay, 5)

    def on_info(self, msg: ClassInfo) -> None:
        legend = ', '.join(f'{i}={n}' for i, n in zip(msg.class_ids, msg.class_names))
        self.get_logger().info(f'legend v{msg.vocabulary_version} ({msg.method}): {legend}')

    def on_input(self, msg: Image) -> None:
        self.frames_in += 1

    def summary(self) -> str:
        """One line: frames in (when counted) and out, the output rate, where the pictures are."""
        seconds = time.monotonic() - self.t0
        frames_in = f'{self.frames_in} frames in, ' if self.count_inputs else ''
        # the rate between the first and the last overlay: model loading before the first is not counted
        span = (self.last_out - self.first_out) if self.count > 1 else 0.0
        rate = f'{(self.count - 1) / span:.2f} overlays/s' if span > 0 else 'rate n/a'
        return (f'{frames_in}{self.count} overlays out in {seconds:.0f} s ({rate}); '
                f'{self.saved} saved in {os.path.abspath(self.out_dir)}')

    def on_overlay(self, msg: Image) -> None:
        self.count += 1
        self.last_out = time.monotonic()
        if self.first_out is None:
            self.first_out = self.last_out
        if self.count % self.every == 0:
            try:
                rgb = image_to_numpy(msg)
            except ImageConversionError as exc:
                self.get_logger().warning(f'overlay {self.count} not saved: {exc}')
                return
            if self.banner:
                from talk2dino_ros.outputs.banner import stack_banner

                rgb = stack_banner(rgb, self.banner)  # above the picture: the legend stays visible
            path = os.path.join(self.out_dir, f'overlay_{self.count:05d}.png')
            rate = self.count / max(1e-6, time.monotonic() - self.t0)
            try:
                # no fsync: a live stream of pictures; the rename keeps a viewer from seeing half a file
                with atomic_path(path, fsync=False) as tmp:
                    if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
                        raise OSError(f'OpenCV could not encode {path}')
            except (OSError, cv2.error) as exc:
                self.get_logger().error(f'cannot write {path}: {exc}')
                return
            self.saved += 1
            self.get_logger().info(f'{self.count} overlays ({rate:.2f}/s), wrote {path}')


def main(argv: Optional[Iterable[str]] = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog='output_saver', description=__doc__.split('\n\n')[0])
    p.add_argument('--node', default='/talk2dino', help='node name whose outputs to watch')
    p.add_argument('--out', default='t2d_out', help='directory for the overlay PNGs')
    p.add_argument('--every', type=int, default=5, help='save every N-th overlay')
    p.add_argument('--banner', default='', metavar='TEXT',
                   help='add this warning above every saved overlay (white on a red band)')
    p.add_argument('--input-topic', default='', metavar='TOPIC',
                   help='also count the camera frames on this topic, for the summary printed at exit')
    p.add_argument('--input-reliability', choices=('reliable', 'best_effort'), default='reliable',
                   help='QoS reliability of the --input-topic reader; reliable (default) counts every frame of '
                        'a reliable camera publisher and matches no best-effort one')
    args = p.parse_args(rclpy.utilities.remove_ros_args(args_in))
    rclpy.init(args=args_in)
    node = OutputSaver(args.node, args.out, args.every, banner=args.banner, input_topic=args.input_topic,
                       input_reliability=args.input_reliability)
    spin_until_shutdown(node)
    print(f'summary: {node.summary()}', flush=True)  # after Ctrl-C / SIGTERM: the demo's last word
    return 0


if __name__ == '__main__':
    sys.exit(main())
