"""Rolling rates and latencies for the node's diagnostics."""
from __future__ import annotations

import collections
import threading
import time
from typing import Deque, Dict, Optional, Tuple


class RollingWindow:
    """Timestamps (and optional values) of events within the last ``window`` seconds."""

    def __init__(self, window: float = 5.0, clock=time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._events: Deque[Tuple[float, float]] = collections.deque()
        self._lock = threading.Lock()
        self.total = 0

    def add(self, value: float = 0.0) -> None:
        with self._lock:
            now = self._clock()
            self._events.append((now, value))
            self.total += 1
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._events and now - self._events[0][0] > self.window:
            self._events.popleft()

    def rate(self) -> float:
        """Events per second over the window (0 with fewer than two events)."""
        with self._lock:
            self._trim(self._clock())
            if len(self._events) < 2:
                return 0.0
            span = self._events[-1][0] - self._events[0][0]
            return (len(self._events) - 1) / span if span > 0 else 0.0

    def values(self) -> list:
        with self._lock:
            self._trim(self._clock())
            return [v for _, v in self._events]


def percentile(values, q: float) -> Optional[float]:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(q / 100.0 * (len(ordered) - 1)))))
    return ordered[index]


class FrameStats:
    """Counters of the node: frames in, processed, dropped, rejected, and latency samples (ms)."""

    def __init__(self, window: float = 5.0) -> None:
        self.received = RollingWindow(window)
        self.processed = RollingWindow(window)
        self.latency_ms = RollingWindow(window)    # frame received -> outputs published
        self.inference_ms = RollingWindow(window)  # the engine call alone
        self.bad_frames = 0     # rejected inputs (any reason); never engine failures
        self.rejected_by_reason: Dict[str, int] = {}
        self.failed_frames = 0
        self.skipped_not_ready = 0  # frames that came before a model and a vocabulary
        self.skipped_no_subscriber = 0  # frames not segmented because nothing read any per-frame output
        self.skipped_paused = 0     # frames not segmented while paused (~/enable false)
        self.last_error = ''
        self.last_rejection = ''

    def reject(self, reason: str, message: str) -> None:
        """Count one rejected input frame under ``reason`` (e.g. 'too_large') and remember why."""
        self.bad_frames += 1
        self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1
        self.last_rejection = self.last_error = message

    def summary(self, dropped: int) -> Dict[str, str]:
        """Key/value pairs for a DiagnosticStatus."""
        lat = self.latency_ms.values()
        inf = self.inference_ms.values()

        def fmt(v):
            return 'n/a' if v is None else f'{v:.1f}'
        return {
            'input_rate_hz': f'{self.received.rate():.2f}',
            'processed_rate_hz': f'{self.processed.rate():.2f}',
            'frames_received': str(self.received.total),
            'frames_processed': str(self.processed.total),
            'frames_dropped': str(dropped),
            'frames_rejected': str(self.bad_frames),
            'frames_failed': str(self.failed_frames),
            'frames_not_ready': str(self.skipped_not_ready),
            'frames_skipped_no_subscriber': str(self.skipped_no_subscriber),
            'frames_skipped_paused': str(self.skipped_paused),
            'latency_ms_p50': fmt(percentile(lat, 50)),
            'latency_ms_p95': fmt(percentile(lat, 95)),
            'inference_ms_p50': fmt(percentile(inf, 50)),
            **{f'frames_rejected_{reason}': str(count)
               for reason, count in sorted(dict(self.rejected_by_reason).items())},
            'last_rejection': self.last_rejection,
        }
