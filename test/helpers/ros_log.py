"""Record what rclpy loggers emit, for log assertions that never depend on capturing fd 2.

rcutils writes console lines to fd 2 from whichever thread logs (often the executor's); ``capfd`` now and
then loses the start of a line written while the capture is being switched, so a log assertion read from
it can fail on a correct node. This record sees every message rclpy passed on to rcutils.
"""
from __future__ import annotations

import inspect
import os
import threading
from typing import List


class RosLog:
    """Every logged message as ``[SEVERITY] [logger]: message``, in order."""

    def __init__(self) -> None:
        self._lines: List[str] = []
        self._lock = threading.Lock()

    def add(self, severity: str, name: str, message: str) -> None:
        with self._lock:
            self._lines.append(f'[{severity}] [{name}]: {message}')

    @property
    def lines(self) -> List[str]:
        with self._lock:
            return list(self._lines)

    @property
    def text(self) -> str:
        return ''.join(line + '\n' for line in self.lines)

    def wait_for(self, *parts: str, timeout: float = 10.0) -> str:
        """The text once it contains every one of ``parts`` (a node logs from its own threads)."""
        from helpers.ros import wait_for
        return wait_for(lambda: all(p in self.text for p in parts) and self.text, timeout=timeout,
                        what=f'log lines with {parts}')


def record_ros_log(monkeypatch) -> RosLog:
    """Wrap ``RcutilsLogger.log`` for the rest of the test; returns the record it fills."""
    from rclpy.impl import rcutils_logger
    from rclpy.impl.logging_severity import LoggingSeverity

    record = RosLog()
    real_log = rcutils_logger.RcutilsLogger.log

    def log(self, message, severity, name=None, **kwargs):
        logged = real_log(self, message, severity, name, **kwargs)
        if logged:
            record.add(LoggingSeverity(severity).name, name or self.name, message)
        return logged

    # rclpy keys its once/throttle filters by the first calling frame outside rclpy: this wrapper must
    # count as rclpy, or every message would share one caller (and one severity). Finding a caller once
    # first makes rclpy fill its own list, so the copy patched here (and the one restored) is complete.
    rcutils_logger._find_caller(inspect.currentframe())
    monkeypatch.setattr(rcutils_logger, '_internal_callers',
                        rcutils_logger._internal_callers + [os.path.realpath(__file__)])
    monkeypatch.setattr(rcutils_logger.RcutilsLogger, 'log', log)
    return record
