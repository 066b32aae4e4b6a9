"""Entry point of the segmentation node: ``ros2 run talk2dino_ros segment_node`` or ``python -m``.

Pip-only equivalent of the launch file:
``segment_node --ros-args --params-file config/params.yaml -r image:=/camera/image_raw``
"""
from __future__ import annotations

import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    """Run the node until Ctrl-C / SIGTERM; returns the process exit code."""
    import rclpy
    from rclpy.executors import ExternalShutdownException

    from talk2dino_ros.errors import Talk2DinoError
    from talk2dino_ros.ros.segmentation_node import SegmentationNode

    args = sys.argv if argv is None else ['segment_node'] + list(argv)
    try:
        rclpy.init(args=args)
    except Exception as exc:  # malformed --ros-args: one line, no traceback
        print(f'error: cannot start ROS: {exc}', file=sys.stderr)
        return 2
    node = None
    try:
        node = SegmentationNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Talk2DinoError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
