"""Measurement windows: read from ffmpeg-runner manifests or discovered from Prometheus.

The window model, the manifest and the label names are ffmpeg-runner's contract
(``ffmpeg_runner.contract``): a manifest is read whole by ``RunManifest.from_json`` (any
supported schema) and discovered windows are built as the same ``WindowRecord``, so this module
parses none of the runner's keys itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from base_monitoring_client import contract as series_contract
from ffmpeg_runner.contract import (
    FRAMES_METRIC,
    INFO_METRIC,
    OUTPUT_BITRATE_METRIC,
    QUALITY_METRIC,
    SUPPORTED_SCHEMA_VERSIONS,
    WINDOW_CPU_METRIC,
    Accounting,
    ContractError,
    InfoLabels,
    MetricScore,
    OutputLabels,
    OutputQuality,
    Rung,
    RunManifest,
    WindowRecord,
)

from .errors import ManifestError
from .prom import Series

log = logging.getLogger(__name__)
SUPPORTED_MANIFEST_VERSIONS = SUPPORTED_SCHEMA_VERSIONS
# The series that describe windows (discovery reads them all with one selector).
WINDOW_METRICS = (
    INFO_METRIC,
    FRAMES_METRIC,
    QUALITY_METRIC,
    OUTPUT_BITRATE_METRIC,
    WINDOW_CPU_METRIC,
)
_OUTPUT_METRICS = (FRAMES_METRIC, QUALITY_METRIC, OUTPUT_BITRATE_METRIC)


@dataclass
class RunInfo:
    """One run the report covers: from its manifest (``manifest`` set), or discovered."""

    run_id: str
    status: str
    hostname: str
    sample_interval_s: float | None
    source: str
    host: Mapping[str, Any] = field(default_factory=dict)
    ffmpeg: Mapping[str, Any] = field(default_factory=dict)
    manifest: RunManifest | None = None


def load_manifest(path: Path) -> tuple[RunInfo, list[WindowRecord]]:
    """One manifest of any supported schema, read by the contract's ``RunManifest``."""
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ManifestError(
            f"cannot read results manifest {path}: {exc.strerror}; pass the results/<run_id>.json "
            "written by ffmpeg-runner"
        ) from exc
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path} is not JSON ({exc}); pass an ffmpeg-runner manifest") from exc
    try:
        manifest = RunManifest.from_json(doc, str(path))
    except ContractError as exc:
        raise ManifestError(str(exc)) from None
    run = RunInfo(
        run_id=manifest.run_id,
        status=manifest.status,
        hostname=manifest.instance,
        sample_interval_s=manifest.sample_interval_s,
        source=str(path),
        host=manifest.host,
        ffmpeg=manifest.ffmpeg,
        manifest=manifest,
    )
    return run, list(manifest.windows)


def load_manifests(paths: Iterable[Path]) -> tuple[list[RunInfo], list[WindowRecord]]:
    runs: list[RunInfo] = []
    windows: list[WindowRecord] = []
    for path in paths:
        run, ws = load_manifest(path)
        runs.append(run)
        windows.extend(ws)
    return runs, windows


def _split_runs(t: np.ndarray[Any, Any], max_gap_s: float) -> list[tuple[float, float]]:
    if t.size == 0:
        return []
    breaks = np.nonzero(np.diff(t) > max_gap_s)[0]
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [t.size - 1]))
    return [(float(t[a]), float(t[b])) for a, b in zip(starts, ends, strict=True)]


