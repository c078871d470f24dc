"""Runs scenarios window by window and records them in the manifest.

The windows run in the order ``schedule.Schedule`` gives (``--order``), as many repeats as
each scenario's policy asks for (``--repeats``). A transcode window: start ``streams`` ffmpeg
processes, let them run ``stabilization`` seconds, then measure ``duration`` seconds (the
window), then stop them (``q``). Frames are counted inside the window only: ffmpeg's
``-progress`` count of the first output at the window's start and end edges, each interpolated
between the reports around the edge (``progress.ProgressEdge``), plus each other output's
difference to the first in ffmpeg's final per-output statistics (every rung is fed by one
split, so they differ only if an encoder lost frames).

At both edges of every window, baselines included, the CPU time of the window's ffmpeg
processes, of the host and of the runner's cgroup is read (``accounting``); the window record
carries the difference and the sink pushes it stamped at the window's end.

Quality (when the scenario asks for it) is measured after the window has ended and ffmpeg has
exited, before the cooldown: it is never inside a window, so it never counts as transcoding
energy. The quality samples are pushed with the window's end as timestamp.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from base_monitoring_client.clock import SYSTEM_CLOCK, Clock

from .accounting import AccountingError, CpuAccountant, CpuReading
from .contract import Accounting, OutputQuality, RunManifest, SourceInfo, WindowRecord
from .errors import ManifestWriteError, QualityError
from .ffmpeg import FfmpegInfo, measured_path, stream_commands
from .manifest import Manifest, host_facts
from .policy import DEFAULT_ORDER, Order
from .process import FfmpegProcess, stop_all
from .progress import ProgressEdge
from .quality import (
    COMPARE_BASE_TIMEOUT_S,
    COMPARE_TIMEOUT_S_PER_FRAME,
    QualityTool,
    Reference,
    compare_command,
    read_scores,
)
from .scenario import Scenario
from .schedule import Schedule
from .source import ffprobe_next_to, lavfi_source, probe_file

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
    def record_quality(
        self, window_labels: Mapping[str, str], outputs: Sequence[OutputQuality], ts_ms: int
    ) -> None: ...
    def record_accounting(
        self, window_labels: Mapping[str, str], accounting: Accounting, ts_ms: int
    ) -> None: ...


class NullSink:
    def begin_window(self, labels: Mapping[str, str], start_ms: int) -> None:
        pass

    def end_window(self, end_ms: int) -> None:
        pass

    def track_stream(self, rung_labels: Sequence[Mapping[str, str]], source: Any) -> object:
        return None

    def end_stream(self, handle: object, final_frames: Sequence[int] | None) -> None:
        pass

    def record_quality(
        self, window_labels: Mapping[str, str], outputs: Sequence[OutputQuality], ts_ms: int
    ) -> None:
        pass

    def record_accounting(
        self, window_labels: Mapping[str, str], accounting: Accounting, ts_ms: int
    ) -> None:
        pass


@dataclass(frozen=True)
class RunOptions:
    run_id: str
    output_dir: Path
    ffmpeg: FfmpegInfo
    sample_interval_s: float = 0.1
    stop_grace_s: float = 5.0
    fail_fast: bool = False
    quality: QualityTool | None = None  # the ffmpeg that measures quality (None: not asked)
    instance: str = ""  # the instance label the runner pushes with (default: the hostname)
    order: Order = DEFAULT_ORDER  # the order windows run in (--order)

    @property
    def manifest_path(self) -> Path:
        return self.output_dir / f"{self.run_id}.json"

    @property
    def media_dir(self) -> Path:
        return self.output_dir / self.run_id

    @property
    def stats_period_s(self) -> float:
        return min(1.0, max(0.05, self.sample_interval_s))


def info_labels(
    run_id: str, scenario: Scenario, phase: str, repeat: int, fps: float | None = None
) -> dict[str, str]:
    """``ffmpeg_scenario_info``'s labels; ``fps`` is the source frame rate (default: the
    scenario's, which is the generated source's rate)."""
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
        "fps": f"{fps if fps is not None else scenario.fps:g}",
        "rate_control": scenario.rate_control,
        # empty (so no label) with rate_control=bitrate
        "quality_value": "" if scenario.quality_value is None else f"{scenario.quality_value:g}",
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
    scenario: Scenario, start_frames: float, end_frames: float, finals: Mapping[int, int]
) -> list[int]:
    """Frames each rung encoded inside the window (see the module docstring), from the first
    output's count at the window's start and end edges."""
    first_final = finals.get(0)
    counts = []
    for k in range(len(scenario.rungs)):
        final = finals.get(k)
        offset = final - first_final if final is not None and first_final is not None else 0
        counts.append(max(0, round(end_frames - start_frames + offset)))
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
        accountant: CpuAccountant | None = None,
    ) -> None:
        self.scenarios = list(scenarios)
        self.options = options
        self.sink: WindowSink = sink or NullSink()
        self.clock = clock
        self.host = host if host is not None else host_facts(instance=options.instance)
        self.accountant = accountant or CpuAccountant.detect()
        self.schedule = Schedule(self.scenarios, options.order)
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self.stop_reason = ""
        self._sources: dict[str, SourceInfo] = {}
        self.manifest = Manifest(
            options.manifest_path,
            RunManifest(
                run_id=options.run_id,
                started_ms=self._now_ms(),
                host=self.host,
                ffmpeg=options.ffmpeg.to_json(),
                sample_interval_s=options.sample_interval_s,
                order=self.schedule.kind,
                seed=self.schedule.seed,
            ),
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
        self.manifest.write()
        log.info(
            "run %s: order %s%s; repeats %s; accounting reads %s; manifest %s",
            self.options.run_id, self.schedule.kind,
            f" (seed {self.schedule.seed})" if self.schedule.seed is not None else "",
            ", ".join(f"{s.name} {s.repeat_policy.text}"
                      + ("" if s.repeat_policy.auto else f" {s.repeats}") for s in self.scenarios),
            self.accountant.describe(), self.manifest.path,
        )  # fmt: skip
        failed = False
        status = "failed"
        steps = self.schedule.steps()
        error: str | None = None
        try:
            step = next(steps, None)
            while step is not None and not self.stop_event.is_set():
                scenario, phase, repeat = step.scenario, step.phase, step.repeat
                window = self._window(scenario, phase, repeat)
                self.schedule.record(window)
                self.manifest.set_repeats(self.schedule.records())
                self.manifest.add_window(window)
                log.info(
                    "window %s/%s/r%d: %s (%.1f s, %d frames)%s",
                    scenario.name, phase, repeat, window.status, window.duration_s,
                    window.frames_total, f": {window.error}" if window.error else "",
                )  # fmt: skip
                if window.quality_error:
                    log.warning("window %s/r%d: quality: %s", scenario.name, repeat,
                                window.quality_error)  # fmt: skip
                if window.status == "failed":
                    failed = True
                    if self.options.fail_fast:
                        log.error("--fail-fast: stopping after the failed window")
                        break
                if window.status == "interrupted":
                    break
                step = next(steps, None)  # decided now that this window is recorded
                if step is not None and scenario.cooldown_s > 0:
                    self._wait(self.clock.monotonic() + scenario.cooldown_s, ())
            if self.stop_event.is_set():
                status = "interrupted"
            else:
                status = "failed" if failed else "completed"
        except (ManifestWriteError, OSError) as exc:
            # A full disk or a directory gone read-only: the run ends, what is finished stays.
            error = str(exc) if isinstance(exc, ManifestWriteError) else f"{exc.strerror}: {exc}"
            log.error("run %s stopped: %s", self.options.run_id, error)
        finally:
            self.manifest.set_repeats(self.schedule.records(finished=True))
            self.manifest.finish(status, self._now_ms(), error)
            self.accountant.close()
        return self.manifest

    def _window(self, scenario: Scenario, phase: str, repeat: int) -> WindowRecord:
        if phase == "baseline":
            return self._baseline(scenario)
        if scenario.output == "files":
            (self.options.media_dir / scenario.name).mkdir(parents=True, exist_ok=True)
        return self._transcode(scenario, repeat)

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

    # -- the source -------------------------------------------------------------------------------

    def source(self, scenario: Scenario) -> SourceInfo:
        """What the scenario reads (hashed and probed once per file)."""
        if scenario.is_testsrc:
            return lavfi_source(scenario.lavfi_graph, scenario.width, scenario.height, scenario.fps)
        cached = self._sources.get(scenario.input)
        if cached is None:
            try:
                cached = probe_file(Path(scenario.input), ffprobe_next_to(self.options.ffmpeg.path))
            except OSError as exc:
                log.warning("cannot read %s to describe it (%s)", scenario.input, exc)
                cached = SourceInfo(kind="file", path=scenario.input)
            self._sources[scenario.input] = cached
        return cached

    def _source_fps(self, scenario: Scenario) -> float:
        return self.source(scenario).fps or scenario.fps

    # -- windows ----------------------------------------------------------------------------------

    def _window_base(self, scenario: Scenario, phase: str, repeat: int) -> dict[str, Any]:
        return {
            "run_id": self.options.run_id,
            "instance": str(self.host.get("instance") or ""),
            "scenario": scenario.name,
            "phase": phase,
            "repeat": repeat,
            "encoder": scenario.encoder,
            "preset": scenario.preset_label,
            "bitrate": scenario.bitrate,
            "rate_control": scenario.rate_control,
            "quality_value": scenario.quality_value,
            "vmaf_subsample": scenario.vmaf_subsample,
            "streams": scenario.streams,
            "ladder": scenario.ladder,
            "rungs": scenario.rungs,
            "fps": self._source_fps(scenario),
            "input": scenario.input_label,
            "output": scenario.output,
            "realtime": scenario.realtime,
            "stabilization_s": scenario.stabilization_s if phase == "transcode" else 0.0,
            "source": self.source(scenario),
        }

    def _info_labels(self, scenario: Scenario, phase: str, repeat: int) -> dict[str, str]:
        fps = self._source_fps(scenario)
        return info_labels(self.options.run_id, scenario, phase, repeat, fps)

    def _accounting(
        self,
        scenario: Scenario,
        phase: str,
        repeat: int,
        edges: tuple[CpuReading, CpuReading],
        end_ms: int,
    ) -> Accounting | None:
        """The window's CPU time from its edge readings, pushed at ``end_ms``; None (logged
        with the reason) when a counter could not be read."""
        try:
            accounting = self.accountant.between(*edges)
        except AccountingError as exc:
            log.warning("window %s/%s/r%d: no accounting: %s", scenario.name, phase, repeat, exc)
            return None
        labels = {
            "run_id": self.options.run_id,
            "scenario": scenario.name,
            "phase": phase,
            "repeat": str(repeat),
        }
        self.sink.record_accounting(labels, accounting, end_ms)
        return accounting

    def _baseline(self, scenario: Scenario) -> WindowRecord:
        labels = self._info_labels(scenario, "baseline", 0)
        start_ms = self._now_ms()
        start_cpu = self.accountant.read(())
        self.sink.begin_window(labels, start_ms)
        outcome = self._wait(self.clock.monotonic() + scenario.baseline_duration_s, ())
        end_ms = self._now_ms()
        end_cpu = self.accountant.read(())
        self.sink.end_window(end_ms)
        interrupted = outcome == "stopped"
        end_ms = max(end_ms, start_ms + 1)
        return WindowRecord(
            **self._window_base(scenario, "baseline", 0),
            start_ms=start_ms,
            end_ms=end_ms,
            status="interrupted" if interrupted else "ok",
            error=f"interrupted: {self.stop_reason}" if interrupted else None,
            accounting=self._accounting(scenario, "baseline", 0, (start_cpu, end_cpu), end_ms),
        )

    def _transcode(self, scenario: Scenario, repeat: int) -> WindowRecord:
        with contextlib.ExitStack() as stack:
            quality_dir = None
            if scenario.quality and scenario.output == "null":
                # The measured outputs live here only while quality is measured.
                quality_dir = Path(
                    stack.enter_context(tempfile.TemporaryDirectory(prefix="wattpush-quality-"))
                )
            return self._transcode_in(scenario, repeat, quality_dir)

    def _transcode_in(
        self, scenario: Scenario, repeat: int, quality_dir: Path | None
    ) -> WindowRecord:
        run_id = self.options.run_id
        commands = stream_commands(
            scenario,
            repeat,
            self.options.media_dir,
            self.options.ffmpeg.path,
            self.options.stats_period_s,
            quality_dir=quality_dir,
        )
        processes = [
            FfmpegProcess(argv, name=f"ffmpeg-s{i}", wake=self.wake, clock=self.clock)
            for i, argv in enumerate(commands)
        ]
        handles: list[object] = []
        status, error = "ok", None
        start_ms = end_ms = 0
        edges: list[tuple[ProgressEdge, ProgressEdge]] = []
        cpu: tuple[CpuReading, CpuReading] | None = None
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
                start_ms, start_s = self._now_ms(), self.clock.monotonic()
                start_cpu = self.accountant.read(processes)
                starts = [p.edge(start_s) for p in processes]
                self.sink.begin_window(self._info_labels(scenario, "transcode", repeat), start_ms)
                outcome = self._wait(self.clock.monotonic() + scenario.duration_s, processes)
                end_ms, end_s = self._now_ms(), self.clock.monotonic()
                cpu = (start_cpu, self.accountant.read(processes))
                edges = list(zip(starts, [p.edge(end_s) for p in processes], strict=True))
                # Close at once: a tick stamped after end_ms would put the window's last
                # sample past its end.
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
        end_ms = max(end_ms, start_ms + 1)
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
            # The processes have stopped and their readers are joined: every report around
            # the end edge (the final one included) is in.
            if i < len(edges):
                start_edge, end_edge = edges[i]
                counts = window_frames(
                    scenario, start_edge.frames, end_edge.frames, process.final_frames
                )
                dropped += round(end_edge.dropped_frames - start_edge.dropped_frames)
            else:
                counts = [0] * len(scenario.rungs)  # no window: it failed in stabilization
            for rung, count in zip(scenario.rungs, counts, strict=True):
                frames[f"{i}:{rung.name}"] = count
            finals = process.final_frames
            last = process.progress
            self.sink.end_stream(
                handles[i] if i < len(handles) else None,
                [finals.get(k, last.frame if last else 0) for k in range(len(scenario.rungs))],
            )
        accounting = self._accounting(scenario, "transcode", repeat, cpu, end_ms) if cpu else None
        pixels = sum(
            rung.width * rung.height * frames[f"{i}:{rung.name}"]
            for i in range(len(processes))
            for rung in scenario.rungs
        )
        quality: tuple[OutputQuality, ...] = ()
        quality_error = None
        if scenario.quality:
            # After end_ms and after ffmpeg exited: outside the window by construction.
            quality, quality_error = self._measure_quality(
                scenario, repeat, status, processes[0].final_frames, quality_dir
            )
            if quality:
                labels = {"run_id": run_id, "scenario": scenario.name, "repeat": str(repeat)}
                self.sink.record_quality(labels, quality, end_ms)
        return WindowRecord(
            **self._window_base(scenario, "transcode", repeat),
            start_ms=start_ms,
            end_ms=end_ms,
            status=status,
            error=error,
            commands=tuple(tuple(c) for c in commands),
            exit_codes=tuple(exit_codes),
            frames=frames,
            frames_total=sum(frames.values()),
            output_pixels=pixels,
            dropped_frames=max(0, dropped),
            stderr_tail=stderr_tail(processes),
            quality=quality,
            quality_error=quality_error,
            accounting=accounting,
        )

    # -- quality ----------------------------------------------------------------------------------

    def _measure_quality(
        self,
        scenario: Scenario,
        repeat: int,
        status: str,
        final_frames: Mapping[int, int],
        quality_dir: Path | None,
    ) -> tuple[tuple[OutputQuality, ...], str | None]:
        """Stream 0's outputs against the source; (what was measured, the error if any)."""
        if status != "ok":
            return (), f"not measured: window status {status}"
        tool = self.options.quality
        if tool is None:
            return (), "not measured: no quality ffmpeg was chosen (RunOptions.quality)"
        if scenario.is_testsrc:
            log.warning("%s: quality on testsrc2 says little (it compresses trivially); "
                        "use real content, e.g. --input bbb", scenario.name)  # fmt: skip
        source = self.source(scenario)
        reference = Reference(
            source,
            width=source.width or scenario.width,
            height=source.height or scenario.height,
            fps=source.fps or scenario.fps,
        )
        outputs: list[OutputQuality] = []
        started = self.clock.monotonic()
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            for k, rung in enumerate(scenario.rungs):
                path = measured_path(
                    scenario, rung, 0, repeat, self.options.media_dir, quality_dir=quality_dir
                )
                frames = final_frames.get(k)
                if path is None or not path.is_file():
                    raise QualityError(f"{rung.key}: the encoded file {path} is missing")
                if not frames:
                    raise QualityError(f"{rung.key}: ffmpeg reported no frame count")
                scores = self._compare(
                    tool,
                    path,
                    reference,
                    frames,
                    scenario.quality,
                    vmaf_subsample=scenario.vmaf_subsample,
                )
                size = path.stat().st_size
                duration = frames / reference.fps
                outputs.append(
                    OutputQuality(
                        rung=rung.key,
                        name=rung.name,
                        stream=0,
                        target_bitrate_bps=rung.target_bitrate_bps,
                        achieved_bitrate_bps=size * 8 / duration,
                        size_bytes=size,
                        duration_s=duration,
                        frames=frames,
                        scores=scores,
                    )
                )
        except QualityError as exc:
            return tuple(outputs), str(exc)
        finally:
            cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu_s = (cpu_after.ru_utime - cpu_before.ru_utime) + (
                cpu_after.ru_stime - cpu_before.ru_stime
            )
            wall_s = self.clock.monotonic() - started
            compared = sum(o.frames or 0 for o in outputs)
            log.info(
                "quality %s/r%d (%s): %d frames in %.2f s wall, %.2f s CPU: %.0f frames/s per "
                "core", scenario.name, repeat, ",".join(scenario.quality), compared, wall_s,
                cpu_s, compared / cpu_s if cpu_s > 0 else 0.0,
            )  # fmt: skip
        return tuple(outputs), None

    def _compare(
        self,
        tool: QualityTool,
        output: Path,
        reference: Reference,
        frames: int,
        metrics: Sequence[str],
        *,
        vmaf_subsample: int = 1,
    ) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="wattpush-quality-logs-") as logs:
            argv = compare_command(
                tool, output, reference, frames, metrics, vmaf_subsample=vmaf_subsample
            )
            process = FfmpegProcess(argv, name="ffmpeg-quality", wake=self.wake, cwd=Path(logs))
            process.start()
            timeout_s = COMPARE_BASE_TIMEOUT_S + COMPARE_TIMEOUT_S_PER_FRAME * frames
            outcome = self._wait(self.clock.monotonic() + timeout_s, [process])
            stop_all([process], self.options.stop_grace_s, graceful=outcome == "exited")
            if outcome == "stopped":
                raise QualityError(f"interrupted: {self.stop_reason}")
            if outcome == "elapsed":
                raise QualityError(
                    f"{output.name}: {tool.path} did not finish in {timeout_s:g} s; stopped it"
                )
            code = process.poll()
            if code != 0:
                raise QualityError(
                    f"{output.name}: {tool.path} exited with code {code}: {process.error_summary()}"
                )
            return read_scores(Path(logs), metrics, frames, vmaf_subsample=vmaf_subsample)

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
