"""The runner's MonitoringClient: tags the active window and reports ffmpeg progress.

The runner thread opens and closes windows and stream sets; ``collect()`` (the sampler thread)
sets that state on series handles. Every sample of a series, its stale marker included, is made
on the sampler thread, so timestamps of a series increase without coordination:
``ffmpeg_scenario_info`` gets a sample at exactly the window start, one per tick, one at
exactly the window end, and the stale marker 1 ms later.

Each window, each rung's progress metric and each quality value is one handle, made on the
sampler's first sample of it and released after its last (the stale marker, or the one quality
sample), so a long batch keeps no handle of a finished window.

Quality is pushed once per measured output, after it was computed, with the window's end as
timestamp: ``ffmpeg_output_quality`` (the mean score, one series per metric) and
``ffmpeg_output_bitrate_bits_per_second``; so is each window's accounting,
``ffmpeg_window_cpu_seconds`` (one series per scope). They get no stale marker: a single
sample, visible to instant queries for Prometheus' lookback (5 min) after the window's end and
to ``last_over_time(...[range])`` for as long as the data is kept.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from base_monitoring_client import MonitoringClient
from base_monitoring_client import contract as series
from base_monitoring_client.sample import validate_series
from base_monitoring_client.series import Series

from .contract import (
    FPS_METRIC,
    FRAMES_METRIC,
    INFO_METRIC,
    OUTPUT_BITRATE_METRIC,
    QUALITY_METRIC,
    SPEED_METRIC,
    WINDOW_CPU_METRIC,
    Accounting,
    OutputQuality,
)
from .progress import ProgressSnapshot

log = logging.getLogger(__name__)

ProgressSource = Callable[[], ProgressSnapshot | None]


@dataclass
class _Window:
    labels: dict[str, str]
    start_ms: int
    end_ms: int | None = None
    last_ts: int = 0
    handle: Series | None = None  # made on the window's first tick


@dataclass
class _Stream:
    """One ffmpeg process's progress series, one label set per rung."""

    labels: list[dict[str, str]]  # per rung
    source: ProgressSource
    final_frames: list[int] | None = None
    ending: bool = False
    last_ts: int = 0
    # (metric, rung index) -> handle, made when that metric is first reported for the rung
    handles: dict[tuple[str, int], Series] = field(default_factory=dict)


@dataclass(frozen=True)
class _Once:
    """A single sample with no stale marker (quality, bitrate, window CPU)."""

    name: str
    labels: dict[str, str]
    value: float
    ts_ms: int


