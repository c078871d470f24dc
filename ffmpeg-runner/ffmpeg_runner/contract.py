"""What the runner writes and the advisor reads: the window model, the manifest around it,
bitrates, ladders and the typed labels of the runner's series.

This module is the one place these are defined; the series names and label keys themselves are
the series contract's (``base_monitoring_client.contract``). The runner writes ``WindowRecord``
and ``RunManifest``, the advisor reads them (from a manifest, or built from Prometheus series),
and the advisor's synthetic generator writes them too. It does no I/O and imports nothing heavy.

Manifest ``schema_version`` history:
- 1: windows with timing, frames, output pixels, commands.
- 2: adds each window's ``source`` (the input: path, sha256, size, frame rate) and ``quality``
  (per encoded output: achieved bitrate, file size and per-metric mean / 5th percentile).
- 3: adds each window's ``run_id``, ``instance``, ``rate_control`` and ``quality_value`` (the
  constant-quality setting) and ``accounting`` (CPU time of the window's ffmpeg processes and
  of the host, for attribution); the run's ``order``, ``seed``, ``repeats`` (why each scenario
  stopped repeating) and ``search`` (target-quality searches: probes and the chosen setting).
Every older schema is still read: fields it lacks take their defaults (``accounting`` None).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from base_monitoring_client import contract as series
from base_monitoring_client.config import InvalidValue

SCHEMA_VERSION = 3
SUPPORTED_SCHEMA_VERSIONS = (1, 2, 3)

# -- metric and label names (spelled in the series contract) ---------------------------------

INFO_METRIC = series.FFMPEG_INFO.name
FRAMES_METRIC = series.FFMPEG_FRAMES.name
FPS_METRIC = series.FFMPEG_FPS.name
SPEED_METRIC = series.FFMPEG_SPEED.name
QUALITY_METRIC = series.FFMPEG_QUALITY.name
OUTPUT_BITRATE_METRIC = series.FFMPEG_OUTPUT_BITRATE.name
WINDOW_CPU_METRIC = series.FFMPEG_WINDOW_CPU.name

# ffmpeg_scenario_info's labels; ``fps`` is the source frame rate (schema 2 and later),
# ``rate_control`` and ``quality_value`` the rate control (schema 3 and later).
INFO_LABELS = series.FFMPEG_INFO.labels
PROGRESS_LABELS = series.FFMPEG_FRAMES.labels
QUALITY_LABELS = series.FFMPEG_QUALITY.labels
OUTPUT_BITRATE_LABELS = series.FFMPEG_OUTPUT_BITRATE.labels
WINDOW_CPU_LABELS = series.FFMPEG_WINDOW_CPU.labels

# The ``metric`` label values. PSNR is in dB (luma-weighted average of Y, U, V as ffmpeg's psnr
# filter reports it), SSIM in 0..1 (ffmpeg's "All"), VMAF in 0..100.
QUALITY_METRICS = ("vmaf", "psnr", "ssim")
# A quality target (the runner's search, the advisor's ranking) lies in (low, high]: VMAF
# 0..100, PSNR in dB (ffmpeg caps identical frames near 100), SSIM 0..1.
METRIC_RANGES = {"vmaf": (0.0, 100.0), "psnr": (0.0, 100.0), "ssim": (0.0, 1.0)}
METRIC_EXAMPLES = {"vmaf": "vmaf=93", "psnr": "psnr=40", "ssim": "ssim=0.98"}


def parse_quality_target(text: str) -> tuple[str, float]:
    """``vmaf=93``, ``psnr=40`` (dB) or ``ssim=0.98`` -> (metric, value). ValueError says what
    to write; each caller puts its own setting's name in front."""
    metric, sep, raw = str(text).partition("=")
    metric = metric.strip().lower()
    if not sep or metric not in QUALITY_METRICS:
        raise ValueError(
            f"write METRIC=VALUE with METRIC one of {', '.join(QUALITY_METRICS)}, e.g. "
            "vmaf=93, psnr=40 or ssim=0.98"
        )
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    low, high = METRIC_RANGES[metric]
    if not (math.isfinite(value) and low < value <= high):
        raise ValueError(
            f"{metric} targets lie in ({low:g}, {high:g}]; write e.g. {METRIC_EXAMPLES[metric]}"
        )
    return metric, value


PHASES = ("baseline", "transcode")
WINDOW_STATUSES = ("ok", "failed", "interrupted")
# How the encoder's rate is controlled: a target bitrate (-b:v), a constant rate factor (-crf:
# x264, x265, SVT-AV1, VP9 with -b:v 0) or a constant quantiser level (NVENC -rc vbr -cq).
RATE_CONTROLS = ("bitrate", "crf", "cq")
# The order a run measures its windows in (``--order``).
ORDERS = ("sequential", "interleaved", "shuffled")
# A target-quality search's outcome per family: a setting found within the tolerance (or the
# closest when the bracket is one step wide), the target above the best setting's quality or
# below the cheapest one's, or a probe that failed (its error says why).
SEARCH_STATUSES = ("found", "unreachable", "exceeded", "failed")


