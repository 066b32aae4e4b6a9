"""Which vocabulary sample is newer: the order rule of the node's vocabulary topic (no rclpy here).

The topic has two subscriptions (see :mod:`talk2dino_ros.ros.qos`), and they do not keep one order between
them: the transient-local one holds the newest sample only, the volatile one every sample in turn, so after
a burst ``a, b`` the transient-local copy of ``b`` can be taken before the volatile copy of ``a``, and ``a``
would win. The rule:

* Every reliable publisher, latched or not, also matches the volatile subscription, which delivers its live
  samples in order. So a sample is taken when its publisher's sequence number is higher than any taken from
  that publisher (this also drops the second copy of a sample and a latched sample replayed after a
  re-match).
* A sample that arrives through the transient-local subscription first is *held* for :data:`HOLD_S`. If
  its volatile copy (or a newer sample of that publisher) comes in the meantime, that copy is the one in
  order; if not, it is history published before the node matched its publisher and is taken, unless any
  other change arrived after it (the service, the parameter, another publisher): history never undoes a
  change that came later.
* Where the middleware reports no publisher id or sequence number, a sample is identified by its text and
  a 1 s time bucket, as before (no order between publishers can be told then).

The service and the parameter are ordered by the executor (they arrive in the order they were sent); they
count as changes here (:meth:`VocabularyOrder.local_change`) so that held history gives way to them.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any, Deque, Dict, Hashable, Optional

#: seconds a sample seen only by the transient-local subscription waits for its volatile copy
HOLD_S = 0.25
#: publishers whose last sequence number is remembered (oldest forgotten first)
MAX_WRITERS = 256
#: recent text keys remembered where the middleware reports no publisher id
_TEXT_KEYS = 64


@dataclass(frozen=True)
class SampleId:
    """Who published a sample and its place in that publisher's order (None when not reported)."""

    writer: Optional[bytes]
    sequence: Optional[int]
    text_key: Hashable

    @property
    def ordered(self) -> bool:
        return self.writer is not None and self.sequence is not None and self.sequence > 0


def sample_id(data: str, info: Optional[Dict[str, Any]], now: float) -> SampleId:
    """The :class:`SampleId` of one sample from rclpy's message info (``now``: time.monotonic())."""
    info = info or {}
    gid = info.get('publisher_gid')
    if isinstance(gid, dict):
        gid = gid.get('data')
    writer = bytes(gid) if gid else None
    if writer is not None and not any(writer):
        writer = None  # an all-zero id: the middleware does not report it
    sequence = info.get('publication_sequence_number')
    sequence = int(sequence) if isinstance(sequence, int) and sequence > 0 else None
    return SampleId(writer, sequence, ('text', data, int(now)))


@dataclass
class Held:
    """A transient-local sample waiting for :data:`HOLD_S` (see the module docstring)."""

    sample: SampleId
    changes_at_arrival: int
    payload: Any = None


class VocabularyOrder:
    """The order rule; all methods are called on the executor thread."""

    def __init__(self, max_writers: int = MAX_WRITERS) -> None:
        self._last: 'collections.OrderedDict[bytes, int]' = collections.OrderedDict()
        self._max_writers = max_writers
        self._text_keys: Deque[Hashable] = collections.deque(maxlen=_TEXT_KEYS)
        self.changes = 0  # vocabulary inputs taken so far, from any path

    def _newer(self, sample: SampleId) -> bool:
        if sample.ordered:
            return sample.sequence > self._last.get(sample.writer, 0)  # type: ignore[operator,arg-type]
        return sample.text_key not in self._text_keys

    def _take(self, sample: SampleId) -> None:
        if sample.ordered:
            self._last[sample.writer] = sample.sequence  # type: ignore[index,assignment]
            self._last.move_to_end(sample.writer)  # type: ignore[arg-type]
            while len(self._last) > self._max_writers:
                self._last.popitem(last=False)
        else:
            self._text_keys.append(sample.text_key)
        self.changes += 1

    def from_volatile(self, sample: SampleId) -> bool:
        """A sample of the volatile subscription: True when it is to be applied now."""
        if not self._newer(sample):
            return False
        self._take(sample)
        return True

    def from_latched(self, sample: SampleId, payload: Any = None) -> Optional[Held]:
        """A sample of the transient-local subscription: a :class:`Held` to :meth:`release` after
        :data:`HOLD_S`, or None when it is a copy or older than what was taken."""
        if not self._newer(sample):
            return None
        return Held(sample, self.changes, payload)

    def release(self, held: Held) -> bool:
        """The hold is over: True when the held sample is to be applied now."""
        if not self._newer(held.sample) or self.changes != held.changes_at_arrival:
            return False
        self._take(held.sample)
        return True

    def local_change(self) -> None:
        """A vocabulary from the service or the parameter was taken (newer than anything held)."""
        self.changes += 1
