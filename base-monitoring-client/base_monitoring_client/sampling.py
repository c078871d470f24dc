"""Sampler: calls collect() on a drift-free schedule and turns each tick into a Frame.

A slow collect() skips ticks and counts them; it never bunches them. Samples returned by
collect() join the frame through the client's handle cache; ``auto_stale`` clients get stale
markers for the series missing from this tick (set arithmetic on handle ids).

A client that splits its ticks (``read()`` + ``decode()``) costs the tick only its ``read()``:
the sampler queues a ``RawTick`` and the batcher decodes it with a ``TickDecoder``. On a VM a
thread woken every 100 ms runs its Python code several times slower than a warm loop; decoding
40 ticks back to back before a push costs a fraction of 40 cold decodes (see bench/README.md).
"""

from __future__ import annotations

import logging
import math
import threading
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .client import MonitoringClient
from .clock import Clock, SystemClock
from .errors import MonitoringClientError
from .lifecycle import Latch, Lifecycle
from .sample import STALE_NAN, Sample
from .selfmetrics import Problems, SelfMetrics
from .series import Frame, SeriesTable
from .stale import StaleTracker

if TYPE_CHECKING:
    from .batching import Handoff, Item

log = logging.getLogger(__name__)

LogOnceFn = Callable[..., None]


class FrameBuilder:
    """Samples into a frame (invalid ones dropped and counted), then stale markers."""

    def __init__(self, table: SeriesTable, auto_stale: bool, problems: Problems) -> None:
        self.table = table
        self.auto_stale = auto_stale
        self._drop = problems.drop
        self._log_once = problems.log_once
        self._stale = StaleTracker()
        self._last_ts = 0
        self._last_ids: array[int] | None = None  # single ids of the last plain tick

    def add_samples(self, frame: Frame, samples: list[Sample]) -> None:
        for _, why in self.table.add_samples(frame, samples):
            self._drop("invalid_series", 1)
            self._log_once(f"invalid:{why}", "dropping invalid sample: %s", why)

    def complete(self, frame: Frame, samples: list[Sample]) -> None:
        """A tick's returned Samples into its frame, then its stale markers."""
        if samples:
            self.add_samples(frame, samples)
        self.finish_tick(frame)

    def finish_tick(self, frame: Frame) -> None:
        """Stale markers for the series the previous tick had and this one lacks."""
        if not self.auto_stale:
            return
        plain = not frame.sets and not frame.stale_ids
        if plain and frame.ids and frame.ids == self._last_ids:
            # The same single series as the last tick, in the same order: none has ended.
            newest = max(frame.stamps)
            self._last_ts = max(self._last_ts, newest)
            return
        gone = self._stale.update(frame.live_ids())
        self._last_ids = frame.ids if plain and not gone else None
        newest = max(frame.stamps, default=frame.timestamp_ms)
        for _, _, ts in frame.sets:
            newest = max(newest, ts)
        if gone:
            stamp = max(newest, self._last_ts + 1)
            for sid in sorted(gone):
                frame.add(sid, STALE_NAN, stamp)
            newest = stamp
        self._last_ts = max(self._last_ts, newest)


def log_failure(log_once: LogOnceFn, stage: str, exc: Exception) -> None:
    """Log a failed collect()/read()/decode() once per kind, while handling ``exc``."""
    if isinstance(exc, MonitoringClientError):
        log_once(f"{stage}:{exc}", f"{stage}() failed: %s", exc)
    else:
        log_once(
            f"{stage}:exception", f"{stage}() raised; sampling goes on (logged once)", exc=True
        )


@dataclass(frozen=True, slots=True)
class Collected:
    """Samples a client returned that still go through its ``process()`` (only clients that
    override it), with the frame they join; ``tick``: a tick's frame (it gets stale markers),
    not a push."""

    frame: Frame
    samples: list[Sample]
    tick: bool


class RawTick(tuple[int, Any]):
    """``(now_ns, raw)``: what ``read()`` captured at one tick, queued for ``decode()``.

    A tuple subclass made with ``tuple.__new__``: no Python ``__init__`` per tick."""

    __slots__ = ()


_new_tuple = tuple.__new__


def system_gate(clock: Clock, stop: Latch) -> threading.Lock | None:
    """The stop latch's lock when the clock is the real one: waiting on it directly saves
    the Python frames of ``clock.wait`` and ``Latch.wait`` at each tick."""
    return stop.gate if isinstance(clock, SystemClock) and isinstance(stop, Latch) else None


