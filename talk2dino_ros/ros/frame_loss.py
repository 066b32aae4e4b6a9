"""Frames lost before the node saw them, estimated from the gaps in the camera's header stamps.

A camera publishes at a steady period; when a stamp follows the previous one after about k periods, k - 1
frames went missing on the way (best-effort delivery of large frames split into UDP fragments, a reader
queue too short for a busy executor). The period is the 20th percentile of the recent stamp steps, so it
stays right with up to ~75 % of the frames lost; a step counts as a loss from 1.75 periods on (less is
jitter). Steps of zero or backwards (a driver that stamps badly, a replayed bag) and pauses longer than
:data:`MAX_GAP_PERIODS` periods are not counted as losses.

Pure logic, no rclpy: :class:`LossEstimator` per camera, :func:`loss_causes` / :func:`loss_hint` for the
words (also used by the no-input help when *every* frame is lost).
"""
from __future__ import annotations

import collections
import threading
import time
from typing import Callable, Deque, List, Optional, Tuple

#: a step longer than this many periods is a pause of the camera, not lost frames
MAX_GAP_PERIODS = 20
#: below this share of lost frames nothing is said (jitter, a rare drop)
REPORT_FRACTION = 0.1
#: steps needed before an estimate is made
MIN_STEPS = 8


class LossEstimator:
    """Stamps of the frames received in the last ``window_s`` seconds (of the node's clock)."""

    def __init__(self, window_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s, self._clock = window_s, clock
        self._stamps: Deque[Tuple[float, float]] = collections.deque()   # (received at, header stamp)
        self._lock = threading.Lock()

    def add(self, stamp: float) -> None:
        """One frame arrived with header stamp ``stamp`` (seconds)."""
        now = self._clock()
        with self._lock:
            self._stamps.append((now, stamp))
            while self._stamps and now - self._stamps[0][0] > self.window_s:
                self._stamps.popleft()

    def estimate(self) -> Tuple[int, int]:
        """(frames received, frames lost) over the window; (n, 0) while there is too little to tell."""
        now = self._clock()
        with self._lock:
            stamps = [s for t, s in self._stamps if now - t <= self.window_s]
        steps = [b - a for a, b in zip(stamps, stamps[1:]) if b > a]
        if len(steps) < MIN_STEPS:
            return len(stamps), 0
        period = sorted(steps)[int(0.2 * (len(steps) - 1))]
        lost = 0
        for step in steps:
            periods = int(step / period + 0.25)  # 1.75 periods and more: a frame missing, not jitter
            if periods <= MAX_GAP_PERIODS:
                lost += max(0, periods - 1)
        return len(stamps), lost

    def lost_fraction(self) -> float:
        """Share of the camera's frames that never arrived (0 when nothing can be told)."""
        received, lost = self.estimate()
        return lost / (received + lost) if received + lost else 0.0


def loss_causes(reliability: str, depth: int) -> List[str]:
    """The likely causes of frames lost before the node, for an input of this reliability and depth."""
    causes = []
    if reliability == 'best_effort':
        causes.append('best-effort delivery loses every large frame one UDP fragment of which is lost: set '
                      'image_reliability: reliable (the camera must publish reliable), use compressed_input, or '
                      'a publisher with a large enough shared-memory segment on this host')
    if depth < 3:
        causes.append(f'image_depth {depth} drops frames while the node is busy: raise it')
    return causes


def loss_hint(fraction: float, reliability: str, depth: int) -> Optional[str]:
    """What to tell the user about ``fraction`` of the frames lost on the way; None when it is small."""
    if fraction < REPORT_FRACTION:
        return None
    causes = loss_causes(reliability, depth) or [
        'the publisher or the network drops them (check the camera rate and the network load)']
    return (f'about {fraction:.0%} of the camera frames never arrive (gaps in their header stamps); '
            + '; '.join(causes))
