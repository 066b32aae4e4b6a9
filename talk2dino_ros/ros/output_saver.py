"""``python -m talk2dino_ros.ros.output_saver``: watch the node's outputs without RViz.

Subscribes to ``<node>/overlay`` and ``<node>/class_info``, prints the legend when it changes and the
output rate, and writes every N-th overlay as a PNG (for headless machines and the demo script).
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

from talk2dino_ros.ros.image_conversion import image_to_numpy
from talk2dino_ros.ros.spin import spin_until_shutdown


class OutputSaver(Node):
    def __init__(self, node_name: str, out_dir: str, every: int):
        super().__init__('talk2dino_output_saver')
        self.out_dir, self.every = out_dir, max(1, every)
        os.makedirs(out_dir, exist_ok=True)
        self.count = 0
        self.t0 = time.monotonic()
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.create_subscription(ClassInfo, f'{node_name}/class_info', self.on_info, latched)
        self.create_subscription(Image, f'{node_name}/overlay', self.on_overlay, 5)

    def on_info(self, msg: ClassInfo) -> None:
        legend = ', '.join(f'{i}={n}' for i, n in zip(msg.class_ids, msg.class_names))
        self.get_logger().info(f'legend v{msg.vocabulary_version} ({msg.method}): {legend}')

    def on_overlay(self, msg: Image) -> None:
        self.count += 1
        if self.count % self.every == 0:
            rgb = image_to_numpy(msg)
            path = os.path.join(self.out_dir, f'overlay_{self.count:05d}.png')
            cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            rate = self.count / max(1e-6, time.monotonic() - self.t0)
            self.get_logger().info(f'{self.count} overlays ({rate:.2f}/s), wrote {path}')


def main(argv: Optional[Iterable[str]] = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog='output_saver', description=__doc__.split('\n\n')[0])
    p.add_argument('--node', default='/talk2dino', help='node name whose outputs to watch')
    p.add_argument('--out', default='t2d_out', help='directory for the overlay PNGs')
    p.add_argument('--every', type=int, default=5, help='save every N-th overlay')
    args = p.parse_args(rclpy.utilities.remove_ros_args(args_in))
    rclpy.init(args=args_in)
    node = OutputSaver(args.node, args.out, args.every)
    spin_until_shutdown(node)
    return 0


if __name__ == '__main__':
    sys.exit(main())