class RunnerClient(MonitoringClient):
    name = "ffmpeg-runner"
    auto_stale = False  # windows end explicitly: the stale marker carries the exact end

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: list[_Window] = []
        self._streams: list[_Stream] = []
        self._once: list[_Once] = []  # one-off samples (quality), sent on the next tick
        self._idle = threading.Condition(self._lock)

    # -- runner side ------------------------------------------------------------------------------
    # Labels are checked here (EncodeError names the bad one), so collect() cannot fail on them.

    def begin_window(self, labels: Mapping[str, str], start_ms: int) -> None:
        window = _Window(validate_series(INFO_METRIC, labels), start_ms)
        with self._lock:
            self._windows.append(window)

    def end_window(self, end_ms: int) -> None:
        """Close every open window at ``end_ms``; the next tick sends its last sample and marker."""
        with self._lock:
            for window in self._windows:
                if window.end_ms is None:
                    window.end_ms = max(end_ms, window.start_ms)

    def track_stream(
        self, rung_labels: Sequence[Mapping[str, str]], source: ProgressSource
    ) -> object:
        """Start reporting one process's progress (one label set per rung); returns a handle."""
        labels = [validate_series(FRAMES_METRIC, x) for x in rung_labels]
        stream = _Stream(labels, source)
        with self._lock:
            self._streams.append(stream)
        return stream

    def end_stream(self, handle: object, final_frames: Sequence[int] | None) -> None:
        """Stop reporting: final per-rung frame counts (None keeps the last progress value).
        A handle that is not one of this client's streams (None: the process never started)
        is ignored."""
        if not isinstance(handle, _Stream):
            return
        with self._lock:
            handle.final_frames = list(final_frames) if final_frames is not None else None
            handle.ending = True

    def record_quality(
        self, window_labels: Mapping[str, str], outputs: Sequence[OutputQuality], ts_ms: int
    ) -> None:
        """Push each output's quality once at ``ts_ms`` (the window's end).

        ``window_labels`` are ``run_id``, ``scenario`` and ``repeat``; each output adds
        ``rung`` (its ``WxH@BITRATE``), and each quality sample ``metric``.
        """
        samples: list[_Once] = []
        seen: set[str] = set()
        for output in outputs:
            if output.rung in seen:  # same key twice in one ladder: one series can hold one
                log.warning("rung %s appears twice; pushing its first output only", output.rung)
                continue
            seen.add(output.rung)
            base = validate_series(OUTPUT_BITRATE_METRIC, {**window_labels, "rung": output.rung})
            bitrate = output.achieved_bitrate_bps
            if bitrate is not None:
                samples.append(_Once(OUTPUT_BITRATE_METRIC, base, bitrate, ts_ms))
            for metric, score in output.scores.items():
                labels = validate_series(QUALITY_METRIC, {**base, "metric": metric})
                samples.append(_Once(QUALITY_METRIC, labels, score.mean, ts_ms))
        with self._lock:
            self._once.extend(samples)

    def record_accounting(
        self, window_labels: Mapping[str, str], accounting: Accounting, ts_ms: int
    ) -> None:
        """Push the window's CPU seconds once at ``ts_ms`` (its end), one series per scope.

        ``window_labels`` are ``run_id``, ``scenario``, ``phase`` and ``repeat``; the cgroup
        scope is left out outside a container (no value).
        """
        values = {
            series.SCOPE_TRANSCODE: accounting.transcode_cpu_s,
            series.SCOPE_HOST_BUSY: accounting.host_busy_cpu_s,
            series.SCOPE_HOST_TOTAL: accounting.host_total_cpu_s,
            series.SCOPE_CGROUP: accounting.cgroup_cpu_s,
        }
        samples = [
            _Once(
                WINDOW_CPU_METRIC,
                validate_series(WINDOW_CPU_METRIC, {**window_labels, series.SCOPE: scope}),
                value,
                ts_ms,
            )
            for scope, value in values.items()
            if value is not None
        ]
        with self._lock:
            self._once.extend(samples)

    def wait_idle(self, timeout: float) -> bool:
        """Block until every closed window and stream has sent its stale markers."""
        with self._idle:
            return self._idle.wait_for(self._all_closed_sent, timeout)

    def _all_closed_sent(self) -> bool:
        return (
            not self._once
            and not any(w.end_ms is not None for w in self._windows)
            and not any(s.ending for s in self._streams)
        )

    # -- sampler side -----------------------------------------------------------------------------

    def collect(self, now_ns: int) -> None:
        now_ms = now_ns // 1_000_000
        with self._lock:
            keep: list[_Window] = []
            for window in self._windows:
                self._window_samples(window, now_ms)
                if window.end_ms is None:
                    keep.append(window)
            self._windows = keep
            streams: list[_Stream] = []
            for stream in self._streams:
                self._stream_samples(stream, now_ms)
                if not stream.ending:
                    streams.append(stream)
            self._streams = streams
            for once in self._once:
                handle = self.handle(once.name, once.labels)
                handle.set(once.value, timestamp_ms=once.ts_ms)
                self.release(handle)
            self._once = []
            if self._all_closed_sent():
                self._idle.notify_all()

    def _window_samples(self, window: _Window, now_ms: int) -> None:
        handle = window.handle
        if handle is None:
            # Made here, not in begin_window(): a window with the labels of one that closed
            # on this tick gets a new series after the old one was released (windows are in
            # order).
            handle = window.handle = self.handle(INFO_METRIC, window.labels)

        def emit(ts: int) -> None:
            if ts > window.last_ts:
                handle.set(1.0, timestamp_ms=ts)
                window.last_ts = ts

        if window.last_ts == 0:
            emit(window.start_ms)
        if window.end_ms is None:
            emit(now_ms)
            return
        emit(window.end_ms)
        handle.stale(window.last_ts + 1)
        self.release(handle)

    def _stream_samples(self, stream: _Stream, now_ms: int) -> None:
        snapshot = stream.source()
        ts = max(now_ms, stream.last_ts + 1)
        if snapshot is not None or stream.final_frames is not None:
            for k in range(len(stream.labels)):
                if stream.final_frames is not None and k < len(stream.final_frames):
                    frames = float(stream.final_frames[k])
                elif snapshot is not None:
                    # ffmpeg 5.1 reports the first output's count; all rungs share one split.
                    frames = float(snapshot.frame)
                else:
                    continue
                self._progress(stream, FRAMES_METRIC, k).set(frames, timestamp_ms=ts)
                if snapshot is not None:
                    self._progress(stream, FPS_METRIC, k).set(snapshot.fps, timestamp_ms=ts)
                    if snapshot.speed is not None:
                        speed = self._progress(stream, SPEED_METRIC, k)
                        speed.set(snapshot.speed, timestamp_ms=ts)
            stream.last_ts = ts
        if stream.ending:
            for key in sorted(stream.handles):
                handle = stream.handles[key]
                handle.stale(stream.last_ts + 1)
                self.release(handle)
            stream.handles.clear()

    def _progress(self, stream: _Stream, metric: str, rung: int) -> Series:
        handle = stream.handles.get((metric, rung))
        if handle is None:
            handle = stream.handles[(metric, rung)] = self.handle(metric, stream.labels[rung])
        return handle