class ContractError(ValueError):
    """A record does not follow this contract; the message names the field."""


# -- bitrates and ladders --------------------------------------------------------------------

_BITRATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*$")
_BITRATE_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3}
_RUNG_KEY_RE = re.compile(r"^(\d+)x(\d+)@(\S+)$")
# A constant-quality setting in a rung key: the rate control's name glued to its value (crf23,
# cq28.5); anything else after the @ is a bitrate.
_QUALITY_SETTING_RE = re.compile(r"^\s*(crf|cq)\s*(\d+(?:\.\d+)?)\s*$", re.IGNORECASE)


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


def format_quality_value(value: float) -> str:
    """A CRF/CQ value as labels and keys spell it: 23, 23.5 (never 23.0)."""
    return f"{value:g}"


def format_setting(rate_control: str, bitrate_bps: int, quality_value: float | None) -> str:
    """What follows the ``@`` of a rung key: ``2M`` (bitrate), ``crf23``, ``cq28.5``."""
    if rate_control == "bitrate":
        return format_bitrate(bitrate_bps)
    if rate_control not in RATE_CONTROLS or quality_value is None:
        raise ContractError(
            f"rate_control {rate_control!r} with quality_value {quality_value!r}: a constant-"
            f"quality rung needs one of {', '.join(RATE_CONTROLS[1:])} and a value"
        )
    return f"{rate_control}{format_quality_value(quality_value)}"


def parse_setting(text: str) -> tuple[str, int, float | None]:
    """``2M`` -> ("bitrate", 2000000, None); ``crf23`` -> ("crf", 0, 23.0); ``cq28`` likewise.

    Raises ``InvalidValue`` with the fix for anything else.
    """
    match = _QUALITY_SETTING_RE.match(str(text))
    if match:
        return match.group(1).lower(), 0, float(match.group(2))
    try:
        return "bitrate", parse_bitrate(text), None
    except InvalidValue as exc:
        raise InvalidValue(
            f"{exc}; a constant-quality rung is written crf23 or cq28 instead of a bitrate"
        ) from None


@dataclass(frozen=True)
class Rung:
    """One output of a ladder: its size and its rate control setting.

    With ``rate_control="bitrate"`` the output is encoded at ``bitrate_bps``; with ``crf`` or
    ``cq`` (constant quality) at ``quality_value``, and ``bitrate_bps`` is 0 (no target: the
    achieved bitrate is whatever the encoder needed).
    """

    name: str
    width: int
    height: int
    bitrate_bps: int
    rate_control: str = "bitrate"
    quality_value: float | None = None

    def __post_init__(self) -> None:
        # Raises ContractError for a constant-quality rung without a value.
        format_setting(self.rate_control, self.bitrate_bps, self.quality_value)

    @property
    def bitrate(self) -> str:
        """The target bitrate, canonical (``2M``); "" with constant-quality rate control."""
        return format_bitrate(self.bitrate_bps) if self.rate_control == "bitrate" else ""

    @property
    def target_bitrate_bps(self) -> int | None:
        """The target bitrate; None with constant-quality rate control."""
        return self.bitrate_bps if self.rate_control == "bitrate" else None

    @property
    def setting(self) -> str:
        """``2M``, ``crf23`` or ``cq28``: how this output's rate is controlled."""
        return format_setting(self.rate_control, self.bitrate_bps, self.quality_value)

    @property
    def key(self) -> str:
        """``WxH@SETTING`` (``640x360@800k``, ``640x360@crf23``): the ``rung`` label and one
        part of the ``ladder`` label."""
        return f"{self.width}x{self.height}@{self.setting}"

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "width": self.width,
            "height": self.height,
            "bitrate": self.bitrate or None,
        }
        if self.rate_control != "bitrate":
            doc["rate_control"] = self.rate_control
            doc["quality_value"] = _json_number(self.quality_value)
        return doc

    @classmethod
    def from_json(cls, raw: Any, where: str) -> Rung:
        if not isinstance(raw, Mapping):
            raise ContractError(f"{where}: expected an object with width, height and bitrate")
        width = _int(raw, "width", where)
        height = _int(raw, "height", where)
        name = str(raw.get("name") or f"{height}p")
        rate_control = str(raw.get("rate_control") or "bitrate")
        if rate_control not in RATE_CONTROLS:
            raise ContractError(
                f"{where}.rate_control: {rate_control!r} is not one of {', '.join(RATE_CONTROLS)}"
            )
        if rate_control != "bitrate":
            return cls(name, width, height, 0, rate_control, _float(raw, "quality_value", where))
        try:
            bps = parse_bitrate(raw.get("bitrate"))
        except InvalidValue as exc:
            raise ContractError(f"{where}.bitrate: {exc}") from None
        return cls(name, width, height, bps)


def sort_rungs(rungs: Sequence[Rung]) -> tuple[Rung, ...]:
    """Highest first: the ladder key order and the order of ffmpeg's outputs (at equal size,
    the higher bitrate, or the lower CRF/CQ value: the better picture, first)."""
    return tuple(
        sorted(rungs, key=lambda r: (-r.height, -r.width, -r.bitrate_bps, r.quality_value or 0.0))
    )


