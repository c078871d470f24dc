"""What the runner writes and the advisor reads: metric and label names, bitrates, ladders and
the manifest's window record.

This module is the one place these are defined. The advisor imports it; the monitoring
framework must not (it knows nothing of scenarios). It does no I/O and imports nothing heavy.

Manifest ``schema_version`` history:
- 1: windows with timing, frames, output pixels, commands.
- 2: adds each window's ``source`` (the input: path, sha256, size, frame rate) and ``quality``
  (per encoded output: achieved bitrate, file size and per-metric mean / 5th percentile).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from base_monitoring_client.config import InvalidValue

SCHEMA_VERSION = 2
SUPPORTED_SCHEMA_VERSIONS = (1, 2)

# -- metric and label names ------------------------------------------------------------------

INFO_METRIC = "ffmpeg_scenario_info"
FRAMES_METRIC = "ffmpeg_frames_total"
FPS_METRIC = "ffmpeg_fps"
SPEED_METRIC = "ffmpeg_speed_ratio"
QUALITY_METRIC = "ffmpeg_output_quality"
OUTPUT_BITRATE_METRIC = "ffmpeg_output_bitrate_bits_per_second"

# ffmpeg_scenario_info's labels; ``fps`` is the source frame rate (schema 2 and later).
INFO_LABELS = (
    "run_id",
    "scenario",
    "phase",
    "encoder",
    "preset",
    "ladder",
    "streams",
    "bitrate",
    "repeat",
    "fps",
)
PROGRESS_LABELS = ("run_id", "scenario", "repeat", "stream", "output")
QUALITY_LABELS = ("run_id", "scenario", "repeat", "rung", "metric")
OUTPUT_BITRATE_LABELS = ("run_id", "scenario", "repeat", "rung")

# The ``metric`` label values. PSNR is in dB (luma-weighted average of Y, U, V as ffmpeg's psnr
# filter reports it), SSIM in 0..1 (ffmpeg's "All"), VMAF in 0..100.
QUALITY_METRICS = ("vmaf", "psnr", "ssim")

PHASES = ("baseline", "transcode")
WINDOW_STATUSES = ("ok", "failed", "interrupted")


class ContractError(ValueError):
    """A record does not follow this contract; the message names the field."""


# -- bitrates and ladders --------------------------------------------------------------------

_BITRATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*$")
_BITRATE_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3}
_RUNG_KEY_RE = re.compile(r"^(\d+)x(\d+)@(\S+)$")


def parse_bitrate(value: Any) -> int:
    """``2M``, ``800k``, ``1500000`` (bits per second) -> int bits per second.

    Raises ``InvalidValue`` (a ValueError) with the fix for anything else, and for values
    below 1k, which are almost always a unit mistake.
    """
    if isinstance(value, bool):
        raise InvalidValue("expected a bitrate such as 2M, 800k or 1500000")
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidValue("expected a bitrate such as 2M, 800k or 1500000")
    match = _BITRATE_RE.match(value)
    if not match:
        raise InvalidValue(f"{value!r} is not a bitrate; write it like 2M, 800k or 1500000")
    bps = round(float(match.group(1)) * _BITRATE_UNITS[match.group(2).lower()])
    if bps < 1000:
        raise InvalidValue(f"{value!r} is below 1k; bitrates are bits per second, e.g. 800k")
    return bps


def format_bitrate(bps: int) -> str:
    """The canonical ffmpeg-style string: 2000000 -> 2M, 800000 -> 800k."""
    if bps % 1_000_000 == 0:
        return f"{bps // 1_000_000}M"
    if bps % 1000 == 0:
        return f"{bps // 1000}k"
    return str(bps)


@dataclass(frozen=True)
class Rung:
    """One output of a ladder."""

    name: str
    width: int
    height: int
    bitrate_bps: int

    @property
    def bitrate(self) -> str:
        return format_bitrate(self.bitrate_bps)

    @property
    def key(self) -> str:
        """``WxH@BITRATE``: the ``rung`` label and one part of the ``ladder`` label."""
        return f"{self.width}x{self.height}@{self.bitrate}"

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "width": self.width,
            "height": self.height,
            "bitrate": self.bitrate,
        }

    @classmethod
    def from_json(cls, raw: Any, where: str) -> Rung:
        if not isinstance(raw, Mapping):
            raise ContractError(f"{where}: expected an object with width, height and bitrate")
        width = _int(raw, "width", where)
        height = _int(raw, "height", where)
        try:
            bps = parse_bitrate(raw.get("bitrate"))
        except InvalidValue as exc:
            raise ContractError(f"{where}.bitrate: {exc}") from None
        return cls(str(raw.get("name") or f"{height}p"), width, height, bps)


def sort_rungs(rungs: Sequence[Rung]) -> tuple[Rung, ...]:
    """Highest first: the ladder key order and the order of ffmpeg's outputs."""
    return tuple(sorted(rungs, key=lambda r: (-r.height, -r.width, -r.bitrate_bps)))


