"""Probes of a target-quality search: encode the input (or evenly spaced samples of a long
one) at one setting, then score the encode against the source.

A probe is measured for quality only. It runs offline (as fast as the machine can), never
inside an energy window: the search runs all its probes before the first window opens. Each
probe records its score, the achieved bitrate, and the wall seconds its encodes and its quality
measurement took. The encode uses the runner's ffmpeg with the scenario's own filter (scale to
the family's resolution, yuv420p) and encoder options, so the energy windows encode what was
probed; the score follows the runner's quality convention (``quality.py``: upscaled bicubic to
the source size, frames paired by index), with libvmaf on every core.
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from base_monitoring_client.clock import SYSTEM_CLOCK, Clock

from .contract import Probe, Rung, SourceInfo
from .encoders import preset_args, rate_control_args
from .errors import QualityError, RunnerError
from .process import FfmpegProcess, stop_all
from .quality import (
    COMPARE_BASE_TIMEOUT_S,
    COMPARE_TIMEOUT_S_PER_FRAME,
    QualityTool,
    Reference,
    compare_command,
    read_scores,
)
from .search import format_value

log = logging.getLogger(__name__)

# Samples that would cover this share of the input or more: probe the whole input instead
# (as exact, and hardly slower).
WHOLE_INPUT_SHARE = 0.5
# An encode gets this long plus one second per frame before it is stopped (a safety net).
ENCODE_BASE_TIMEOUT_S = 120.0
ENCODE_TIMEOUT_S_PER_FRAME = 1.0
PROBE_TIMEOUT_S = 30.0
_LOGLEVEL = "level+verbose"  # ffmpeg prints the per-output frame counts at verbose level


class ProbeError(RunnerError):
    """One probe could not be measured; the search records it and stops that family."""


@dataclass(frozen=True)
class Segment:
    """What one probe encode reads: the whole input (``start_s`` None) or a sample."""

    start_s: float | None = None
    duration_s: float | None = None

    @property
    def text(self) -> str:
        if self.start_s is None:
            return "the whole input"
        return f"{self.duration_s:g} s from {self.start_s:g} s"


def plan_segments(
    input_duration_s: float | None, samples: int, sample_duration_s: float
) -> tuple[Segment, ...]:
    """Evenly spaced samples (each centred in one of ``samples`` equal parts of the input), or
    the whole input when its length is unknown or the samples would cover most of it."""
    if (
        input_duration_s is None
        or not math.isfinite(input_duration_s)
        or samples * sample_duration_s >= WHOLE_INPUT_SHARE * input_duration_s
    ):
        return (Segment(),)
    part = input_duration_s / samples
    return tuple(
        Segment(round(part * (k + 0.5) - sample_duration_s / 2, 3), sample_duration_s)
        for k in range(samples)
    )


def probe_duration(path: str, ffprobe: str | None) -> float | None:
    """The input's duration in seconds (container, else first video stream); None unknown."""
    if ffprobe is None:
        return None
    try:
        done = subprocess.run(
            [ffprobe, "-v", "error", "-show_entries", "format=duration:stream=duration",
             "-select_streams", "v:0", "-of", "json", path],
            capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False,
        )  # fmt: skip
        doc = json.loads(done.stdout) if done.returncode == 0 else {}
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    candidates = [doc.get("format", {}).get("duration")]
    candidates += [stream.get("duration") for stream in doc.get("streams", [])]
    for raw in candidates:
        try:
            value = float(raw)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value) and value > 0:
            return value
    return None


@dataclass(frozen=True)
class Family:
    """What a search varies the setting of: encoder + preset at one resolution, one rate
    control."""

    encoder: str
    preset: str | None
    width: int
    height: int
    rate_control: str

    @property
    def name(self) -> str:
        """``libx264:veryfast@640x360/crf``: how the search names it in the manifest."""
        return f"{self.encoder}:{self.preset or 'default'}@{self.resolution}/{self.rate_control}"

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}"

    def rung(self, value: float) -> Rung:
        """The output at one setting: a CRF/CQ value, or a bitrate in bits per second."""
        if self.rate_control == "bitrate":
            return Rung(f"{self.height}p", self.width, self.height, round(value))
        return Rung(f"{self.height}p", self.width, self.height, 0, self.rate_control, value)


def encode_command(
    ffmpeg: str, source: str, family: Family, value: float, *, segment: Segment, output: Path
) -> list[str]:
    """One probe encode: the scenario's filter and encoder options, the input read once."""
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-nostats", "-loglevel", _LOGLEVEL, "-y"]
    if segment.start_s is not None:
        argv += ["-ss", f"{segment.start_s:.3f}", "-t", f"{segment.duration_s:.3f}"]
    argv += [
        "-i", source, "-an", "-sn", "-dn",
        "-filter_complex", f"[0:v:0]scale={family.width}:{family.height},format=yuv420p[o0]",
        "-map", "[o0]", "-c:v", family.encoder, *preset_args(family.encoder, family.preset),
        *rate_control_args(family.encoder, family.rung(value)),
        "-fps_mode", "passthrough", "-f", "matroska", str(output),
    ]  # fmt: skip
    return argv


@dataclass(frozen=True)
class ProbeSettings:
    """How every probe of a search is measured."""

    ffmpeg: str  # the encoding ffmpeg (the energy windows' one)
    quality: QualityTool  # the ffmpeg that scores (libvmaf for vmaf)
    metric: str
    source: SourceInfo  # a file, probed: fps, width and height known
    segments: tuple[Segment, ...] = (Segment(),)
    vmaf_subsample: int = 1
    stop_grace_s: float = 5.0


