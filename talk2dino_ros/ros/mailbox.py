"""Latest-item mailbox: one slot per source; the newest item replaces an untaken one, which counts as dropped.

The camera callbacks put frames in (one slot per camera), the worker takes the latest of each; a slow
model therefore never builds a queue (no lag), and the number of frames it skipped is known exactly,
per camera.
"""
from __future__ import annotations

import threading
from typing import Any, Dict, Hashable, Optional


class LatestMailbox:
    """Thread-safe single-slot-per-key mailbox with drop counters and a wake-up for other events."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._items: Dict[Hashable, Any] = {}
        self._poked = False
        self._closed = False
        self.dropped = 0                          # over every key
        self.dropped_by: Dict[Hashable, int] = {}  # per key
        self.put_count = 0

    def put(self, item: Any, key: Hashable = None) -> bool:
        """Store ``item`` in the slot ``key``; True when it replaced one nobody took (that one is dropped)."""
        with self._cond:
            replaced = key in self._items
            if replaced:
                self.dropped += 1
                self.dropped_by[key] = self.dropped_by.get(key, 0) + 1
            self._items[key] = item
            self.put_count += 1
            self._cond.notify_all()
            return replaced

    def poke(self) -> None:
        """Wake the taker without an item (e.g. the vocabulary changed)."""
        with self._cond:
            self._poked = True
            self._cond.notify_all()

    def close(self) -> None:
        """Wake every waiter for good; later waits return at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        """Undo :meth:`close` and empty the slots (a lifecycle node starting its worker again)."""
        with self._cond:
            self._closed = False
            self._items.clear()

    @property
    def closed(self) -> bool:
        return self._closed

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until an item is present, a poke or close happens, or ``timeout``; True unless timed out."""
        with self._cond:
            ok = self._cond.wait_for(lambda: bool(self._items) or self._poked or self._closed, timeout)
            self._poked = False
            return ok

    def take(self, key: Hashable = None) -> Any:
        """The item stored under ``key`` (None when empty); empties that slot."""
        with self._cond:
            return self._items.pop(key, None)

    def take_all(self) -> Dict[Hashable, Any]:
        """Every stored item by key (in the order the slots were filled); empties all slots."""
        with self._cond:
            items, self._items = self._items, {}
            return items

    def has_item(self) -> bool:
        with self._cond:
            return bool(self._items)
