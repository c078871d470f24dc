"""Outbox: encoded batches waiting for the sender, in memory and then in the disk spool.

Routing: a batch goes to memory while it fits in QUEUE_CAPACITY samples and the spool is
empty; otherwise to the spool (without one it is dropped and counted as ``queue_full``). Once
anything is spooled, newer batches queue behind it on disk. So memory batches are always older
than the spooled ones, and the sender takes memory first, then the spool oldest-first.

Flush markers travel in line with the batches; a marker is done when everything before it is
sent (or given up) and the spool is empty.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .spool import Batch, Spool

log = logging.getLogger(__name__)


@dataclass
class FlushMarker:
    done: threading.Event = field(default_factory=threading.Event)


class Outbox:
    def __init__(
        self,
        capacity: int,
        spool: Spool | None,
        drop: Callable[[str, int], None],
        log_once: Callable[..., None],
    ) -> None:
        self.capacity = capacity
        self.spool = spool
        self._drop = drop
        self._log_once = log_once
        self.cond = threading.Condition()
        self._items: collections.deque[Batch | FlushMarker] = collections.deque()
        self._samples = 0
        self._inflight: Batch | None = None
        self._waiting: list[FlushMarker] = []

    def put(self, item: Batch | FlushMarker) -> None:
        with self.cond:
            if isinstance(item, Batch):
                spool = self.spool
                over = self._samples + item.samples > self.capacity
                if spool is not None and (over or len(spool)):
                    spool.append(item)
                elif over:
                    self._drop("queue_full", item.samples)
                    self._log_once(
                        "queue_full",
                        "in-memory queue full (QUEUE_CAPACITY=%d): dropping batches; "
                        "set SPOOL_DIR to buffer on disk",
                        self.capacity,
                    )
                else:
                    self._items.append(item)
                    self._samples += item.samples
            else:
                self._items.append(item)
            self.cond.notify_all()

    @property
    def pending(self) -> int:
        """Samples in memory, the one in flight included."""
        with self.cond:
            inflight = self._inflight.samples if self._inflight is not None else 0
            return self._samples + inflight

    def take(
        self, finished: Callable[[], bool], given_up: Callable[[], bool]
    ) -> Batch | FlushMarker | None:
        """Next thing to send, in order; None when ``given_up()``, or when nothing is left
        and ``finished()`` (the batcher has stopped)."""
        with self.cond:
            while True:
                if given_up():
                    return None
                if self._items:
                    item = self._items.popleft()
                    if isinstance(item, Batch):
                        self._samples -= item.samples
                        self._inflight = item
                    return item
                spooled = self.spool.peek() if self.spool is not None else None
                if spooled is not None:
                    self._inflight = spooled
                    return spooled
                for marker in self._waiting:
                    marker.done.set()
                self._waiting.clear()
                if finished():
                    return None
                self.cond.wait(5.0)  # state changes notify; this is a safety net

    def marker_reached(self, marker: FlushMarker) -> None:
        """The sender got to ``marker``: done now, or once the spool is drained."""
        with self.cond:
            if self.spool is not None and len(self.spool):
                self._waiting.append(marker)
            else:
                marker.done.set()

    def delivered(self, batch: Batch) -> None:
        """``batch`` is sent or given up for good."""
        with self.cond:
            self._inflight = None
        if self.spool is not None and batch.seq is not None:
            self.spool.remove(batch)

    def wake(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def close(self) -> list[Batch]:
        """Release every waiter; returns the memory batches not sent (in flight first)."""
        with self.cond:
            leftovers: list[Batch] = []
            if self._inflight is not None:
                leftovers.append(self._inflight)
                self._inflight = None
            for item in self._items:
                if isinstance(item, Batch):
                    leftovers.append(item)
                else:
                    item.done.set()
            self._items.clear()
            self._samples = 0
            for marker in self._waiting:
                marker.done.set()
            self._waiting.clear()
        # A spooled batch in flight is still on disk.
        return [b for b in leftovers if b.seq is None]