class Prober:
    """Runs probes one at a time; ``request_stop`` (from a signal) ends the current one."""

    def __init__(self, settings: ProbeSettings, *, clock: Clock = SYSTEM_CLOCK) -> None:
        source = settings.source
        if source.fps is None or source.width is None or source.height is None:
            raise ProbeError(
                f"{source.path}: ffprobe could not read its frame rate and size; give a media "
                "file ffprobe can read"
            )
        self.settings = settings
        self.clock = clock
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self.stop_reason = ""

    def request_stop(self, reason: str) -> None:
        if not self.stop_event.is_set():
            self.stop_reason = reason
        self.stop_event.set()
        self.wake.set()

    @property
    def stopped(self) -> bool:
        return self.stop_event.is_set()

    def probe(self, family: Family, value: float) -> Probe:
        """Encode and score every segment at ``value``; a failure is a Probe with ``error``."""
        encode_s = quality_s = 0.0
        scored = frames_total = size_total = 0
        weighted = 0.0
        try:
            with tempfile.TemporaryDirectory(prefix="wattpush-probe-") as tmp:
                for k, segment in enumerate(self.settings.segments):
                    output = Path(tmp) / f"probe-{k}.mkv"
                    started = self.clock.monotonic()
                    frames = self._encode(family, value, segment, output)
                    encode_s += self.clock.monotonic() - started
                    started = self.clock.monotonic()
                    mean, count = self._score(output, segment, frames, Path(tmp))
                    quality_s += self.clock.monotonic() - started
                    weighted += mean * count
                    scored += count
                    frames_total += frames
                    size_total += output.stat().st_size
        except (ProbeError, QualityError, OSError) as exc:
            return Probe(value, None, None, encode_s, quality_s, error=str(exc))
        fps = self.settings.source.fps or 1.0
        return Probe(
            value=value,
            score=weighted / scored,
            bitrate_bps=size_total * 8 / (frames_total / fps),
            encode_s=encode_s,
            quality_s=quality_s,
        )

    # -- the two steps ----------------------------------------------------------------------

    def _encode(self, family: Family, value: float, segment: Segment, output: Path) -> int:
        argv = encode_command(
            self.settings.ffmpeg,
            self.settings.source.path,
            family,
            value,
            segment=segment,
            output=output,
        )
        frames_planned = (segment.duration_s or self._input_seconds()) * (
            self.settings.source.fps or 1.0
        )
        timeout_s = ENCODE_BASE_TIMEOUT_S + ENCODE_TIMEOUT_S_PER_FRAME * frames_planned
        process = self._run(argv, "ffmpeg-probe", timeout_s, output.parent)
        frames = process.final_frames.get(0)
        if not frames:
            raise ProbeError(
                f"{format_value(family.rate_control, value)}: ffmpeg reported no frame count "
                f"for {segment.text}"
            )
        return frames

    def _score(self, output: Path, segment: Segment, frames: int, tmp: Path) -> tuple[float, int]:
        """(mean score, frames scored) of one encode."""
        settings = self.settings
        source = settings.source
        assert source.fps is not None and source.width is not None and source.height is not None
        reference = Reference(source, source.width, source.height, source.fps, segment.start_s)
        logs = tmp / f"logs-{output.stem}"
        logs.mkdir()
        metrics = [settings.metric]
        argv = compare_command(
            settings.quality,
            output,
            reference,
            frames,
            metrics,
            vmaf_subsample=settings.vmaf_subsample,
        )
        timeout_s = COMPARE_BASE_TIMEOUT_S + COMPARE_TIMEOUT_S_PER_FRAME * frames
        self._run(argv, "ffmpeg-probe-quality", timeout_s, logs)
        subsample = settings.vmaf_subsample if settings.metric == "vmaf" else 1
        scores = read_scores(logs, metrics, frames, vmaf_subsample=subsample)
        return scores[settings.metric].mean, math.ceil(frames / subsample)

    def _run(self, argv: Sequence[str], name: str, timeout_s: float, cwd: Path) -> FfmpegProcess:
        """Run one ffmpeg to its end; ProbeError when it fails, overruns or is stopped."""
        process = FfmpegProcess(argv, name=name, wake=self.wake, cwd=cwd)
        process.start()
        deadline = self.clock.monotonic() + timeout_s
        outcome = "exited"
        while process.poll() is None:
            self.wake.clear()
            if self.stop_event.is_set():
                outcome = "stopped"
                break
            if process.output_closed:
                process.wait(2.0)  # its pipes closed: it is exiting, reap it
                continue
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                outcome = "elapsed"
                break
            self.clock.wait(self.wake, remaining)
        stop_all([process], self.settings.stop_grace_s, graceful=False)
        if outcome == "stopped":
            raise ProbeError(f"interrupted: {self.stop_reason}")
        if outcome == "elapsed":
            raise ProbeError(f"{argv[0]} did not finish in {timeout_s:g} s; stopped it")
        code = process.poll()
        if code != 0:
            raise ProbeError(f"{argv[0]} exited with code {code}: {process.error_summary()}")
        return process

    def _input_seconds(self) -> float:
        source = self.settings.source
        if source.frames and source.fps:
            return source.frames / source.fps
        return 3600.0  # unknown: the timeout only guards against a hung ffmpeg