def discover_windows(
    series: Sequence[Series], *, run_id: str | None = None, max_gap_s: float = 5.0
) -> list[WindowRecord]:
    """Windows from ``ffmpeg_scenario_info`` (present for exactly the window's duration).

    Start/end are the first/last sample of the info series (precise to one sample interval).
    Frames and output pixels come from the increase of ``ffmpeg_frames_total`` between the
    window's edges (None without it); fps from the info series' ``fps`` label (absent before
    manifest schema 2); quality and achieved bitrate from ``ffmpeg_output_quality`` /
    ``ffmpeg_output_bitrate_bits_per_second`` (pushed once per output after the window, so
    matched by run, scenario and repeat); the CPU accounting from
    ``ffmpeg_window_cpu_seconds`` (one sample per scope at the window's end, matched by run,
    scenario, phase and repeat; None when a scope is missing, as before manifest schema 3).
    Labels are read through the contract's ``InfoLabels`` / ``OutputLabels``; a series whose
    labels break the contract is skipped with a warning, except a transcode window's
    ``ladder``: its window is kept with the contract's words for what is wrong as its
    ``problem``, and its pixels where the ``WxH`` parts are readable.
    """
    by_window: dict[tuple[str, str, int], list[tuple[OutputLabels, Series]]] = {}
    cpu_by_window: dict[tuple[str, str, int, str], list[tuple[OutputLabels, Series]]] = {}
    for s in series:
        if s.name in _OUTPUT_METRICS or s.name == WINDOW_CPU_METRIC:
            try:
                out = OutputLabels.from_labels(s.labels)
            except ContractError as exc:
                log.warning("%s series skipped: %s", s.name, exc)
                continue
            if s.name == WINDOW_CPU_METRIC:
                key = (*out.window, str(out.phase))
                cpu_by_window.setdefault(key, []).append((out, s))
            else:
                by_window.setdefault(out.window, []).append((out, s))
    windows: list[WindowRecord] = []
    for s in series:
        if s.name != INFO_METRIC:
            continue
        try:
            info = InfoLabels.from_labels(s.labels)
        except ContractError as exc:
            log.warning("%s series skipped: %s", INFO_METRIC, exc)
            continue
        if run_id and info.run_id != run_id:
            continue
        for start, end in _split_runs(s.t, max_gap_s):
            start_ms, end_ms = round(start * 1000), round(end * 1000)
            if end_ms <= start_ms:
                continue
            frames: float | None = None
            quality: tuple[OutputQuality, ...] = ()
            problem = None
            if info.phase == "transcode":
                related = by_window.get((info.run_id, info.scenario, info.repeat), [])
                frames = _frames_in(start, end, [r for _, r in related if r.name == FRAMES_METRIC])
                quality = _quality_after(start, info.rungs, related)
                problem = _problems(info.ladder_read.problem, _no_frames(frames))
            accounting = _accounting_at(
                end, cpu_by_window.get((info.run_id, info.scenario, info.repeat, info.phase), [])
            )
            per_frame = info.ladder_read.pixels_per_frame
            pixels = None if frames is None or per_frame is None else frames * per_frame
            windows.append(
                WindowRecord(
                    run_id=info.run_id,
                    instance=s.labels.get("instance", ""),
                    scenario=info.scenario,
                    phase=info.phase,
                    repeat=info.repeat,
                    start_ms=start_ms,
                    end_ms=end_ms,
                    encoder=info.encoder,
                    preset=info.preset,
                    bitrate=info.bitrate,
                    rate_control=info.rate_control,
                    quality_value=info.quality_value,
                    streams=info.streams,
                    ladder=info.ladder,
                    rungs=info.rungs,
                    fps=info.fps if info.fps and info.fps > 0 else None,
                    realtime=None,
                    frames_total=None if frames is None else round(frames),
                    output_pixels=None if pixels is None else round(pixels),
                    dropped_frames=None,
                    quality=quality,
                    accounting=accounting,
                    origin="discovered",
                    problem=problem,
                )
            )
    windows.sort(key=lambda w: (w.start_ms, w.scenario))
    return windows


def _problems(*found: str | None) -> str | None:
    return "; ".join(p for p in found if p) or None


def _no_frames(frames: float | None) -> str | None:
    if frames is not None:
        return None
    return f"no {FRAMES_METRIC} series covers the window: its frames and output pixels are unknown"