def ladder_key(rungs: Sequence[Rung]) -> str:
    """The ``ladder`` label: rung keys, highest first, joined with ``+``."""
    return "+".join(r.key for r in sort_rungs(rungs))


def parse_ladder(key: str) -> tuple[Rung, ...]:
    """Rungs of a ladder key (names synthesised as ``<height>p``); () when unparseable. Reads
    every key written so far: bitrate rungs (``640x360@800k``) and constant-quality rungs
    (``640x360@crf23``, schema 3 and later)."""
    return read_ladder(key).rungs


# What a ladder label must look like, for the messages that say it does not.
LADDER_FORM = "WxH@BITRATE rungs joined by '+' (e.g. 1280x720@2M+640x360@800k)"
_RESOLUTION_RE = re.compile(r"^(\d+)x(\d+)(?:@.*)?$")


@dataclass(frozen=True)
class LadderReading:
    """A ladder key read as far as it follows the contract.

    ``rungs``: every rung, or () when any part breaks ``WxH@BITRATE``. ``frame_pixels``: width x
    height of each part, as long as every part starts with a readable ``WxH`` (a ladder written
    by older tools as ``1280x720@30``, frames per second where the bitrate belongs, still tells
    the pixels); () otherwise. ``problem``: what broke the contract and the expected form, None
    when nothing did.
    """

    rungs: tuple[Rung, ...]
    frame_pixels: tuple[int, ...]
    problem: str | None = None

    @property
    def pixels_per_frame(self) -> float | None:
        """Mean pixels of one output frame (the rungs of a stream share its frame count)."""
        if not self.frame_pixels:
            return None
        return sum(self.frame_pixels) / len(self.frame_pixels)


def read_ladder(key: str, where: str = "ladder") -> LadderReading:
    """Read a ladder key; ``where`` names it in the problem (e.g. ``label ladder``)."""
    if not key.strip():
        return LadderReading((), (), f"{where} is missing; expected {LADDER_FORM}")
    rungs: list[Rung] = []
    pixels: list[int] = []
    broken: list[str] = []
    for part in (p.strip() for p in key.split("+")):
        size = _RESOLUTION_RE.match(part)
        if size:
            pixels.append(int(size.group(1)) * int(size.group(2)))
        match = _RUNG_KEY_RE.match(part)
        if not match:
            broken.append(f"{part!r} is not WxH@BITRATE")
            continue
        width, height, setting = match.groups()
        try:
            rate_control, bps, value = parse_setting(setting)
        except InvalidValue as exc:
            broken.append(f"in {part!r}, {exc}")
            continue
        rungs.append(Rung(f"{height}p", int(width), int(height), bps, rate_control, value))
    if not broken:
        return LadderReading(sort_rungs(rungs), tuple(pixels))
    readable = len(pixels) == len(key.split("+"))
    consequence = (
        "output pixels are counted from its WxH, its bitrate is unknown"
        if readable
        else "output pixels are unknown"
    )
    problem = f"{where}={key!r} is not {LADDER_FORM}: {'; '.join(broken)}; {consequence}"
    return LadderReading((), tuple(pixels) if readable else (), problem)


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
    """One metric over the compared frames: the mean and the 5th percentile (the bad frames);
    ``p5`` is None where only the mean is known (a window read back from Prometheus)."""

    mean: float
    p5: float | None = None

    def to_json(self) -> dict[str, float | None]:
        return {"mean": self.mean, "p5": self.p5}


@dataclass(frozen=True)
class OutputQuality:
    """One encoded output compared with its source, measured after the window.

    The manifest has every field (``target_bitrate_bps`` is None with constant-quality rate
    control); an output read back from Prometheus knows only its scores' means and its achieved
    bitrate, so the rest are None there.
    """

    rung: str  # WxH@BITRATE, as in the ladder label
    name: str
    stream: int
    target_bitrate_bps: int | None
    achieved_bitrate_bps: float | None  # from the encoded size and duration
    size_bytes: int | None = None
    duration_s: float | None = None
    frames: int | None = None  # frames compared
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
            scores[metric] = MetricScore(_float(score, "mean", at), _opt_float(score, "p5", at))
        return cls(
            rung=str(_req(raw, "rung", where)),
            name=str(raw.get("name") or ""),
            stream=_opt_int(raw, "stream", where) or 0,
            # null with constant-quality rate control (no target), but never left out
            target_bitrate_bps=_opt_int(raw, _present(raw, "target_bitrate_bps", where), where),
            achieved_bitrate_bps=_float(raw, "achieved_bitrate_bps", where),
            size_bytes=_int(raw, "size_bytes", where),
            duration_s=_float(raw, "duration_s", where),
            frames=_int(raw, "frames", where),
            scores=scores,
        )


