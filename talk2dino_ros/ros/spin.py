"""The main loop of the package's small rclpy tools: spin one node until it is told to stop, then clean up."""
from __future__ import annotations

from typing import Callable, Optional

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def spin_until_shutdown(node: Node, done: Optional[Callable[[], bool]] = None, poll_s: float = 0.1) -> None:
    """Spin ``node`` until Ctrl-C, an external shutdown (``ros2 lifecycle``/launch), or ``done()`` is true;
    then destroy the node and shut its context down (if nobody else did).

    Without ``done`` this is ``rclpy.spin``; with it, the node is spun in ``poll_s`` slices so that
    ``done`` is checked at least that often. Ctrl-C is an ordinary way to stop a tool, so it is not
    re-raised.
    """
    context = node.context
    try:
        if done is None:
            rclpy.spin(node)
        else:
            while rclpy.ok(context=context) and not done():
                rclpy.spin_once(node, timeout_sec=poll_s)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)