def _frames_in(start_s: float, end_s: float, frames: Sequence[Series]) -> float | None:
    """Σ frames over every output between the window's edges; pixels assume the rungs of a
    stream share its frame count (one decode, split and scaled), so no output label has to be
    mapped to a rung. None when no progress series covers the window.

    Like energy, each output's counter is read at the edges by interpolating between the
    samples around them (the runner's progress runs from before the window, in stabilization,
    to its final count after it): the first and last samples inside would lose up to one
    progress interval of frames at each edge. An edge outside the series is read at the series'
    nearest end (no extrapolation).
    """
    total = 0.0
    found = False
    for s in frames:
        near = (s.t >= start_s) & (s.t <= end_s)
        if not near.any() and not (s.t.size and s.t[0] < start_s and s.t[-1] > end_s):
            continue  # a repeat of the same labels far from this window
        if s.t.size < 2:
            continue
        at_start, at_end = np.interp([start_s, end_s], s.t, s.v)
        total += float(at_end - at_start)
        found = True
    return total if found else None


def _accounting_at(
    end_s: float, related: Sequence[tuple[OutputLabels, Series]]
) -> Accounting | None:
    """The window's ``Accounting`` from its ``ffmpeg_window_cpu_seconds`` samples (the one
    nearest the window's end per scope); None unless transcode, host busy and host total are all
    there."""
    by_scope: dict[str, float] = {}
    for out, s in related:
        if out.scope is None or not s.t.size:
            continue
        k = int(np.argmin(np.abs(s.t - end_s)))
        by_scope[out.scope] = float(s.v[k])
    needed = (
        series_contract.SCOPE_TRANSCODE,
        series_contract.SCOPE_HOST_BUSY,
        series_contract.SCOPE_HOST_TOTAL,
    )
    missing = [scope for scope in needed if scope not in by_scope]
    if missing:
        if by_scope:
            log.warning(
                "%s of a window ending at %.3f lacks scope(s) %s; its CPU accounting is unknown",
                WINDOW_CPU_METRIC,
                end_s,
                ", ".join(missing),
            )
        return None
    if any(v < 0 for v in by_scope.values()):
        log.warning(
            "%s: negative CPU seconds at %.3f; accounting ignored", WINDOW_CPU_METRIC, end_s
        )
        return None
    return Accounting(
        transcode_cpu_s=by_scope[series_contract.SCOPE_TRANSCODE],
        host_busy_cpu_s=by_scope[series_contract.SCOPE_HOST_BUSY],
        host_total_cpu_s=by_scope[series_contract.SCOPE_HOST_TOTAL],
        cgroup_cpu_s=by_scope.get(series_contract.SCOPE_CGROUP),
    )


def _quality_after(
    start_s: float, rungs: Sequence[Rung], related: Sequence[tuple[OutputLabels, Series]]
) -> tuple[OutputQuality, ...]:
    """One OutputQuality per rung from the quality and achieved-bitrate series (their means:
    Prometheus keeps no 5th percentile, size or duration)."""
    scores: dict[str, dict[str, list[float]]] = {}
    achieved: dict[str, list[float]] = {}
    for out, s in related:
        # Pushed at the window's end: the latest sample is this window's (a later repeat has
        # its own repeat label).
        after = s.v[s.t >= start_s]
        if not after.size or out.rung is None:
            continue
        if s.name == QUALITY_METRIC and out.metric:
            scores.setdefault(out.rung, {}).setdefault(out.metric, []).append(float(after[-1]))
        elif s.name == OUTPUT_BITRATE_METRIC:
            achieved.setdefault(out.rung, []).append(float(after[-1]))
    by_key = {r.key: r for r in rungs}
    outputs = []
    for key in dict.fromkeys([*scores, *achieved]):
        rung = by_key.get(key)
        bps = achieved.get(key)
        outputs.append(
            OutputQuality(
                rung=key,
                name=rung.name if rung else "",
                stream=0,
                target_bitrate_bps=rung.target_bitrate_bps if rung else None,
                achieved_bitrate_bps=float(np.mean(bps)) if bps else None,
                scores={m: MetricScore(float(np.mean(v))) for m, v in scores.get(key, {}).items()},
            )
        )
    return tuple(outputs)