@dataclass(frozen=True)
class Accounting:
    """CPU time used inside one window, read at its edges (schema 3).

    ``transcode_cpu_s``: utime + stime of every thread of the window's ffmpeg processes
    (``/proc/<pid>/stat``); 0 for a baseline. ``host_busy_cpu_s`` / ``host_total_cpu_s``: the
    host's busy and total CPU time from ``/proc/stat`` (busy = user + nice + system + irq +
    softirq; total = busy + idle + iowait + steal, as cpu-rapl-client's estimate counts it).
    ``cgroup_cpu_s``: the runner's own cgroup (``cpu.stat`` usage) when it runs in a container,
    else None. ``processes``: how many processes were read.
    """

    transcode_cpu_s: float
    host_busy_cpu_s: float
    host_total_cpu_s: float
    cgroup_cpu_s: float | None = None
    processes: int = 0

    @property
    def background_cpu_share(self) -> float | None:
        """1 - transcode / host busy: the share of busy CPU others used (0 when nothing else
        ran); None when the host was not busy at all."""
        if self.host_busy_cpu_s <= 0:
            return None
        return min(1.0, max(0.0, 1.0 - self.transcode_cpu_s / self.host_busy_cpu_s))

    def to_json(self) -> dict[str, Any]:
        return {
            "transcode_cpu_s": self.transcode_cpu_s,
            "host_busy_cpu_s": self.host_busy_cpu_s,
            "host_total_cpu_s": self.host_total_cpu_s,
            "cgroup_cpu_s": self.cgroup_cpu_s,
            "processes": self.processes,
        }

    @classmethod
    def from_json(cls, raw: Any, where: str) -> Accounting:
        if not isinstance(raw, Mapping):
            raise ContractError(f"{where}: expected an object")
        out = cls(
            transcode_cpu_s=_float(raw, "transcode_cpu_s", where),
            host_busy_cpu_s=_float(raw, "host_busy_cpu_s", where),
            host_total_cpu_s=_float(raw, "host_total_cpu_s", where),
            cgroup_cpu_s=_opt_float(raw, "cgroup_cpu_s", where),
            processes=_opt_int(raw, "processes", where) or 0,
        )
        for key in ("transcode_cpu_s", "host_busy_cpu_s", "host_total_cpu_s"):
            if getattr(out, key) < 0:
                raise ContractError(f"{where}.{key}: CPU time cannot be negative")
        return out


