"""The batcher stage: frames in, encoded remote-write batches out to the outbox.

``BatcherStage`` is the batcher thread: it takes what the sampler (and ``Pipeline.push``)
queued in its inbox (a ``Handoff`` of typed ``Item``s), decodes split ticks, runs a client's
``process()`` where it has one, and feeds the frames to the ``Batcher``, which checks and
encodes them. A batch leaves when it holds MAX_SAMPLES_PER_SEND samples or its oldest sample
has waited PUSH_INTERVAL_S; every push interval the client's self-metrics join the batch.

Values stay in columns from the client to the encoder. A ``SeriesSet`` column is checked with
one slice of the per-series last-timestamp array and kept as it came; single values go through
a per-sample check. One encode per batch, with each series' cached label bytes.

Checks (each drop counted with its reason): a timestamp must increase per series
(``out_of_order``) and lie in (0, now + 10 min] (``invalid_timestamp``), because Prometheus
rejects the whole request for one bad sample.
"""

from __future__ import annotations

import collections
import functools
import threading
import time
from array import array
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .client import MonitoringClient
from .clock import Clock
from .config import ClientConfig
from .encoder import SeriesEncoder
from .outbox import FlushMarker, Outbox
from .sampling import Collected, FrameBuilder, RawTick, TickDecoder
from .selfmetrics import Problems, SelfMetrics
from .series import Frame, Series, SeriesSet, SeriesTable
from .spool import Batch

# A sample more than this far ahead of the wall clock is refused before sending: Prometheus
# rejects the whole request for one such sample.
MAX_FUTURE_MS = 10 * 60 * 1000
_NEVER = -(1 << 63)

#: frames the batcher's inbox holds at most (the sampler then waits, then drops and counts)
QUEUE_SIZE = 1024

T = TypeVar("T")


class Stop:
    """The end of the batcher's input: it sends what it holds and returns."""


STOP = Stop()


#: what the batcher's inbox carries: a finished frame (the usual), a split tick to decode,
#: Samples for ``process()``, a flush marker, the end
Item = Frame | RawTick | Collected | FlushMarker | Stop


