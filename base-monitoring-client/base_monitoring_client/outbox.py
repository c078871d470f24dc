"""Outbox: encoded batches waiting for the sender, in memory and then in the disk spool.

Routing: a batch goes to memory while it fits in QUEUE_CAPACITY samples and the spool is
empty; otherwise to the spool (without one it is dropped and counted as ``queue_full``). Once
anything is spooled, newer batches queue behind it on disk. So memory batches are always older
than the spooled ones, and the sender takes memory first, then the spool oldest-first. Should
the disk refuse a batch, it waits in a second memory queue behind the spool (``_behind``)
while there is room, and every newer batch joins it there: order holds either way.

Once a send has failed, what is in memory (the batch in flight included) moves to the spool
SPOOL_AFTER_S later, and until a send succeeds again new batches go straight to disk: a crash
during an outage loses seconds of data, not a queue's worth.

Flush markers travel in line with the batches; a marker is done when everything before it is
sent (or given up) and the spool is empty.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .clock import SYSTEM_CLOCK, Clock
from .selfmetrics import Problems
from .spool import Batch, Spool, Stored

log = logging.getLogger(__name__)


@dataclass
class FlushMarker:
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Leftovers:
    """What ``Outbox.close`` did with the batches not sent."""

    spooled: int  # samples
    dropped: int  # samples (counted: spool_full, spool_write_error or, without a spool, shutdown)


class Outbox:
    def __init__(
        self,
        capacity: int,
        spool: Spool | None,
        problems: Problems,
        *,
        spool_after_s: float = 2.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.capacity = capacity
        self.spool = spool
        self.spool_after_s = spool_after_s
        self._drop = problems.drop
        self._log_once = problems.log_once
        self._clock = clock
        self.cond = threading.Condition()
        self._items: collections.deque[Batch | FlushMarker] = collections.deque()
        self._behind: collections.deque[Batch] = collections.deque()
        self._samples = 0  # in _items and _behind
        self._inflight: Batch | None = None
        self._waiting: list[FlushMarker] = []
        self._failing = False  # a send failed and none succeeded since
        self._spilling = False  # ...and memory was moved to the spool: new batches go there
        self._spill_timer: threading.Event | None = None

    def put(self, item: Batch | FlushMarker) -> None:
        with self.cond:
            if type(item) is not Batch:
                self._items.append(item)
            elif self._to_memory(item):
                self._items.append(item)
                self._samples += item.samples
            self.cond.notify_all()

    def _to_memory(self, batch: Batch) -> bool:
        """Whether ``batch`` goes to memory; if not, it was put elsewhere (spool, behind it)
        or dropped and counted."""
        spool = self.spool
        over = self._samples + batch.samples > self.capacity
        if spool is None:
            if not over:
                return True
            self._drop("queue_full", batch.samples)
            self._log_once(
                "queue_full",
                "in-memory queue full (QUEUE_CAPACITY=%d): dropping batches; "
                "set SPOOL_DIR to buffer on disk",
                self.capacity,
            )
            return False
        if not (over or self._spilling or self._behind or len(spool)):
            return True
        if self._behind or spool.append(batch) is Stored.FAILED:
            self._keep_behind(batch, over)
        return False

    def _keep_behind(self, batch: Batch, over: bool) -> None:
        """The disk refused ``batch`` (or holds up others that it refused): memory behind
        the spool while QUEUE_CAPACITY lasts."""
        if over:
            self._drop("spool_write_error", batch.samples)
            self._log_once(
                "spool_write_error",
                "the spool cannot be written and memory is full (QUEUE_CAPACITY=%d): dropping "
                "batches; make SPOOL_DIR writable (see the spool's error above)",
                self.capacity,
            )
            return
        self._behind.append(batch)
        self._samples += batch.samples

    @property
    def pending(self) -> int:
        """Samples in memory, the one in flight included."""
        with self.cond:
            inflight = self._inflight
            memory = inflight.samples if inflight is not None and inflight.seq is None else 0
            return self._samples + memory

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
                if self._behind:
                    batch = self._behind.popleft()
                    self._samples -= batch.samples
                    self._inflight = batch
                    return batch
                for marker in self._waiting:
                    marker.done.set()
                self._waiting.clear()
                if finished():
                    return None
                self.cond.wait(5.0)  # state changes notify; this is a safety net

    def marker_reached(self, marker: FlushMarker) -> None:
        """The sender got to ``marker``: done now, or once the spool is drained."""
        with self.cond:
            if self._behind or (self.spool is not None and len(self.spool)):
                self._waiting.append(marker)
            else:
                marker.done.set()

    def delivered(self, batch: Batch) -> None:
        """``batch`` is sent or given up for good."""
        with self.cond:
            if self._inflight is batch:
                self._inflight = None
            seq = batch.seq  # read under the lock: a spill may have just spooled it
        if self.spool is not None and seq is not None:
            self.spool.remove(batch)

    def replace_inflight(self, batch: Batch, rest: list[Batch]) -> None:
        """Part of ``batch`` was delivered (a 413 split it): ``rest`` takes its place, in
        front of everything."""
        with self.cond:
            if self._inflight is batch:
                self._inflight = None
            seq = batch.seq
            for piece in reversed(rest):
                self._items.appendleft(piece)
                self._samples += piece.samples
            if self._spilling:
                self._spill_memory()
        if self.spool is not None and seq is not None:
            self.spool.remove(batch)

    # -- failures move memory to disk ---------------------------------------------------------

    def note_failure(self) -> None:
        """A send failed: unless one succeeds first, memory goes to disk SPOOL_AFTER_S later."""
        with self.cond:
            if self._failing or self.spool is None:
                self._failing = True
                return
            self._failing = True
            if self.spool_after_s <= 0:
                self._spill()
                return
            cancel = self._spill_timer = threading.Event()
        threading.Thread(
            target=self._spill_later, args=(cancel,), name="spill-timer", daemon=True
        ).start()

    def note_success(self) -> None:
        with self.cond:
            self._failing = False
            self._spilling = False
            if self._spill_timer is not None:
                self._spill_timer.set()
                self._spill_timer = None

    def _spill_later(self, cancel: threading.Event) -> None:
        if self._clock.wait(cancel, self.spool_after_s):
            return
        with self.cond:
            if self._spill_timer is cancel:
                self._spill_timer = None
                self._spill()

    def _spill(self) -> None:
        """Memory to disk (the caller holds ``cond``): from now on batches go to the spool."""
        self._spilling = True
        moved = self._spill_memory()
        if moved:
            log.info(
                "sending fails: %d samples waiting in memory moved to the spool (SPOOL_AFTER_S=%g)",
                moved,
                self.spool_after_s,
            )

    def _spill_memory(self) -> int:
        """Write the memory batches (the one in flight first) to the front of the spool,
        newest first, stopping at the first the disk refuses or has no room for, so that
        order holds; then those behind the spool. Returns the samples moved."""
        spool = self.spool
        assert spool is not None
        inflight = self._inflight
        front: list[Batch] = [inflight] if inflight is not None and inflight.seq is None else []
        front += [b for b in self._items if isinstance(b, Batch)]
        moved = 0
        for batch in reversed(front):
            if not spool.fits(batch) or spool.append(batch, front=True) is not Stored.STORED:
                break
            moved += batch.samples
            if batch is not inflight:
                self._items.remove(batch)
                self._samples -= batch.samples
        while self._behind and spool.fits(self._behind[0]):
            batch = self._behind[0]
            if spool.append(batch) is not Stored.STORED:
                break
            self._behind.popleft()
            self._samples -= batch.samples
            moved += batch.samples
        return moved

    # -- the end ----------------------------------------------------------------------------------

    def finish(self, advance: Callable[[], None]) -> None:
        """Run ``advance`` (a life-cycle step the taker checks: drain, give up) under the
        outbox's lock and wake the taker, so that it cannot miss the step while it waits."""
        with self.cond:
            advance()
            self.cond.notify_all()

    def close(self) -> Leftovers:
        """Release every waiter; the memory batches not sent (in flight first) go to the
        spool, or are dropped and counted."""
        with self.cond:
            front: list[Batch] = []
            inflight, self._inflight = self._inflight, None
            if inflight is not None and inflight.seq is None:  # a spooled one is on disk
                front.append(inflight)
            for item in self._items:
                if isinstance(item, Batch):
                    front.append(item)
                else:
                    item.done.set()
            behind = list(self._behind)
            self._items.clear()
            self._behind.clear()
            self._samples = 0
            for marker in self._waiting:
                marker.done.set()
            self._waiting.clear()
            if self._spill_timer is not None:
                self._spill_timer.set()
                self._spill_timer = None
        total = sum(b.samples for b in front + behind)
        if self.spool is None:
            self._drop("shutdown", total)
            return Leftovers(0, total)
        # Memory batches are older than anything on disk: spooled in front; those the disk
        # refused before are newer: behind. The spool counts what it drops for room.
        batches = front + behind
        results = self.spool.prepend_results(front) + [self.spool.append(b) for b in behind]
        outcomes = list(zip(batches, results, strict=True))
        spooled = sum(b.samples for b, r in outcomes if r is Stored.STORED)
        failed = sum(b.samples for b, r in outcomes if r is Stored.FAILED)
        self._drop("spool_write_error", failed)
        return Leftovers(spooled, total - spooled)