@dataclass(frozen=True)
class WindowRecord:
    """One window: a baseline, or one repeat of a transcode scenario.

    The one window model: the runner writes it to the manifest, the advisor reads it from there
    (or builds it from the runner's series, ``origin="discovered"``) and the synthetic generator
    makes it. ``start_ms``/``end_ms`` are exact unix milliseconds (stabilization excluded).
    Quality was measured after ``end_ms``, outside the window; ``quality`` is empty when it was
    not asked for, and ``quality_error`` says why when it was asked for and failed. Counts that
    a reader could not learn (frames of a window whose progress series are missing) are None.
    ``problem`` is a reader's finding, never written: what in the record breaks this contract
    (a ladder that is not ``WxH@BITRATE``) and what the reader could not learn because of it.
    """

    scenario: str
    phase: str
    repeat: int
    start_ms: int
    end_ms: int
    run_id: str = ""
    instance: str = ""  # the runner's instance label: which host's power series belong to it
    status: str = "ok"
    error: str | None = None
    encoder: str = ""
    preset: str = "default"
    bitrate: str = ""
    rate_control: str = "bitrate"
    quality_value: float | None = None  # the CRF or CQ value; None with rate_control=bitrate
    streams: int = 1
    ladder: str = ""
    rungs: tuple[Rung, ...] = ()
    fps: float | None = None
    input: str = ""
    output: str = "null"
    realtime: bool | None = False  # None: unknown (read back from Prometheus)
    stabilization_s: float = 0.0
    commands: tuple[tuple[str, ...], ...] = ()
    exit_codes: tuple[int | None, ...] = ()
    frames: Mapping[str, int] = field(default_factory=dict)
    frames_total: int | None = 0
    output_pixels: int | None = 0
    dropped_frames: int | None = 0
    stderr_tail: str = ""
    source: SourceInfo | None = None
    quality: tuple[OutputQuality, ...] = ()
    quality_error: str | None = None
    vmaf_subsample: int = 1  # libvmaf n_subsample the quality was measured with (1: every frame)
    accounting: Accounting | None = None
    origin: str = "manifest"  # where a reader got it: manifest | discovered (not written)
    problem: str | None = None

    # -- derived views ---------------------------------------------------------------------

    @property
    def duration_s(self) -> float:
        return (self.end_ms - self.start_ms) / 1000

    @property
    def start_s(self) -> float:
        return self.start_ms / 1000.0

    @property
    def end_s(self) -> float:
        return self.end_ms / 1000.0

    @property
    def window_id(self) -> str:
        return f"{self.run_id}/{self.scenario}/{self.phase}/{self.repeat}"

    @property
    def top_bitrate_bps(self) -> float:
        """The top rung's bitrate: its target (the ``bitrate`` the runner reports), or with
        constant-quality rate control the bitrate it achieved (NaN where not measured); NaN
        without rungs."""
        if not self.rungs:
            return math.nan
        top = self.rungs[0]
        if top.target_bitrate_bps is not None:
            return float(top.target_bitrate_bps)
        return self.achieved_bitrate_by_rung().get(top.key, math.nan)

    @property
    def output_minutes(self) -> float | None:
        """Minutes of video the window delivered: frames / (fps x rungs) / 60 (every rung of a
        stream is one minute of output, each stream another); None without frames or fps."""
        if not self.frames_total or not self.fps or not self.rungs:
            return None
        return self.frames_total / (self.fps * len(self.rungs)) / 60.0

    @property
    def nominal_pixels_per_s(self) -> float:
        """Streams x Σ rung width x height x fps: the pixel rate the configuration asks for."""
        if not self.rungs or self.fps is None or not math.isfinite(self.fps):
            return math.nan
        return float(self.streams * sum(r.pixels for r in self.rungs) * self.fps)

    def quality_by_rung(self) -> dict[str, dict[str, float]]:
        """Rung key -> metric -> mean score, averaged over the scenario's streams."""
        sums: dict[str, dict[str, list[float]]] = {}
        for out in self.quality:
            for metric, score in out.scores.items():
                sums.setdefault(out.rung, {}).setdefault(metric, []).append(score.mean)
        return {r: {m: sum(v) / len(v) for m, v in q.items()} for r, q in sums.items()}

    def achieved_bitrate_by_rung(self) -> dict[str, float]:
        """Rung key -> achieved bits per second, averaged over the scenario's streams."""
        sums: dict[str, list[float]] = {}
        for out in self.quality:
            if out.achieved_bitrate_bps is not None:
                sums.setdefault(out.rung, []).append(out.achieved_bitrate_bps)
        return {r: sum(v) / len(v) for r, v in sums.items()}

    def rung_quality(self, metric: str) -> float:
        """The single output's mean score (NaN for ladders of several rungs or unmeasured)."""
        if len(self.rungs) != 1:
            return math.nan
        return self.quality_by_rung().get(self.rungs[0].key, {}).get(metric, math.nan)

    def rung_achieved_bitrate(self) -> float:
        if len(self.rungs) != 1:
            return math.nan
        return self.achieved_bitrate_by_rung().get(self.rungs[0].key, math.nan)

    # -- JSON ------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "instance": self.instance,
            "scenario": self.scenario,
            "phase": self.phase,
            "repeat": self.repeat,
            "encoder": self.encoder,
            "preset": self.preset,
            "bitrate": self.bitrate,
            "rate_control": self.rate_control,
            "quality_value": _json_number(self.quality_value),
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
            "vmaf_subsample": self.vmaf_subsample,
            "accounting": self.accounting.to_json() if self.accounting else None,
        }

    @classmethod
    def from_json(
        cls, raw: Any, where: str, *, run_id: str = "", instance: str = ""
    ) -> WindowRecord:
        """Read one manifest window (schema 1 to 3); ContractError names the field at fault.
        ``run_id``/``instance`` fill in what a window of schema 1 or 2 does not carry."""
        if not isinstance(raw, Mapping):
            raise ContractError(f"{where}: expected an object")
        start_ms = _int(raw, "start_ms", where)
        end_ms = _int(raw, "end_ms", where)
        if end_ms <= start_ms:
            raise ContractError(f"{where}: end_ms {end_ms} is not after start_ms {start_ms}")
        phase = str(_req(raw, "phase", where))
        if phase not in PHASES:
            raise ContractError(f"{where}.phase: {phase!r} is not one of {', '.join(PHASES)}")
        rate_control = str(raw.get("rate_control") or "bitrate")
        if rate_control not in RATE_CONTROLS:
            raise ContractError(
                f"{where}.rate_control: {rate_control!r} is not one of {', '.join(RATE_CONTROLS)}"
            )
        rungs_raw = raw.get("rungs") or []
        if not isinstance(rungs_raw, list):
            raise ContractError(f"{where}.rungs: expected a list")
        rungs = sort_rungs(
            [Rung.from_json(r, f"{where}.rungs[{i}]") for i, r in enumerate(rungs_raw)]
        )
        ladder = ladder_key(rungs) if rungs else str(raw.get("ladder") or "")
        problem = None
        if not rungs and ladder:
            reading = read_ladder(ladder, f"{where}.ladder")
            rungs = reading.rungs
            # The runner counted the output pixels itself; only the bitrate is lost.
            problem = reading.problem if phase == "transcode" else None
        quality_raw = raw.get("quality") or []
        if not isinstance(quality_raw, list):
            raise ContractError(f"{where}.quality: expected a list")
        source_raw = raw.get("source")
        accounting_raw = raw.get("accounting")
        frames_raw = raw.get("frames") or {}
        return cls(
            run_id=str(raw.get("run_id") or run_id),
            instance=str(raw.get("instance") or instance),
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
            rate_control=rate_control,
            quality_value=_opt_float(raw, "quality_value", where),
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
            vmaf_subsample=_opt_int(raw, "vmaf_subsample", where) or 1,
            accounting=Accounting.from_json(accounting_raw, f"{where}.accounting")
            if accounting_raw
            else None,
            problem=problem,
        )