class TickDecoder:
    """Runs ``decode()`` for queued RawTicks, in order, on the stage that takes them."""

    def __init__(self, client: MonitoringClient, metrics: SelfMetrics) -> None:
        self.client = client
        self.table = client.series_table
        self._log_once = metrics.problems.log_once
        self._collected = metrics.cell("monitoring_client_samples_collected_total")
        #: values in the last decoded tick (read by the sampler thread: an int, no lock)
        self.last_size = 1

    def decode(self, tick: RawTick) -> tuple[Frame, list[Sample]] | None:
        """The tick's frame and returned Samples; None when decode() failed (logged)."""
        now_ns, raw = tick
        frame = self.table.begin(now_ns // 1_000_000)
        try:
            result = self.client.decode(now_ns, raw)
            samples = [] if result is None else list(result)
        except Exception as exc:
            log_failure(self._log_once, "decode", exc)
            return None
        size = len(frame) + len(samples)
        self._collected.value += size
        self.last_size = max(1, size)
        return frame, samples


class Sampler:
    def __init__(
        self,
        client: MonitoringClient,
        interval_s: float,
        clock: Clock,
        lifecycle: Lifecycle,
        *,
        metrics: SelfMetrics,
        builder: FrameBuilder,
        out: Handoff[Item],
        processes: bool,
        decoder: TickDecoder | None = None,
    ) -> None:
        self.client = client
        self.decoder = decoder
        self.interval_s = interval_s
        self.clock = clock
        self.life = lifecycle
        self.metrics = metrics
        self.builder = builder
        self.out = out
        #: the client's Samples go through its process() (on the batcher thread)
        self.processes = processes
        self._drop = metrics.problems.drop
        self._log_once = metrics.problems.log_once
        # The sampler's counters are its own cells: no lock and no lookup per tick.
        self._cells = (
            metrics.cell("monitoring_client_collect_duration_seconds_sum"),
            metrics.cell("monitoring_client_collect_duration_seconds_count"),
            metrics.cell("monitoring_client_skipped_ticks_total"),
        )
        self._collected = metrics.cell("monitoring_client_samples_collected_total")

    def run(self) -> None:
        interval = self.interval_s
        clock = self.clock
        monotonic, time_ns, wait = clock.monotonic, clock.time_ns, clock.wait
        stop = self.life.stop_sampling
        metrics = self.metrics
        observe_lag = metrics.observe_lag
        collect_sum, collect_count, skipped = self._cells
        gate = system_gate(clock, stop)
        split = self.client.splits_ticks
        begin = self.builder.table.begin
        collect = self.client.collect
        read, put, decoder = self.client.read, self.out.put, self.decoder
        start = monotonic()
        tick = 0
        # One method, few calls: every call made here is paid ten times a second, cold.
        while True:
            deadline = start + tick * interval
            if gate is not None:
                timeout = deadline - monotonic()
                if gate.acquire(True, timeout if timeout > 0 else 0):
                    gate.release()
                    return
            elif wait(stop, deadline - monotonic()):
                return
            began = monotonic()
            if began - deadline > metrics.max_lag:
                observe_lag(began - deadline)
            now_ns = time_ns()
            if split:  # read() now; decode() downstream
                try:
                    raw: RawTick | None = _new_tuple(RawTick, (now_ns, read(now_ns)))
                except Exception as exc:
                    log_failure(self._log_once, "read", exc)
                    raw = None
                finished = monotonic()
                if raw is not None:
                    # Counted as the last decoded tick's size, for the batch-full wake-up.
                    expected = decoder.last_size if decoder is not None else 1
                    if not put(raw, expected, wake=False):
                        self._drop("processor_queue_full", expected)
            else:
                frame = begin(now_ns // 1_000_000)
                samples: list[Sample] | None
                try:
                    result = collect(now_ns)
                    samples = [] if result is None else list(result)
                except Exception as exc:
                    self._collect_failed(exc)  # the tick is then not sent at all
                    samples = None
                finished = monotonic()
                if samples is not None:
                    collected = len(frame) + len(samples)
                    if collected:
                        self._hand_on(frame, samples, collected)
            collect_sum.value += finished - began
            collect_count.value += 1
            next_tick = tick + 1
            if start + next_tick * interval <= finished:
                # Overran: resume at the first deadline still ahead, never bunch ticks.
                next_tick = math.floor((finished - start) / interval) + 1
                skipped.value += next_tick - tick - 1
            tick = next_tick

    def _collect_failed(self, exc: Exception) -> None:
        """Log a failed collect() once per kind; call it while handling the exception."""
        log_failure(self._log_once, "collect", exc)

    def _hand_on(self, frame: Frame, samples: list[Sample], collected: int) -> None:
        self._collected.value += collected
        item: Item
        if self.processes:
            item = Collected(frame, samples, True)
        else:
            self.builder.complete(frame, samples)
            item = frame
        # A tick does not wake the batcher: it drains its inbox at its deadline.
        if not self.out.put(item, collected, wake=False):
            self._drop("processor_queue_full", collected)
