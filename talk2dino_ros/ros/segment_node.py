"""Entry point of the segmentation node: ``ros2 run talk2dino_ros segment_node`` or ``python -m``.

``segment_lifecycle_node`` (:func:`main_lifecycle`) runs the lifecycle variant of the same node.

Pip-only equivalent of the launch file:
``segment_node --ros-args --params-file config/params.yaml -r image:=/camera/image_raw``
"""
from __future__ import annotations

import sys
from typing import Any, Callable, List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    """Run the node until Ctrl-C / SIGTERM; returns the process exit code."""
    def make():
        from talk2dino_ros.ros.segmentation_node import SegmentationNode
        return SegmentationNode()
    return _run(make, 'segment_node', argv)


def main_lifecycle(argv: Optional[List[str]] = None) -> int:
    """Run the lifecycle variant (``segment_lifecycle_node``): it waits in *unconfigured* for a lifecycle
    manager (or ``ros2 lifecycle set /talk2dino configure`` then ``activate``); returns the exit code."""
    def make():
        from talk2dino_ros.ros.lifecycle_node import SegmentationLifecycleNode
        return SegmentationLifecycleNode()
    return _run(make, 'segment_lifecycle_node', argv)


def _run(make: Callable[[], Any], prog: str, argv: Optional[List[str]]) -> int:
    import rclpy
    from rclpy.executors import ExternalShutdownException

    from talk2dino_ros.errors import Talk2DinoError

    args = sys.argv if argv is None else [prog] + list(argv)
    try:
        rclpy.init(args=args)
    except Exception as exc:  # malformed --ros-args: one line, no traceback
        print(f'error: cannot start ROS: {exc}', file=sys.stderr)
        return 2
    node = None
    try:
        node = make()
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