# -- the run: repeats and target-quality searches --------------------------------------------


@dataclass(frozen=True)
class RepeatRecord:
    """How many repeats one scenario got and why it stopped (``--repeats N`` or ``auto``)."""

    scenario: str
    policy: str  # "fixed" or "auto:MIN:MAX"
    repeats: int
    reason: str  # e.g. "fixed count", "CI half-width 2.1 % <= 3 %", "MAX (8) reached"

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "policy": self.policy,
            "repeats": self.repeats,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, raw: Any, where: str) -> RepeatRecord:
        if not isinstance(raw, Mapping):
            raise ContractError(f"{where}: expected an object")
        return cls(
            scenario=str(_req(raw, "scenario", where)),
            policy=str(raw.get("policy") or "fixed"),
            repeats=_int(raw, "repeats", where),
            reason=str(raw.get("reason") or ""),
        )


@dataclass(frozen=True)
class Probe:
    """One quality-only encode of a search: its setting, score and cost (outside every window)."""

    value: float  # the CRF/CQ value, or the bitrate in bits per second
    score: float | None  # None: the probe failed (``error`` says why)
    bitrate_bps: float | None
    encode_s: float
    quality_s: float
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "value": _json_number(self.value),
            "score": self.score,
            "bitrate_bps": self.bitrate_bps,
            "encode_s": self.encode_s,
            "quality_s": self.quality_s,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, raw: Any, where: str) -> Probe:
        if not isinstance(raw, Mapping):
            raise ContractError(f"{where}: expected an object")
        return cls(
            value=_float(raw, "value", where),
            score=_opt_float(raw, "score", where),
            bitrate_bps=_opt_float(raw, "bitrate_bps", where),
            encode_s=_opt_float(raw, "encode_s", where) or 0.0,
            quality_s=_opt_float(raw, "quality_s", where) or 0.0,
            error=_opt_str(raw.get("error")),
        )


@dataclass(frozen=True)
class SearchRecord:
    """One family's target-quality search: every probe, the status and the chosen setting.

    ``status``: ``found`` (a probe within tolerance, or the bracket one step wide),
    ``unreachable`` (even the best setting stays below the target), ``exceeded`` (even the
    cheapest setting is above it), ``failed`` (a probe's encode or measurement failed; the
    probe's ``error`` says why). ``chosen`` is None unless found. ``scenario`` names the
    scenario whose windows measured the energy at the chosen setting; ``message`` says why
    the search ended.
    """

    family: str  # ENCODER:PRESET@WxH (+ rate control)
    encoder: str
    preset: str
    resolution: str
    rate_control: str
    target_metric: str
    target_value: float
    status: str
    probes: tuple[Probe, ...] = ()
    chosen: Probe | None = None
    scenario: str | None = None
    message: str = ""
    # How the probes were made (None where a reader's manifest does not say): the tolerance
    # and probe limit, libvmaf's n_subsample, and the (start, duration) seconds of each sample
    # of the input (empty: the whole input).
    tolerance: float | None = None
    max_probes: int | None = None
    vmaf_subsample: int = 1
    samples: tuple[tuple[float, float], ...] = ()

    def to_json(self) -> dict[str, Any]:
        chosen = self.chosen
        return {
            "family": self.family,
            "encoder": self.encoder,
            "preset": self.preset,
            "resolution": self.resolution,
            "rate_control": self.rate_control,
            "target": {"metric": self.target_metric, "value": self.target_value},
            "status": self.status,
            "probes": [p.to_json() for p in self.probes],
            "chosen": None
            if chosen is None
            else {
                "value": _json_number(chosen.value),
                "score": chosen.score,
                "bitrate_bps": chosen.bitrate_bps,
            },
            "scenario": self.scenario,
            "message": self.message,
            "tolerance": self.tolerance,
            "max_probes": self.max_probes,
            "vmaf_subsample": self.vmaf_subsample,
            "samples": [{"start_s": a, "duration_s": d} for a, d in self.samples],
        }

    @classmethod
    def from_json(cls, raw: Any, where: str) -> SearchRecord:
        if not isinstance(raw, Mapping):
            raise ContractError(f"{where}: expected an object")
        status = str(_req(raw, "status", where))
        if status not in SEARCH_STATUSES:
            raise ContractError(
                f"{where}.status: {status!r} is not one of {', '.join(SEARCH_STATUSES)}"
            )
        target = _req(raw, "target", where)
        if not isinstance(target, Mapping):
            raise ContractError(f"{where}.target: expected {{'metric': ..., 'value': ...}}")
        metric = str(_req(target, "metric", f"{where}.target"))
        if metric not in QUALITY_METRICS:
            raise ContractError(
                f"{where}.target.metric: {metric!r} is not one of {', '.join(QUALITY_METRICS)}"
            )
        probes_raw = raw.get("probes") or []
        if not isinstance(probes_raw, list):
            raise ContractError(f"{where}.probes: expected a list")
        chosen_raw = raw.get("chosen")
        chosen = None
        if chosen_raw is not None:
            if not isinstance(chosen_raw, Mapping):
                raise ContractError(f"{where}.chosen: expected an object or null")
            chosen = Probe(
                value=_float(chosen_raw, "value", f"{where}.chosen"),
                score=_opt_float(chosen_raw, "score", f"{where}.chosen"),
                bitrate_bps=_opt_float(chosen_raw, "bitrate_bps", f"{where}.chosen"),
                encode_s=0.0,
                quality_s=0.0,
            )
        return cls(
            family=str(_req(raw, "family", where)),
            encoder=str(raw.get("encoder") or ""),
            preset=str(raw.get("preset") or "default"),
            resolution=str(raw.get("resolution") or ""),
            rate_control=str(raw.get("rate_control") or "crf"),
            target_metric=metric,
            target_value=_float(target, "value", f"{where}.target"),
            status=status,
            probes=tuple(
                Probe.from_json(p, f"{where}.probes[{i}]") for i, p in enumerate(probes_raw)
            ),
            chosen=chosen,
            scenario=_opt_str(raw.get("scenario")),
            message=str(raw.get("message") or ""),
            tolerance=_opt_float(raw, "tolerance", where),
            max_probes=_opt_int(raw, "max_probes", where),
            vmaf_subsample=_opt_int(raw, "vmaf_subsample", where) or 1,
            samples=tuple(
                (
                    _float(x, "start_s", f"{where}.samples[{i}]"),
                    _float(x, "duration_s", f"{where}.samples[{i}]"),
                )
                for i, x in enumerate(_list(raw, "samples", where))
            ),
        )


