"""Runs scenarios window by window and records them in the manifest.

A transcode window: start ``streams`` ffmpeg processes, let them run ``stabilization``
seconds, then measure ``duration`` seconds (the window), then stop them (``q``). Frames are
counted inside the window only: ffmpeg's ``-progress`` count of the first output at the window
start and end, plus each other output's difference to the first in ffmpeg's final per-output
statistics (every rung is fed by one split, so they differ only if an encoder lost frames).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from base_monitoring_client.clock import SYSTEM_CLOCK, Clock

from .ffmpeg import FfmpegInfo, stream_commands
from .manifest import Manifest, host_facts
from .process import FfmpegProcess, stop_all
from .progress import ProgressSnapshot
from .scenario import Scenario

log = logging.getLogger(__name__)

STDERR_TAIL_LINES = 15
STDERR_TAIL_CHARS = 8000
REAP_WAIT_S = 2.0


class WindowSink(Protocol):
    """Where windows and progress go (the pushing client, or nowhere)."""

    def begin_window(self, labels: Mapping[str, str], start_ms: int) -> None: ...
    def end_window(self, end_ms: int) -> None: ...
    def track_stream(self, rung_labels: Sequence[Mapping[str, str]], source: Any) -> object: ...
    def end_stream(self, handle: object, final_frames: Sequence[int] | None) -> None: ...


class NullSink:
    def begin_window(self, labels: Mapping[str, str], start_ms: int) -> None:
        pass

    def end_window(self, end_ms: int) -> None:
        pass

    def track_stream(self, rung_labels: Sequence[Mapping[str, str]], source: Any) -> object:
        return None

    def end_stream(self, handle: object, final_frames: Sequence[int] | None) -> None:
        pass


@dataclass(frozen=True)
class RunOptions:
    run_id: str
    output_dir: Path
    ffmpeg: FfmpegInfo
    sample_interval_s: float = 0.1
    stop_grace_s: float = 5.0
    fail_fast: bool = False

    @property
    def manifest_path(self) -> Path:
        return self.output_dir / f"{self.run_id}.json"

    @property
    def media_dir(self) -> Path:
        return self.output_dir / self.run_id

    @property
    def stats_period_s(self) -> float:
        return min(1.0, max(0.05, self.sample_interval_s))


def info_labels(run_id: str, scenario: Scenario, phase: str, repeat: int) -> dict[str, str]:
    return {
        "run_id": run_id,
        "scenario": scenario.name,
        "phase": phase,
        "encoder": scenario.encoder,
        "preset": scenario.preset_label,
        "ladder": scenario.ladder,
        "streams": str(scenario.streams),
        "bitrate": scenario.bitrate,
        "repeat": str(repeat),
    }


def progress_labels(
    run_id: str, scenario: Scenario, repeat: int, stream: int
) -> list[dict[str, str]]:
    return [
        {
            "run_id": run_id,
            "scenario": scenario.name,
            "repeat": str(repeat),
            "stream": str(stream),
            "output": rung.name,
        }
        for rung in scenario.rungs
    ]


def window_frames(
    scenario: Scenario,
    before: ProgressSnapshot | None,
    after: ProgressSnapshot | None,
    finals: Mapping[int, int],
) -> list[int]:
    """Frames each rung encoded inside the window (see the module docstring)."""
    start = before.frame if before is not None else 0
    first_final = finals.get(0)
    counts = []
    for k in range(len(scenario.rungs)):
        final = finals.get(k)
        if after is not None and first_final is not None and final is not None:
            frames = after.frame - start + (final - first_final)
        elif final is not None:
            frames = final - start
        elif after is not None:
            frames = after.frame - start  # killed before its statistics: progress is all we have
        else:
            frames = 0
        counts.append(max(0, frames))
    return counts


def stderr_tail(processes: Sequence[FfmpegProcess]) -> str:
    parts = []
    for index, process in enumerate(processes):
        lines = [
            ln for ln in process.stderr_lines() if "[verbose]" not in ln and "[debug]" not in ln
        ]
        if process.start_error:
            lines.append(process.start_error)
        header = f"--- stream {index} (exit {process.poll()}) ---"
        parts.append("\n".join([header, *lines[-STDERR_TAIL_LINES:]]))
    text = "\n".join(parts)
    return text[-STDERR_TAIL_CHARS:]


class Runner:
    def __init__(
        self,
        scenarios: Sequence[Scenario],
        options: RunOptions,
        *,
        sink: WindowSink | None = None,
        clock: Clock = SYSTEM_CLOCK,
        host: dict[str, Any] | None = None,
    ) -> None:
        self.scenarios = list(scenarios)
        self.options = options
        self.sink: WindowSink = sink or NullSink()
        self.clock = clock
        self.host = host if host is not None else host_facts()
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self.stop_reason = ""
        self.manifest = Manifest(
            path=options.manifest_path,
            run_id=options.run_id,
            started_ms=self._now_ms(),
            host=self.host,
            ffmpeg=options.ffmpeg.to_json(),
            sample_interval_s=options.sample_interval_s,
        )

    def request_stop(self, reason: str = "stop requested") -> None:
        """Thread- and signal-safe: the current window ends as interrupted."""
        if not self.stop_event.is_set():
            self.stop_reason = reason
        self.stop_event.set()
        self.wake.set()

    def _now_ms(self) -> int:
        return self.clock.time_ns() // 1_000_000

    # -- the run ----------------------------------------------------------------------------------

    def run(self) -> Manifest:
        steps: list[tuple[Scenario, str, int]] = []
        for scenario in self.scenarios:
            if scenario.with_baseline:
                steps.append((scenario, "baseline", 0))
            steps.extend((scenario, "transcode", r) for r in range(scenario.repeats))
        self.manifest.write()
        log.info("run %s: %d windows planned; manifest %s", self.options.run_id, len(steps),
                 self.manifest.path)  # fmt: skip
        failed = False
        status = "failed"
        try:
            for index, (scenario, phase, repeat) in enumerate(steps):
                if self.stop_event.is_set():
                    break
                if phase == "baseline":
                    window = self._baseline(scenario)
                else:
                    if phase == "transcode" and scenario.output == "files":
                        (self.options.media_dir / scenario.name).mkdir(parents=True, exist_ok=True)
                    window = self._transcode(scenario, repeat)
                self.manifest.add_window(window)
                log.info(
                    "window %s/%s/r%d: %s (%.1f s, %d frames)%s",
                    scenario.name, phase, repeat, window["status"], window["duration_s"],
                    window["frames_total"], f": {window['error']}" if window["error"] else "",
                )  # fmt: skip
                if window["status"] == "failed":
                    failed = True
                    if self.options.fail_fast:
                        log.error("--fail-fast: stopping after the failed window")
                        break
                if window["status"] == "interrupted":
                    break
                if index + 1 < len(steps) and scenario.cooldown_s > 0:
                    self._wait(self.clock.monotonic() + scenario.cooldown_s, ())
            if self.stop_event.is_set():
                status = "interrupted"
            else:
                status = "failed" if failed else "completed"
        finally:
            self.manifest.finish(status, self._now_ms())
        return self.manifest

    # -- waiting ----------------------------------------------------------------------------------

    def _wait(self, deadline: float, processes: Sequence[FfmpegProcess]) -> str:
        """'elapsed' at the deadline, 'stopped' on request, 'exited' when a child ended."""
        while True:
            self.wake.clear()
            if self.stop_event.is_set():
                return "stopped"
            for process in processes:
                if process.output_closed and process.running():
                    process.wait(REAP_WAIT_S)  # its pipes closed: it is exiting, reap it
            if any(p.poll() is not None for p in processes):
                return "exited"
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                return "elapsed"
            self.clock.wait(self.wake, remaining)

    # -- windows ----------------------------------------------------------------------------------

    def _window_base(self, scenario: Scenario, phase: str, repeat: int) -> dict[str, Any]:
        return {
            "scenario": scenario.name,
            "phase": phase,
            "repeat": repeat,
            "encoder": scenario.encoder,
            "preset": scenario.preset_label,
            "bitrate": scenario.bitrate,
            "streams": scenario.streams,
            "ladder": scenario.ladder,
            "rungs": [r.to_json() for r in scenario.rungs],
            "fps": scenario.fps_json,
            "input": scenario.input_label,
            "output": scenario.output,
            "realtime": scenario.realtime,
            "stabilization_s": scenario.stabilization_s if phase == "transcode" else 0.0,
        }

    def _baseline(self, scenario: Scenario) -> dict[str, Any]:
        labels = info_labels(self.options.run_id, scenario, "baseline", 0)
        start_ms = self._now_ms()
        self.sink.begin_window(labels, start_ms)
        outcome = self._wait(self.clock.monotonic() + scenario.baseline_duration_s, ())
        end_ms = self._now_ms()
        self.sink.end_window(end_ms)
        interrupted = outcome == "stopped"
        return {
            **self._window_base(scenario, "baseline", 0),
            "start_ms": start_ms,
            "end_ms": end_ms,
            "duration_s": (end_ms - start_ms) / 1000,
            "status": "interrupted" if interrupted else "ok",
            "error": f"interrupted: {self.stop_reason}" if interrupted else None,
            "commands": [],
            "exit_codes": [],
            "frames": {},
            "frames_total": 0,
            "output_pixels": 0,
            "dropped_frames": 0,
            "stderr_tail": "",
        }

    def _transcode(self, scenario: Scenario, repeat: int) -> dict[str, Any]:
        run_id = self.options.run_id
        commands = stream_commands(
            scenario,
            repeat,
            self.options.media_dir,
            self.options.ffmpeg.path,
            self.options.stats_period_s,
        )
        processes = [
            FfmpegProcess(argv, name=f"ffmpeg-s{i}", wake=self.wake)
            for i, argv in enumerate(commands)
        ]
        handles: list[object] = []
        status, error = "ok", None
        start_ms = end_ms = 0
        before: list[ProgressSnapshot | None] = [None] * len(processes)
        after: list[ProgressSnapshot | None] = [None] * len(processes)
        running_at_end = [False] * len(processes)
        graceful = True
        try:
            for i, process in enumerate(processes):
                process.start()
                handles.append(
                    self.sink.track_stream(
                        progress_labels(run_id, scenario, repeat, i),
                        lambda p=process: p.progress,
                    )
                )
            outcome = self._wait(self.clock.monotonic() + scenario.stabilization_s, processes)
            in_window = outcome == "elapsed"
            if in_window:
                start_ms = self._now_ms()
                before = [p.progress for p in processes]
                self.sink.begin_window(info_labels(run_id, scenario, "transcode", repeat), start_ms)
                outcome = self._wait(self.clock.monotonic() + scenario.duration_s, processes)
                end_ms = self._now_ms()
                running_at_end = [p.running() for p in processes]
                after = [p.progress for p in processes]
                self.sink.end_window(end_ms)
            else:
                start_ms = end_ms = self._now_ms()
            if outcome == "stopped":
                graceful = False
                status, error = "interrupted", f"interrupted: {self.stop_reason}"
            elif outcome == "exited":
                status, error = self._early_exit(processes, in_window)
        finally:
            stop_all(processes, self.options.stop_grace_s, graceful=graceful)
        exit_codes = [p.poll() for p in processes]
        if status == "ok":
            for i, process in enumerate(processes):
                code = exit_codes[i]
                if code != 0 and not process.escalated:
                    status = "failed"
                    error = f"stream {i}: ffmpeg exited with code {code}: {process.error_summary()}"
                    break
        frames: dict[str, int] = {}
        dropped = 0
        for i, process in enumerate(processes):
            if not running_at_end[i]:
                after[i] = process.progress  # it ended on its own: its last report is final
            counts = window_frames(scenario, before[i], after[i], process.final_frames)
            for rung, count in zip(scenario.rungs, counts, strict=True):
                frames[f"{i}:{rung.name}"] = count
            end, begin = after[i], before[i]
            if end is not None:
                dropped += end.drop_frames - (begin.drop_frames if begin is not None else 0)
            finals = process.final_frames
            last = process.progress
            self.sink.end_stream(
                handles[i] if i < len(handles) else None,
                [finals.get(k, last.frame if last else 0) for k in range(len(scenario.rungs))],
            )
        pixels = sum(
            rung.width * rung.height * frames[f"{i}:{rung.name}"]
            for i in range(len(processes))
            for rung in scenario.rungs
        )
        return {
            **self._window_base(scenario, "transcode", repeat),
            "start_ms": start_ms,
            "end_ms": end_ms,
            "duration_s": (end_ms - start_ms) / 1000,
            "status": status,
            "error": error,
            "commands": [list(c) for c in commands],
            "exit_codes": exit_codes,
            "frames": frames,
            "frames_total": sum(frames.values()),
            "output_pixels": pixels,
            "dropped_frames": max(0, dropped),
            "stderr_tail": stderr_tail(processes),
        }

    @staticmethod
    def _early_exit(processes: Sequence[FfmpegProcess], in_window: bool) -> tuple[str, str | None]:
        for i, process in enumerate(processes):
            code = process.poll()
            if code is not None and code != 0:
                return (
                    "failed",
                    f"stream {i}: ffmpeg exited with code {code}: {process.error_summary()}",
                )
        if not in_window:
            return "failed", (
                "ffmpeg finished during stabilization: the input is shorter than "
                "stabilization + duration; use a longer input or shorter durations"
            )
        # The window ends where the first stream finished; the manifest's end_ms says so.
        return "ok", None