def ladder_key(rungs: Sequence[Rung]) -> str:
    """The ``ladder`` label: rung keys, highest first, joined with ``+``."""
    return "+".join(r.key for r in sort_rungs(rungs))


def parse_ladder(key: str) -> tuple[Rung, ...]:
    """Rungs of a ladder key (names synthesised as ``<height>p``); () when unparseable."""
    rungs: list[Rung] = []
    for part in key.split("+"):
        match = _RUNG_KEY_RE.match(part.strip())
        if not match:
            return ()
        width, height, bitrate = match.groups()
        try:
            bps = parse_bitrate(bitrate)
        except InvalidValue:
            return ()
        rungs.append(Rung(f"{height}p", int(width), int(height), bps))
    return sort_rungs(rungs)


# -- the window record -----------------------------------------------------------------------


@dataclass(frozen=True)
class SourceInfo:
    """The input a window encoded: a file (with its sha256) or a lavfi graph (sha256 None)."""

    kind: str  # "file" or "lavfi"
    path: str  # the file path, or the lavfi graph
    sha256: str | None = None
    size_bytes: int | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    frames: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.path,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "fps": self.fps,
            "width": self.width,
            "height": self.height,
            "frames": self.frames,
        }

    @classmethod
    def from_json(cls, raw: Any, where: str) -> SourceInfo:
        if not isinstance(raw, Mapping):
            raise ContractError(f"{where}: expected an object")
        return cls(
            kind=str(_req(raw, "kind", where)),
            path=str(_req(raw, "path", where)),
            sha256=_opt_str(raw.get("sha256")),
            size_bytes=_opt_int(raw, "size_bytes", where),
            fps=_opt_float(raw, "fps", where),
            width=_opt_int(raw, "width", where),
            height=_opt_int(raw, "height", where),
            frames=_opt_int(raw, "frames", where),
        )


@dataclass(frozen=True)
class MetricScore:
    """One metric over the compared frames: the mean and the 5th percentile (the bad frames)."""

    mean: float
    p5: float

    def to_json(self) -> dict[str, float]:
        return {"mean": self.mean, "p5": self.p5}


@dataclass(frozen=True)
class OutputQuality:
    """One encoded output compared with its source, measured after the window."""

    rung: str  # WxH@BITRATE, as in the ladder label
    name: str
    stream: int
    target_bitrate_bps: int
    achieved_bitrate_bps: float  # from the encoded size and duration
    size_bytes: int
    duration_s: float
    frames: int  # frames compared
    scores: Mapping[str, MetricScore] = field(default_factory=dict)  # by QUALITY_METRICS name

    def to_json(self) -> dict[str, Any]:
        return {
            "rung": self.rung,
            "name": self.name,
            "stream": self.stream,
            "target_bitrate_bps": self.target_bitrate_bps,
            "achieved_bitrate_bps": self.achieved_bitrate_bps,
            "size_bytes": self.size_bytes,
            "duration_s": self.duration_s,
            "frames": self.frames,
            "scores": {k: v.to_json() for k, v in self.scores.items()},
        }

    @classmethod
    def from_json(cls, raw: Any, where: str) -> OutputQuality:
        if not isinstance(raw, Mapping):
            raise ContractError(f"{where}: expected an object")
        scores_raw = raw.get("scores") or {}
        if not isinstance(scores_raw, Mapping):
            raise ContractError(f"{where}.scores: expected an object keyed by metric")
        scores: dict[str, MetricScore] = {}
        for metric, score in scores_raw.items():
            if metric not in QUALITY_METRICS:
                known = ", ".join(QUALITY_METRICS)
                raise ContractError(f"{where}.scores: unknown metric {metric!r}; known: {known}")
            at = f"{where}.scores.{metric}"
            if not isinstance(score, Mapping):
                raise ContractError(f"{at}: expected {{'mean': ..., 'p5': ...}}")
            scores[metric] = MetricScore(_float(score, "mean", at), _float(score, "p5", at))
        return cls(
            rung=str(_req(raw, "rung", where)),
            name=str(raw.get("name") or ""),
            stream=_opt_int(raw, "stream", where) or 0,
            target_bitrate_bps=_int(raw, "target_bitrate_bps", where),
            achieved_bitrate_bps=_float(raw, "achieved_bitrate_bps", where),
            size_bytes=_int(raw, "size_bytes", where),
            duration_s=_float(raw, "duration_s", where),
            frames=_int(raw, "frames", where),
            scores=scores,
        )