# What each schema added: (the manifest's keys, each window's keys).
_ADDED_IN_SCHEMA: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {
    2: ((), ("realtime", "source", "quality", "quality_error")),
    3: (
        ("order", "seed", "repeats", "search", "error"),
        ("run_id", "instance", "rate_control", "quality_value", "vmaf_subsample", "accounting"),
    ),
}


@dataclass
class RunManifest:
    """The results manifest ``results/<run_id>.json``: the run and its windows.

    The runner keeps one and rewrites it after every window; the advisor and the synthetic
    generator read and write the same. ``order`` is how windows were scheduled (``ORDERS``) and
    ``seed`` the shuffle's seed; ``repeats`` and ``search`` are empty where not used.
    """

    run_id: str
    started_ms: int
    host: dict[str, Any] = field(default_factory=dict)
    ffmpeg: dict[str, Any] = field(default_factory=dict)
    sample_interval_s: float | None = None
    status: str = "running"
    ended_ms: int | None = None
    order: str = "sequential"
    seed: int | None = None
    windows: list[WindowRecord] = field(default_factory=list)
    repeats: list[RepeatRecord] = field(default_factory=list)
    search: list[SearchRecord] = field(default_factory=list)
    #: why the run ended early (e.g. the disk filled up); None when it did not. Absent from
    #: manifests written before it existed (read as None).
    error: str | None = None
    schema_version: int = SCHEMA_VERSION  # what was read; to_json always writes the current

    @property
    def instance(self) -> str:
        """The instance label the run's series carry (older manifests: the hostname)."""
        return str(self.host.get("instance") or self.host.get("hostname") or "")

    def to_json(self, schema_version: int = SCHEMA_VERSION) -> dict[str, Any]:
        """The manifest document; an older ``schema_version`` (for readers' tests) leaves out
        the keys that schema did not have."""
        if schema_version not in SUPPORTED_SCHEMA_VERSIONS:
            raise ContractError(f"schema_version {schema_version} is not one this writes")
        doc: dict[str, Any] = {
            "schema_version": schema_version,
            "run_id": self.run_id,
            "status": self.status,
            "error": self.error,
            "started_ms": self.started_ms,
            "ended_ms": self.ended_ms,
            "host": self.host,
            "ffmpeg": self.ffmpeg,
            "sample_interval_s": self.sample_interval_s,
            "order": self.order,
            "seed": self.seed,
            "repeats": [r.to_json() for r in self.repeats],
            "search": [s.to_json() for s in self.search],
            "windows": [w.to_json() for w in self.windows],
        }
        for version, (run_keys, window_keys) in _ADDED_IN_SCHEMA.items():
            if version > schema_version:
                for key in run_keys:
                    del doc[key]
                for window in doc["windows"]:
                    for key in window_keys:
                        del window[key]
        return doc

    @classmethod
    def from_json(cls, doc: Any, where: str) -> RunManifest:
        """Any supported schema; ContractError names the field at fault and the fix."""
        if not isinstance(doc, Mapping):
            raise ContractError(f"{where}: expected a JSON object (ffmpeg-runner results manifest)")
        version = doc.get("schema_version")
        if version not in SUPPORTED_SCHEMA_VERSIONS:
            raise ContractError(
                f"{where}: schema_version {version!r} is not supported (this version reads "
                f"{', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))}); upgrade wattpush or re-run "
                "ffmpeg-runner"
            )
        host = doc.get("host") or {}
        if not isinstance(host, Mapping):
            raise ContractError(f"{where}.host: expected an object")
        run_id = str(_req(doc, "run_id", where))
        order = str(doc.get("order") or "sequential")
        if order not in ORDERS:
            raise ContractError(f"{where}.order: {order!r} is not one of {', '.join(ORDERS)}")
        manifest = cls(
            run_id=run_id,
            started_ms=_opt_int(doc, "started_ms", where) or 0,
            host=dict(host),
            ffmpeg=dict(doc.get("ffmpeg") or {}),
            sample_interval_s=_opt_float(doc, "sample_interval_s", where),
            status=str(doc.get("status") or "completed"),
            ended_ms=_opt_int(doc, "ended_ms", where),
            order=order,
            seed=_opt_int(doc, "seed", where),
            error=_opt_str(doc.get("error")),
            schema_version=int(version),
        )
        instance = manifest.instance
        manifest.windows = [
            WindowRecord.from_json(raw, f"{where}: windows[{i}]", run_id=run_id, instance=instance)
            for i, raw in enumerate(_list(doc, "windows", where, required=True))
        ]
        manifest.repeats = [
            RepeatRecord.from_json(raw, f"{where}: repeats[{i}]")
            for i, raw in enumerate(_list(doc, "repeats", where))
        ]
        manifest.search = [
            SearchRecord.from_json(raw, f"{where}: search[{i}]")
            for i, raw in enumerate(_list(doc, "search", where))
        ]
        return manifest


