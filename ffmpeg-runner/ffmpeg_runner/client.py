"""The runner's MonitoringClient: tags the active window and reports ffmpeg progress.

The runner thread opens and closes windows and stream sets; ``collect()`` (the sampler thread)
turns that state into samples. Every sample of a series, its stale marker included, is made
on the sampler thread, so timestamps of a series increase without coordination:
``ffmpeg_scenario_info`` gets a sample at exactly the window start, one per tick, one at
exactly the window end, and the stale marker 1 ms later.

Quality is pushed once per measured output, after it was computed, with the window's end as
timestamp: ``ffmpeg_output_quality`` (the mean score, one series per metric) and
``ffmpeg_output_bitrate_bits_per_second``. They get no stale marker: a single sample,
visible to instant queries for Prometheus' lookback (5 min) after the window's end and to
``last_over_time(...[range])`` for as long as the data is kept.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from base_monitoring_client import MonitoringClient, Sample

from .contract import (
    FPS_METRIC,
    FRAMES_METRIC,
    INFO_METRIC,
    OUTPUT_BITRATE_METRIC,
    QUALITY_METRIC,
    SPEED_METRIC,
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


@dataclass
class _Stream:
    """One ffmpeg process's progress series, one label set per rung."""

    labels: list[dict[str, str]]  # per rung
    source: ProgressSource
    final_frames: list[int] | None = None
    ending: bool = False
    last_ts: int = 0
    sent: set[str] = field(default_factory=set)


class RunnerClient(MonitoringClient):
    name = "ffmpeg-runner"
    auto_stale = False  # windows end explicitly: the stale marker carries the exact end

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: list[_Window] = []
        self._streams: list[_Stream] = []
        self._once: list[Sample] = []  # one-off samples (quality), sent on the next tick
        self._idle = threading.Condition(self._lock)

    # -- runner side ------------------------------------------------------------------------------

    def begin_window(self, labels: Mapping[str, str], start_ms: int) -> None:
        with self._lock:
            self._windows.append(_Window(dict(labels), start_ms))

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
        stream = _Stream([dict(x) for x in rung_labels], source)
        with self._lock:
            self._streams.append(stream)
        return stream

    def end_stream(self, handle: object, final_frames: Sequence[int] | None) -> None:
        """Stop reporting: final per-rung frame counts (None keeps the last progress value)."""
        assert isinstance(handle, _Stream)
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
        samples: list[Sample] = []
        seen: set[str] = set()
        for output in outputs:
            if output.rung in seen:  # same key twice in one ladder: one series can hold one
                log.warning("rung %s appears twice; pushing its first output only", output.rung)
                continue
            seen.add(output.rung)
            base = {**window_labels, "rung": output.rung}
            bitrate = output.achieved_bitrate_bps
            samples.append(Sample(OUTPUT_BITRATE_METRIC, base, bitrate, ts_ms))
            for metric, score in output.scores.items():
                labels = {**base, "metric": metric}
                samples.append(Sample(QUALITY_METRIC, labels, score.mean, ts_ms))
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

    def collect(self, now_ns: int) -> Iterable[Sample]:
        now_ms = now_ns // 1_000_000
        out: list[Sample] = []
        with self._lock:
            keep: list[_Window] = []
            for window in self._windows:
                self._window_samples(window, now_ms, out)
                if window.end_ms is None:
                    keep.append(window)
            self._windows = keep
            streams: list[_Stream] = []
            for stream in self._streams:
                self._stream_samples(stream, now_ms, out)
                if not stream.ending:
                    streams.append(stream)
            self._streams = streams
            out.extend(self._once)
            self._once = []
            if self._all_closed_sent():
                self._idle.notify_all()
        return out

    @staticmethod
    def _window_samples(window: _Window, now_ms: int, out: list[Sample]) -> None:
        def emit(ts: int) -> None:
            if ts > window.last_ts:
                out.append(Sample(INFO_METRIC, window.labels, 1.0, ts))
                window.last_ts = ts

        if window.last_ts == 0:
            emit(window.start_ms)
        if window.end_ms is None:
            emit(now_ms)
            return
        emit(window.end_ms)
        out.append(Sample.stale(INFO_METRIC, window.labels, window.last_ts + 1))

    @staticmethod
    def _stream_samples(stream: _Stream, now_ms: int, out: list[Sample]) -> None:
        snapshot = stream.source()
        ts = max(now_ms, stream.last_ts + 1)
        if snapshot is not None or stream.final_frames is not None:
            for k, labels in enumerate(stream.labels):
                if stream.final_frames is not None and k < len(stream.final_frames):
                    frames = float(stream.final_frames[k])
                elif snapshot is not None:
                    # ffmpeg 5.1 reports the first output's count; all rungs share one split.
                    frames = float(snapshot.frame)
                else:
                    continue
                values = [(FRAMES_METRIC, frames)]
                if snapshot is not None:
                    values.append((FPS_METRIC, snapshot.fps))
                    if snapshot.speed is not None:
                        values.append((SPEED_METRIC, snapshot.speed))
                for metric, value in values:
                    out.append(Sample(metric, labels, value, ts))
                    stream.sent.add(metric)
            stream.last_ts = ts
        if stream.ending and stream.sent:
            for labels in stream.labels:
                for metric in sorted(stream.sent):
                    out.append(Sample.stale(metric, labels, stream.last_ts + 1))