class Handoff(Generic[T]):
    """A bounded hand-off between two stage threads that wakes the consumer only when it must.

    Waking a thread costs more CPU than everything else a 10 Hz tick does (thread wake-ups and
    GIL hand-overs were most of a tick's samples under py-spy), so a tick's frame is queued
    quietly: the consumer drains the queue at its own deadline (the push interval), or earlier
    when the queued samples reach ``wake_samples`` (a full batch) or the queue is half full.
    Flush markers and stop wake it at once.
    """

    def __init__(
        self, capacity: int, wake_samples: int, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.wake_samples = wake_samples  # the consumer lowers it by what it already holds
        self._now = now
        self._items: collections.deque[T] = collections.deque()
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

    def put(self, item: T, samples: int = 0, *, wake: bool = True, timeout: float = 0.0) -> bool:
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

    def take(self, timeout: float | None) -> tuple[list[T], float | None]:
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


def _member_keys(sset: SeriesSet, lo: int, hi: int) -> list[bytes]:
    return [member.key for member in sset.members[lo:hi]]


class Batcher:
    """Not thread-safe: owned by the batcher thread. ``emit`` receives each full batch."""

    def __init__(
        self,
        handles: dict[int, Series],
        emit: Callable[[Batch], None],
        *,
        max_samples: int,
        problems: Problems,
    ) -> None:
        self._handles = handles
        self._emit = emit
        self._max = max_samples
        self._drop = problems.drop
        self._log_once = problems.log_once
        self._encoder = SeriesEncoder()
        self._last = array("q")
        # (set, lo, hi) -> (value columns, their timestamps); a slice when a frame was split.
        self._columns: dict[tuple[SeriesSet, int, int], tuple[list[Any], list[int]]] = {}
        self._singles: dict[int, tuple[list[float], list[int]]] = {}
        # Whether a member's column waits in this batch (a flag per id, set and cleared by the
        # columns' ranges): a single of one of them flushes first. A set of ids cost 70 us per
        # 2000-series batch to fill.
        self._in_column = bytearray()
        self._column_ranges: list[tuple[int, int]] = []
        # The timestamp each set last had written as a whole column, and the latest of any
        # single: a column newer than both is newer than every member's last sample, which
        # spares reading them all (45 ns a series).
        self._set_high: dict[SeriesSet, int] = {}
        self._singles_high = _NEVER
        self.count = 0

    def _grow(self, stop: int) -> None:
        if stop > len(self._last):
            self._last.extend(array("q", [_NEVER]) * (stop - len(self._last) + 4096))
            self._in_column.extend(bytes(len(self._last) - len(self._in_column)))

    # -- input --------------------------------------------------------------------------------

    def add(self, frame: Frame, now_ms: int) -> None:
        horizon = now_ms + MAX_FUTURE_MS
        for series_set, values, ts in frame.sets:
            self._add_column(series_set, values, ts, horizon)
        if frame.ids:
            self._add_singles(frame.ids, frame.values, frame.stamps, horizon)

    def _add_column(self, sset: SeriesSet, values: array[float], ts: int, horizon: int) -> None:
        start, stop = sset.start, sset.stop
        n = stop - start
        if not n:
            return
        self._grow(stop)
        last = self._last
        if type(ts) is not int or ts <= 0 or ts > horizon:
            self._bad_timestamp(sset.members[0].name, ts, n)
            return
        high = self._set_high.get(sset)
        newer = high is not None and ts > high and ts > self._singles_high
        if (not newer and max(last[start:stop]) >= ts) or (
            self._singles and not self._singles.keys().isdisjoint(sset.idset)
        ):
            # Some member already has this timestamp (or singles of it wait in this batch):
            # sample by sample, which keeps per-series order.
            self._add_singles(array("q", range(start, stop)), values, array("q", [ts]) * n,
                              horizon)  # fmt: skip
            return
        last[start:stop] = array("q", [ts]) * n
        if len(self._set_high) >= 4096 and sset not in self._set_high:
            self._set_high.clear()  # sets come and go: the others read their members again
        self._set_high[sset] = ts
        if self.count and self.count + n > self._max:
            self.flush()
        lo = 0
        while lo < n:
            hi = min(n, lo + self._max - self.count)
            key = (sset, lo, hi)
            group = self._columns.get(key)
            if group is None:
                group = self._columns[key] = ([], [])
                self._in_column[start + lo : start + hi] = b"\x01" * (hi - lo)
                self._column_ranges.append((start + lo, start + hi))
            group[0].append(values if hi - lo == n else values[lo:hi])
            group[1].append(ts)
            self.count += hi - lo
            if self.count >= self._max:
                self.flush()
            lo = hi

    def _add_singles(
        self, ids: array[int], values: array[float], stamps: array[int], horizon: int
    ) -> None:
        if not ids:
            return
        self._grow(max(ids) + 1)
        top = max(stamps)
        if top > horizon:  # refused below: not a timestamp any member will have
            top = max((ts for ts in stamps if ts <= horizon), default=_NEVER)
        self._singles_high = max(self._singles_high, top)
        last = self._last
        singles = self._singles  # flush() starts new dicts: re-read after each
        in_column = self._in_column if self._column_ranges else None
        for sid, value, ts in zip(ids, values, stamps, strict=True):
            if ts <= last[sid]:
                self._drop("out_of_order", 1)
                name = self._name(sid)
                self._log_once(
                    f"ooo:{name}",
                    "dropping samples of %s whose timestamps do not increase "
                    "(logged once per metric)",
                    name,
                )
                continue
            if ts <= 0 or ts > horizon:
                self._bad_timestamp(self._name(sid), ts, 1)
                continue
            if in_column is not None and in_column[sid]:
                self.flush()  # its set's column waits in this batch: keep the series in order
                singles = self._singles
                in_column = None
            last[sid] = ts
            group = singles.get(sid)
            if group is None:
                singles[sid] = ([value], [ts])
            else:
                group[0].append(value)
                group[1].append(ts)
            self.count += 1
            if self.count >= self._max:
                self.flush()
                singles = self._singles

    def _name(self, sid: int) -> str:
        handle = self._handles.get(sid)
        return handle.name if handle is not None else f"series #{sid}"

    def _bad_timestamp(self, name: str, ts: object, count: int) -> None:
        self._drop("invalid_timestamp", count)
        self._log_once(f"ts:{name}", "dropping %s: timestamp %r ms is out of range", name, ts)

    # -- output -------------------------------------------------------------------------------

    def flush(self) -> None:
        """Encode what is pending as one batch and emit it."""
        if not self.count:
            return
        columns = [
            ((sset, lo, hi), functools.partial(_member_keys, sset, lo, hi), rows, tss)
            for (sset, lo, hi), (rows, tss) in self._columns.items()
        ]
        keys: list[bytes] = []
        counts: list[int] = []
        values: list[float] = []
        stamps: list[int] = []
        handles = self._handles
        for sid, (vals, tss) in self._singles.items():
            keys.append(handles[sid].key)
            counts.append(len(vals))
            values += vals
            stamps += tss
        count = self.count
        self._columns = {}
        for lo, hi in self._column_ranges:
            self._in_column[lo:hi] = bytes(hi - lo)
        self._column_ranges.clear()
        self._singles = {}
        self.count = 0
        encoder = self._encoder
        singles = encoder.encode_columns(keys, counts, values, stamps) if keys else b""
        self._emit(Batch(encoder.encode_compressed(columns, singles), count))


class BatcherStage:
    """The batcher thread (``run``) and its inbox. ``stop()`` ends it after what is queued."""

    def __init__(
        self,
        client: MonitoringClient,
        config: ClientConfig,
        clock: Clock,
        *,
        metrics: SelfMetrics,
        builder: FrameBuilder,
        decoder: TickDecoder | None,
        outbox: Outbox,
    ) -> None:
        self.client = client
        self.table: SeriesTable = client.series_table
        self.clock = clock
        self.metrics = metrics
        self.builder = builder
        self.decoder = decoder
        self.outbox = outbox
        self.push_interval_s = config.push_interval_s
        self.max_samples = config.max_samples_per_send
        self._problems = problems = metrics.problems
        self._drop = problems.drop
        self._stage_error = problems.stage_error
        #: whether the client rewrites its returned Samples (``process()`` overridden)
        self.processes = type(client).process is not MonitoringClient.process
        self.inbox: Handoff[Item] = Handoff(QUEUE_SIZE, self.max_samples, clock.monotonic)
        self.batcher = Batcher(
            self.table.handles, self._emit, max_samples=self.max_samples, problems=problems
        )
        self._oldest: float | None = None  # monotonic time of the oldest sample in the batch
        # Released handles whose frames are all with the batcher: dropped at the next batch,
        # which encodes every frame added before it.
        self._released: list[Series] = []
        self._last_report_ms = 0

    @property
    def pending(self) -> int:
        """Samples queued for the batcher or in the batch it builds."""
        return self.inbox.samples + self.batcher.count

    def stop(self, thread: threading.Thread | None) -> None:
        """Send what is queued, then end; a dead thread takes nothing: do not wait for room."""
        if thread is not None and thread.is_alive():
            self.inbox.put(STOP, timeout=60)
            thread.join()

    def run(self) -> None:
        clock = self.clock
        inbox = self.inbox
        next_report = clock.monotonic() + self.push_interval_s
        while True:
            items, first_at = inbox.take(max(0.0, self._deadline(next_report) - clock.monotonic()))
            now = clock.monotonic()
            stop = False
            for item in items:
                if item is STOP:
                    stop = True
                    continue
                try:
                    self._take(item)
                except Exception:
                    self._stage_error("batcher")
            try:
                if stop or now >= next_report:
                    next_report = now + self.push_interval_s
                    self._report_self()
                if stop:
                    self.batcher.flush()
                    return
                if self.batcher.count and self._oldest is None:
                    self._oldest = now if first_at is None else min(now, first_at)
                if (
                    self._oldest is not None
                    and clock.monotonic() >= self._oldest + self.push_interval_s
                ):
                    self.batcher.flush()
            except Exception:
                self._oldest = None
                self._stage_error("batcher")
                if stop:
                    return
            # Wake early only for what completes this batch.
            inbox.wake_samples = max(1, self.max_samples - self.batcher.count)

    def _deadline(self, next_report: float) -> float:
        """When to look again: the self-metrics report, or the push of the oldest sample."""
        if self._oldest is None:
            return next_report
        return min(next_report, self._oldest + self.push_interval_s)

    def _take(self, item: Item) -> None:
        if type(item) is Frame:  # the usual: a tick's frame, complete
            self._add(item)
        elif isinstance(item, RawTick):
            self._decode(item)
        elif isinstance(item, Collected):
            self._process(item)
        elif isinstance(item, FlushMarker):
            self.batcher.flush()
            self.outbox.put(item)

    def _add(self, frame: Frame) -> None:
        self.batcher.add(frame, self.clock.time_ns() // 1_000_000)
        if frame.tick:
            self._released += self.table.released_before(frame.tick)

    def _decode(self, tick: RawTick) -> None:
        assert self.decoder is not None  # only split clients queue RawTicks
        decoded = self.decoder.decode(tick)
        if decoded is None:
            return
        frame, samples = decoded
        if self.processes:
            self._process(Collected(frame, samples, True))
            return
        self.builder.complete(frame, samples)
        self._add(frame)

    def _process(self, item: Collected) -> None:
        """``process()`` the client's Samples into their frame; on an error they are dropped
        and counted, the frame's handle values still go."""
        samples = item.samples
        try:
            samples = self.client.process(samples)
        except Exception:
            self._drop("process_error", len(samples))
            self._problems.log_once(
                "process:exception",
                "process() raised; its samples were dropped (logged once)",
                exc=True,
            )
            samples = []
        if samples:
            self.builder.add_samples(item.frame, samples)
        if item.tick:
            self.builder.finish_tick(item.frame)
        if len(item.frame):
            self._add(item.frame)

    def _emit(self, batch: Batch) -> None:
        self._oldest = None
        self.outbox.put(batch)
        if self._released:
            self.table.forget(self._released)
            self._released.clear()

    def _report_self(self) -> None:
        """The self-metrics into the batch, at most once per millisecond."""
        metrics = self.metrics
        metrics.set("monitoring_client_pending_samples", float(self.outbox.pending + self.pending))
        spool = self.outbox.spool
        if spool is not None:
            metrics.set("monitoring_client_spool_bytes", float(spool.nbytes))
            metrics.set("monitoring_client_spool_samples", float(spool.samples))
        stamp = self.clock.time_ns() // 1_000_000
        if stamp <= self._last_report_ms:
            return
        self._last_report_ms = stamp
        frame = Frame(stamp)
        self.builder.add_samples(frame, metrics.to_samples(stamp))
        self.batcher.add(frame, stamp)
