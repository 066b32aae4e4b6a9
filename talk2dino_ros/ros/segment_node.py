"""Entry point of the segmentation node: ``ros2 run talk2dino_ros segment_node`` or ``python -m``.

``segment_lifecycle_node`` (:func:`main_lifecycle`) runs the lifecycle variant of the same node.

Pip-only equivalent of the launch file:
``segment_node --ros-args --params-file config/params.yaml -r image:=/camera/image_raw``
"""
from __future__ import annotations

import os
import sys
import textwrap
import threading
from typing import Any, Callable, List, Optional


def usage(prog: str, lifecycle: bool = False) -> str:
    """The ``--help`` text: what the node does, how to start it, its topics and every parameter."""
    from talk2dino_ros.contract.docs import outputs_help
    from talk2dino_ros.contract.parameters import PARAMETERS

    kind = ('lifecycle variant (configure loads the model, activate segments) of the ' if lifecycle else '')
    lines = [
        f'usage: {prog} [--help] [--ros-args -p NAME:=VALUE ... -r image:=TOPIC -r t2d/vocab:=TOPIC ...]',
        '',
        f'The {kind}talk2dino_ros open-vocabulary segmentation node: camera images in, per-pixel class labels',
        'out, for class names that can change at any time.',
        '',
        'examples:',
        f'  {prog} --ros-args --params-file config/params.yaml -r image:=/camera/image_raw',
        f'  {prog} --ros-args -p vocabulary:="[person, car, tree]" -r image:=/camera/image_raw',
        '',
        'inputs:  image (sensor_msgs/Image; image/compressed with compressed_input:=true), t2d/vocab (std_msgs/',
        '         String, latched or not: /t2d/vocab, or /<ns>/t2d/vocab in a namespace), ~/set_vocabulary',
        *outputs_help().splitlines(),
        '',
        'QoS at start: qos_overrides.<topic>.publisher.<history|depth|reliability|durability> for every output,',
        '         qos_overrides.<topic>.subscription.<...> for the image and vocab inputs (the latched vocab',
        '         subscription: subscription_latched); <topic> is the resolved name, e.g. /talk2dino/labels.',
        '',
        'parameters (ros2 param describe <node> <name> shows ranges; a bad start value is one WARN line and',
        'the default):',
    ]
    for spec in PARAMETERS:
        default = '(unset)' if spec.default is None else repr(spec.default)
        lines.append(f'  {spec.name} = {default}{"  [read-only]" if spec.read_only else ""}')
        lines.extend(textwrap.wrap(spec.description, 100, initial_indent=' ' * 6, subsequent_indent=' ' * 6))
    return '\n'.join(lines)


def _asks_for_help(argv: List[str]) -> bool:
    """--help / -h anywhere: among the node's own arguments or after --ros-args (``ros2 run ... --ros-args
    --help``, which rcl itself rejects). No ROS argument takes a bare ``-h``/``--help`` as its value."""
    return any(a in ('-h', '--help') for a in argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the node until Ctrl-C / SIGTERM; returns the process exit code."""
    def make():
        from talk2dino_ros.ros.segmentation_node import SegmentationNode
        return SegmentationNode()
    return run_node(make, 'segment_node', argv)


def main_lifecycle(argv: Optional[List[str]] = None) -> int:
    """Run the lifecycle variant (``segment_lifecycle_node``): it waits in *unconfigured* for a lifecycle
    manager (or ``ros2 lifecycle set /talk2dino configure`` then ``activate``); returns the exit code."""
    def make():
        from talk2dino_ros.ros.lifecycle_node import SegmentationLifecycleNode
        return SegmentationLifecycleNode()
    return run_node(make, 'segment_lifecycle_node', argv, lifecycle=True)


def run_node(make: Callable[[], Any], prog: str, argv: Optional[List[str]], lifecycle: bool = False) -> int:
    """Start ROS, build the node with ``make()``, spin it until Ctrl-C / SIGTERM / an external shutdown,
    clean up; returns the exit code. ``--help`` prints :func:`usage` and starts nothing.

    A stop can come in the middle of a long frame (or a model load, or a text encoding): the node's
    threads get a short grace period to finish, and if one is still inside the engine the process
    leaves without the interpreter's teardown, which would otherwise kill that thread inside native
    code and abort ("terminate called without an active exception").
    """
    args = sys.argv if argv is None else [prog] + list(argv)
    if _asks_for_help(args[1:]):
        try:
            print(usage(prog, lifecycle))
        except BrokenPipeError:  # `segment_node --help | head`
            sys.stdout = open(os.devnull, 'w')
        return 0

    import rclpy
    from rclpy.executors import ExternalShutdownException

    from talk2dino_ros.errors import Talk2DinoError

    code = 0
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
        code = 2
    finally:
        try:
            if node is not None:
                node.destroy_node()
        except KeyboardInterrupt:  # a second Ctrl-C while cleaning up: stop waiting
            pass
        rclpy.try_shutdown()
    busy = [t.name for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive()]
    if busy:
        print(f'[{prog}] stopped while busy ({", ".join(busy)}); exiting without waiting for it',
              file=sys.stderr)
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """Flush what was written and end the process without the interpreter's teardown."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    try:  # C-level buffers (the ROS logger writes through stdio)
        import ctypes
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass
    os._exit(code)


if __name__ == '__main__':
    sys.exit(main())