@dataclass(frozen=True)
class WindowRecord:
    """One window of the manifest: a baseline, or one repeat of a transcode scenario.

    ``start_ms``/``end_ms`` are exact unix milliseconds (stabilization excluded). Quality was
    measured after ``end_ms``, outside the window; ``quality`` is empty when it was not asked
    for, and ``quality_error`` says why when it was asked for and failed.
    """

    scenario: str
    phase: str
    repeat: int
    start_ms: int
    end_ms: int
    status: str = "ok"
    error: str | None = None
    encoder: str = ""
    preset: str = "default"
    bitrate: str = ""
    streams: int = 1
    ladder: str = ""
    rungs: tuple[Rung, ...] = ()
    fps: float | None = None
    input: str = ""
    output: str = "null"
    realtime: bool = False
    stabilization_s: float = 0.0
    commands: tuple[tuple[str, ...], ...] = ()
    exit_codes: tuple[int | None, ...] = ()
    frames: Mapping[str, int] = field(default_factory=dict)
    frames_total: int = 0
    output_pixels: int = 0
    dropped_frames: int = 0
    stderr_tail: str = ""
    source: SourceInfo | None = None
    quality: tuple[OutputQuality, ...] = ()
    quality_error: str | None = None

    @property
    def duration_s(self) -> float:
        return (self.end_ms - self.start_ms) / 1000

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "phase": self.phase,
            "repeat": self.repeat,
            "encoder": self.encoder,
            "preset": self.preset,
            "bitrate": self.bitrate,
            "streams": self.streams,
            "ladder": self.ladder,
            "rungs": [r.to_json() for r in self.rungs],
            "fps": _json_number(self.fps),
            "input": self.input,
            "output": self.output,
            "realtime": self.realtime,
            "stabilization_s": self.stabilization_s,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "duration_s": self.duration_s,
            "status": self.status,
            "error": self.error,
            "commands": [list(c) for c in self.commands],
            "exit_codes": list(self.exit_codes),
            "frames": dict(self.frames),
            "frames_total": self.frames_total,
            "output_pixels": self.output_pixels,
            "dropped_frames": self.dropped_frames,
            "stderr_tail": self.stderr_tail,
            "source": self.source.to_json() if self.source else None,
            "quality": [q.to_json() for q in self.quality],
            "quality_error": self.quality_error,
        }

    @classmethod
    def from_json(cls, raw: Any, where: str) -> WindowRecord:
        """Read one manifest window (schema 1 or 2); ContractError names the field at fault."""
        if not isinstance(raw, Mapping):
            raise ContractError(f"{where}: expected an object")
        start_ms = _int(raw, "start_ms", where)
        end_ms = _int(raw, "end_ms", where)
        if end_ms <= start_ms:
            raise ContractError(f"{where}: end_ms {end_ms} is not after start_ms {start_ms}")
        phase = str(_req(raw, "phase", where))
        if phase not in PHASES:
            raise ContractError(f"{where}.phase: {phase!r} is not one of {', '.join(PHASES)}")
        rungs_raw = raw.get("rungs") or []
        if not isinstance(rungs_raw, list):
            raise ContractError(f"{where}.rungs: expected a list")
        rungs = sort_rungs(
            [Rung.from_json(r, f"{where}.rungs[{i}]") for i, r in enumerate(rungs_raw)]
        )
        ladder = ladder_key(rungs) if rungs else str(raw.get("ladder") or "")
        if not rungs and ladder:
            rungs = parse_ladder(ladder)
        quality_raw = raw.get("quality") or []
        if not isinstance(quality_raw, list):
            raise ContractError(f"{where}.quality: expected a list")
        source_raw = raw.get("source")
        frames_raw = raw.get("frames") or {}
        return cls(
            scenario=str(_req(raw, "scenario", where)),
            phase=phase,
            repeat=_opt_int(raw, "repeat", where) or 0,
            start_ms=start_ms,
            end_ms=end_ms,
            status=str(raw.get("status") or "ok"),
            error=_opt_str(raw.get("error")),
            encoder=str(raw.get("encoder") or ""),
            preset=str(raw.get("preset") or "default"),
            bitrate=str(raw.get("bitrate") or ""),
            streams=_opt_int(raw, "streams", where) or 1,
            ladder=ladder,
            rungs=rungs,
            fps=_opt_float(raw, "fps", where),
            input=str(raw.get("input") or ""),
            output=str(raw.get("output") or "null"),
            realtime=bool(raw.get("realtime", False)),
            stabilization_s=_opt_float(raw, "stabilization_s", where) or 0.0,
            commands=tuple(tuple(str(a) for a in c) for c in (raw.get("commands") or [])),
            exit_codes=tuple(raw.get("exit_codes") or []),
            frames={str(k): int(v) for k, v in frames_raw.items()}
            if isinstance(frames_raw, Mapping)
            else {},
            frames_total=_opt_int(raw, "frames_total", where) or 0,
            output_pixels=_opt_int(raw, "output_pixels", where) or 0,
            dropped_frames=_opt_int(raw, "dropped_frames", where) or 0,
            stderr_tail=str(raw.get("stderr_tail") or ""),
            source=SourceInfo.from_json(source_raw, f"{where}.source") if source_raw else None,
            quality=tuple(
                OutputQuality.from_json(q, f"{where}.quality[{i}]")
                for i, q in enumerate(quality_raw)
            ),
            quality_error=_opt_str(raw.get("quality_error")),
        )


