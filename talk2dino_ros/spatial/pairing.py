"""Pairing colour frames with depth frames by header stamp, in a small bounded buffer.

Depth messages are kept, newest last, in a buffer of ``capacity``; a colour frame takes the depth frame
with the nearest stamp within ``tolerance`` and every older depth frame is dropped with it (a camera's
stamps only grow). Nothing ever waits: a colour frame without a partner is simply unpaired. Counters:
``colour_unpaired`` (colour frames that found none) and ``depth_unpaired`` (depth frames dropped without
being used: pushed out of the full buffer or passed over by a newer pairing).
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Any, Deque, Optional, Tuple

from talk2dino_ros.contract.parameters import DEFAULT_DEPTH_SYNC_TOLERANCE_S as DEFAULT_TOLERANCE_S

#: default tolerance: one frame at 30 Hz (the node parameter's default), in nanoseconds
DEFAULT_TOLERANCE_NS = int(round(DEFAULT_TOLERANCE_S * 1e9))
DEFAULT_CAPACITY = 8


class StampPairer:
    """Thread-safe: depth callbacks :meth:`add` while the colour path calls :meth:`take`."""

    def __init__(self, tolerance_ns: int = DEFAULT_TOLERANCE_NS, capacity: int = DEFAULT_CAPACITY) -> None:
        if tolerance_ns < 0:
            raise ValueError(f'tolerance must be >= 0, got {tolerance_ns} ns')
        if capacity < 1:
            raise ValueError(f'capacity must be >= 1, got {capacity}')
        self.tolerance_ns = int(tolerance_ns)
        self._items: Deque[Tuple[int, Any]] = deque()
        self._capacity = int(capacity)
        self._lock = threading.Lock()
        self.colour_paired = 0
        self.colour_unpaired = 0
        self.depth_received = 0
        self.depth_unpaired = 0

    def add(self, stamp_ns: int, item: Any) -> None:
        """Keep a depth frame; the oldest one is dropped (and counted) when the buffer is full."""
        with self._lock:
            self.depth_received += 1
            if self._items and stamp_ns < self._items[-1][0]:
                # out of order (a replayed bag jumped back): start over rather than pair across the jump
                self.depth_unpaired += len(self._items)
                self._items.clear()
            self._items.append((int(stamp_ns), item))
            while len(self._items) > self._capacity:
                self._items.popleft()
                self.depth_unpaired += 1

    def take(self, stamp_ns: int) -> Optional[Any]:
        """The depth frame nearest ``stamp_ns`` within the tolerance (removed with every older one), or None."""
        with self._lock:
            best = None
            best_gap = self.tolerance_ns + 1
            for i, (stamp, _) in enumerate(self._items):
                gap = abs(stamp - stamp_ns)
                if gap < best_gap:
                    best, best_gap = i, gap
            if best is None:
                self.colour_unpaired += 1
                return None
            for _ in range(best):
                self._items.popleft()
                self.depth_unpaired += 1
            self.colour_paired += 1
            return self._items.popleft()[1]

    def peek_latest(self) -> Optional[Tuple[int, Any]]:
        """The newest buffered depth frame (stamp, item), without taking it."""
        with self._lock:
            return self._items[-1] if self._items else None

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def counters(self) -> dict:
        with self._lock:
            return {'depth_received': self.depth_received, 'depth_paired': self.colour_paired,
                    'colour_unpaired': self.colour_unpaired, 'depth_unpaired': self.depth_unpaired}