# -- series labels, typed (readers for the advisor; the runner writes the plain dicts) --------


@dataclass(frozen=True)
class InfoLabels:
    """The labels of one ``ffmpeg_scenario_info`` series (``INFO_LABELS``), typed.

    ``fps`` is None before schema 2 (no label); ``rate_control`` is ``bitrate`` and
    ``quality_value`` None before schema 3. ``ladder_read`` is the ``ladder`` label read as far
    as it follows the contract: its rungs (``rungs``, () when it breaks the contract), the
    pixels of a frame where its ``WxH`` parts are readable, and the problem otherwise.
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
    rate_control: str = "bitrate"
    quality_value: float | None = None
    ladder_read: LadderReading = LadderReading((), ())

    @classmethod
    def from_labels(cls, labels: Mapping[str, str]) -> InfoLabels:
        """ContractError names the label at fault."""
        where = INFO_METRIC
        ladder = str(labels.get("ladder", ""))
        fps_text = labels.get("fps")
        fps = _label_number(fps_text, "fps", where, float) if fps_text else None
        rate_control = str(labels.get("rate_control") or "bitrate")
        if rate_control not in RATE_CONTROLS:
            raise ContractError(
                f"{where}: label rate_control={rate_control!r} is not one of "
                f"{', '.join(RATE_CONTROLS)}"
            )
        value_text = labels.get("quality_value")
        reading = read_ladder(ladder, f"{where} label ladder")
        return cls(
            run_id=str(labels.get("run_id", "")),
            scenario=str(labels.get("scenario", "")),
            phase=str(labels.get("phase", "transcode")),
            encoder=str(labels.get("encoder", "")),
            preset=str(labels.get("preset", "default")),
            ladder=ladder,
            rungs=reading.rungs,
            streams=int(_label_number(labels.get("streams") or "1", "streams", where, int)),
            bitrate=str(labels.get("bitrate", "")),
            repeat=int(_label_number(labels.get("repeat") or "0", "repeat", where, int)),
            fps=fps,
            rate_control=rate_control,
            quality_value=_label_number(value_text, "quality_value", where, float)
            if value_text
            else None,
            ladder_read=reading,
        )


@dataclass(frozen=True)
class OutputLabels:
    """The window part of a progress, quality, achieved-bitrate or window-CPU series' labels
    (``PROGRESS_LABELS``, ``QUALITY_LABELS``, ``OUTPUT_BITRATE_LABELS``,
    ``WINDOW_CPU_LABELS``), typed; fields a series does not carry are None."""

    run_id: str
    scenario: str
    repeat: int
    rung: str | None = None
    metric: str | None = None
    stream: str | None = None
    output: str | None = None
    phase: str | None = None
    scope: str | None = None

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
            phase=labels.get("phase"),
            scope=labels.get("scope"),
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


def _present(raw: Mapping[str, Any], key: str, where: str) -> str:
    """``key``, after checking that it is there (its value may be null)."""
    if key not in raw:
        raise ContractError(f"{where}: missing field {key!r}; regenerate it with ffmpeg-runner")
    return key


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


def _list(raw: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> list[Any]:
    value = _req(raw, key, where) if required else raw.get(key) or []
    if not isinstance(value, list):
        raise ContractError(f"{where}.{key}: expected a list; regenerate it with ffmpeg-runner")
    return value


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _json_number(value: float | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value