# -- series labels, typed (readers for the advisor; the runner writes the plain dicts) --------


@dataclass(frozen=True)
class InfoLabels:
    """The labels of one ``ffmpeg_scenario_info`` series (``INFO_LABELS``), typed.

    ``fps`` is None before schema 2 (no label); ``rungs`` is () when the ladder is unparseable.
    """

    run_id: str
    scenario: str
    phase: str
    encoder: str
    preset: str
    ladder: str
    rungs: tuple[Rung, ...]
    streams: int
    bitrate: str
    repeat: int
    fps: float | None

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> InfoLabels:
        """ContractError names the label at fault."""
        where = INFO_METRIC
        ladder = str(labels.get("ladder", ""))
        fps_text = labels.get("fps")
        fps = _label_number(fps_text, "fps", where, float) if fps_text else None
        return cls(
            run_id=str(labels.get("run_id", "")),
            scenario=str(labels.get("scenario", "")),
            phase=str(labels.get("phase", "transcode")),
            encoder=str(labels.get("encoder", "")),
            preset=str(labels.get("preset", "default")),
            ladder=ladder,
            rungs=parse_ladder(ladder) if ladder else (),
            streams=int(_label_number(labels.get("streams") or "1", "streams", where, int)),
            bitrate=str(labels.get("bitrate", "")),
            repeat=int(_label_number(labels.get("repeat") or "0", "repeat", where, int)),
            fps=fps,
        )


@dataclass(frozen=True)
class OutputLabels:
    """The window part of a progress, quality or achieved-bitrate series' labels
    (``PROGRESS_LABELS``, ``QUALITY_LABELS``, ``OUTPUT_BITRATE_LABELS``), typed; fields a
    series does not carry are None."""

    run_id: str
    scenario: str
    repeat: int
    rung: str | None = None
    metric: str | None = None
    stream: str | None = None
    output: str | None = None

    @property
    def window(self) -> tuple[str, str, int]:
        """(run_id, scenario, repeat): the window the series belongs to."""
        return (self.run_id, self.scenario, self.repeat)

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> OutputLabels:
        return cls(
            run_id=str(labels.get("run_id", "")),
            scenario=str(labels.get("scenario", "")),
            repeat=int(_label_number(labels.get("repeat") or "0", "repeat", "series", int)),
            rung=labels.get("rung"),
            metric=labels.get("metric"),
            stream=labels.get("stream"),
            output=labels.get("output"),
        )


def _label_number(text: Any, key: str, where: str, kind: type[int] | type[float]) -> float:
    try:
        value = kind(str(text))
    except ValueError:
        raise ContractError(f"{where}: label {key}={text!r} is not a number") from None
    if not math.isfinite(value):
        raise ContractError(f"{where}: label {key}={text!r} is not a finite number")
    return value


# -- field readers ---------------------------------------------------------------------------


def _req(raw: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in raw or raw[key] is None:
        raise ContractError(f"{where}: missing field {key!r}; regenerate it with ffmpeg-runner")
    return raw[key]


def _int(raw: Mapping[str, Any], key: str, where: str) -> int:
    value = _req(raw, key, where)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ContractError(f"{where}.{key}: expected a whole number, got {value!r}")
    if float(value) != int(value):
        raise ContractError(f"{where}.{key}: expected a whole number, got {value!r}")
    return int(value)


def _float(raw: Mapping[str, Any], key: str, where: str) -> float:
    value = _req(raw, key, where)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ContractError(f"{where}.{key}: expected a number, got {value!r}")
    return float(value)


def _opt_int(raw: Mapping[str, Any], key: str, where: str) -> int | None:
    return None if raw.get(key) is None else _int(raw, key, where)


def _opt_float(raw: Mapping[str, Any], key: str, where: str) -> float | None:
    return None if raw.get(key) is None else _float(raw, key, where)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _json_number(value: float | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value
