"""Sampler: calls collect() on a drift-free schedule and turns each tick into a Frame.

A slow collect() skips ticks and counts them; it never bunches them. Samples returned by
collect() join the frame through the client's handle cache; ``auto_stale`` clients get stale
markers for the series missing from this tick (set arithmetic on handle ids).
"""

from __future__ import annotations

import logging
import math
from array import array
from collections.abc import Callable
from typing import Any

from .client import MonitoringClient
from .clock import Clock
from .errors import MonitoringClientError
from .handoff import Handoff
from .lifecycle import Lifecycle
from .sample import STALE_NAN, Sample
from .selfmetrics import SelfMetrics
from .series import Frame, SeriesTable
from .stale import StaleTracker

log = logging.getLogger(__name__)

DropFn = Callable[[str, int], None]
LogOnceFn = Callable[..., None]


class FrameBuilder:
    """Samples into a frame (invalid ones dropped and counted), then stale markers."""

    def __init__(
        self, table: SeriesTable, auto_stale: bool, drop: DropFn, log_once: LogOnceFn
    ) -> None:
        self.table = table
        self.auto_stale = auto_stale
        self._drop = drop
        self._log_once = log_once
        self._stale = StaleTracker()
        self._last_ts = 0
        self._last_ids: array[int] | None = None  # single ids of the last plain tick

    def add_samples(self, frame: Frame, samples: list[Sample]) -> None:
        for _, why in self.table.add_samples(frame, samples):
            self._drop("invalid_series", 1)
            self._log_once(f"invalid:{why}", "dropping invalid sample: %s", why)

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
        out: Handoff,
        to_processor: bool,
        drop: DropFn,
        log_once: LogOnceFn,
    ) -> None:
        self.client = client
        self.interval_s = interval_s
        self.clock = clock
        self.life = lifecycle
        self.metrics = metrics
        self.builder = builder
        self.out = out
        self.to_processor = to_processor
        self._drop = drop
        self._log_once = log_once
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
        begin = self.builder.table.begin
        collect = self.client.collect
        observe_lag = self.metrics.observe_lag
        collect_sum, collect_count, skipped = self._cells
        start = monotonic()
        tick = 0
        # One method, few calls: every call made here is paid ten times a second, cold.
        while True:
            deadline = start + tick * interval
            if wait(stop, deadline - monotonic()):
                return
            began = monotonic()
            observe_lag(began - deadline if began > deadline else 0.0)
            now_ns = time_ns()
            frame = begin(now_ns // 1_000_000)
            samples: list[Sample] | None
            try:
                result = collect(now_ns)
                samples = [] if result is None else list(result)
            except Exception as exc:
                self._collect_failed(exc)  # the tick is then not sent at all
                samples = None
            finished = monotonic()
            collect_sum.value += finished - began
            collect_count.value += 1
            if samples is not None:
                collected = len(frame) + len(samples)
                if collected:
                    self._hand_on(frame, samples, collected)
            next_tick = tick + 1
            if start + next_tick * interval <= finished:
                # Overran: resume at the first deadline still ahead, never bunch ticks.
                next_tick = math.floor((finished - start) / interval) + 1
                skipped.value += next_tick - tick - 1
            tick = next_tick

    def _collect_failed(self, exc: Exception) -> None:
        """Log a failed collect() once per kind; call it while handling the exception."""
        if isinstance(exc, MonitoringClientError):
            self._log_once(f"collect:{exc}", "collect() failed: %s", exc)
        else:
            self._log_once(
                "collect:exception", "collect() raised; sampling goes on (logged once)", exc=True
            )

    def _hand_on(self, frame: Frame, samples: list[Sample], collected: int) -> None:
        self._collected.value += collected
        if self.to_processor:
            item: Any = (frame, samples, True)
        else:
            if samples:
                self.builder.add_samples(frame, samples)
            self.builder.finish_tick(frame)
            item = frame
        # A tick does not wake the batcher (it drains at its deadline); the processor it does.
        if not self.out.put(item, collected, wake=self.to_processor):
            self._drop("processor_queue_full", collected)
