"""A bounded hand-off between two stage threads that wakes the consumer only when it must.

Waking a thread costs more CPU than everything else a 10 Hz tick does (thread wake-ups and
GIL hand-overs were most of a tick's samples under py-spy), so a tick's frame is queued
quietly: the consumer drains the queue at its own deadline (the push interval), or earlier
when the queued samples reach ``wake_samples`` (a full batch) or the queue is half full.
Flush markers and stop wake it at once.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any


class Handoff:
    def __init__(
        self, capacity: int, wake_samples: int, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.wake_samples = wake_samples  # the consumer lowers it by what it already holds
        self._now = now
        self._items: collections.deque[Any] = collections.deque()
        self._samples = 0
        self._urgent = False
        #: monotonic time of the oldest item queued since the last take (None: empty)
        self.first_at: float | None = None
        # Entered through the lock itself (C), not the Condition's Python __enter__.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)

    @property
    def samples(self) -> int:
        """Samples queued, not yet taken."""
        return self._samples

    def put(self, item: Any, samples: int = 0, *, wake: bool = True, timeout: float = 0.0) -> bool:
        """Queue ``item``; False when the queue stayed full for ``timeout`` seconds."""
        with self._lock:
            if len(self._items) >= self.capacity and not self._cond.wait_for(
                lambda: len(self._items) < self.capacity, timeout
            ):
                return False
            if not self._items:
                self.first_at = self._now()
            self._items.append(item)
            self._samples += samples
            # Also wake it well before the queue is full, so a quiet put never has to wait.
            if wake or self._samples >= self.wake_samples or len(self._items) * 2 >= self.capacity:
                self._urgent = True
                self._cond.notify_all()
        return True

    def take(self, timeout: float | None) -> tuple[list[Any], float | None]:
        """Everything queued and when the oldest of it was queued, after waiting up to
        ``timeout`` seconds unless something urgent (a woken put, a full batch) is there."""
        with self._lock:
            if not self._urgent:
                self._cond.wait(timeout)
            items = list(self._items)
            first_at, self.first_at = self.first_at, None
            self._items.clear()
            self._samples = 0
            self._urgent = False
            self._cond.notify_all()  # putters blocked on a full queue
            return items, first_at
