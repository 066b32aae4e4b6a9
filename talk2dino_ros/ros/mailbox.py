"""A one-slot mailbox: the newest item replaces an untaken one, which counts as dropped.

The camera callback puts frames in, the worker takes the latest; a slow model therefore never builds a
queue (no lag), and the number of frames it skipped is known exactly.
"""
from __future__ import annotations

import threading
from typing import Any, Optional


class LatestMailbox:
    """Thread-safe single-slot mailbox with a drop counter and a wake-up for other events."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._has_item = False
        self._poked = False
        self._closed = False
        self.dropped = 0
        self.put_count = 0

    def put(self, item: Any) -> bool:
        """Store ``item``; returns True when it replaced one nobody took (that one is dropped)."""
        with self._cond:
            replaced = self._has_item
            if replaced:
                self.dropped += 1
            self._item, self._has_item = item, True
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

    @property
    def closed(self) -> bool:
        return self._closed

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until an item is present, a poke or close happens, or ``timeout``; True unless timed out."""
        with self._cond:
            ok = self._cond.wait_for(lambda: self._has_item or self._poked or self._closed, timeout)
            self._poked = False
            return ok

    def take(self) -> Any:
        """The stored item (None when empty); empties the slot."""
        with self._cond:
            item, self._item, self._has_item = self._item, None, False
            return item

    def has_item(self) -> bool:
        with self._cond:
            return self._has_item
