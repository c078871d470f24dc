"""Measurement windows: read from ffmpeg-runner manifests or discovered from Prometheus.

The manifest and the metric/label names are ffmpeg-runner's contract
(``ffmpeg_runner.contract``): each manifest window is read with ``WindowRecord.from_json``
(schema 1 or 2), so this module parses none of the runner's keys itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ffmpeg_runner.contract import (
    FRAMES_METRIC,
    INFO_METRIC,
    OUTPUT_BITRATE_METRIC,
    QUALITY_METRIC,
    SUPPORTED_SCHEMA_VERSIONS,
    ContractError,
    InfoLabels,
    OutputLabels,
    Rung,
    WindowRecord,
)

from .errors import ManifestError
from .prom import Series

log = logging.getLogger(__name__)
SUPPORTED_MANIFEST_VERSIONS = SUPPORTED_SCHEMA_VERSIONS
# The series that describe windows (discovery reads them all with one selector).
WINDOW_METRICS = (INFO_METRIC, FRAMES_METRIC, QUALITY_METRIC, OUTPUT_BITRATE_METRIC)


@dataclass
class Window:
    """One measured window (a baseline or one repeat of a transcode scenario).

    ``quality`` maps each output rung key (``WxH@BITRATE``) to its mean score per metric,
    averaged over the scenario's streams; ``achieved_bitrate_bps`` likewise per rung.
    ``realtime`` is None when unknown (windows discovered from Prometheus do not say).
    """

    run_id: str
    scenario: str
    phase: str
    repeat: int
    start_s: float
    end_s: float
    encoder: str = ""
    preset: str = ""
    bitrate: str = ""
    streams: int = 1
    ladder: str = ""
    rungs: tuple[Rung, ...] = ()
    fps: float = float("nan")
    status: str = "ok"
    error: str | None = None
    frames_total: float = float("nan")
    output_pixels: float = float("nan")
    dropped_frames: float = float("nan")
    hostname: str = ""
    origin: str = "manifest"
    realtime: bool | None = None
    quality: dict[str, dict[str, float]] = field(default_factory=dict)
    achieved_bitrate_bps: dict[str, float] = field(default_factory=dict)
    quality_error: str | None = None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def window_id(self) -> str:
        return f"{self.run_id}/{self.scenario}/{self.phase}/{self.repeat}"

    @property
    def top_bitrate_bps(self) -> float:
        """The top rung's bitrate (the ``bitrate`` the runner reports); NaN without rungs."""
        return float(self.rungs[0].bitrate_bps) if self.rungs else float("nan")

    @property
    def nominal_pixels_per_s(self) -> float:
        """Streams x Σ rung widthxheight x fps: the pixel rate the configuration asks for."""
        if not self.rungs or not np.isfinite(self.fps):
            return float("nan")
        return float(self.streams * sum(r.pixels for r in self.rungs) * self.fps)

    def rung_quality(self, metric: str) -> float:
        """The single output's mean score (NaN for ladders of several rungs or unmeasured)."""
        if len(self.rungs) != 1:
            return float("nan")
        return self.quality.get(self.rungs[0].key, {}).get(metric, float("nan"))

    def rung_achieved_bitrate(self) -> float:
        if len(self.rungs) != 1:
            return float("nan")
        return self.achieved_bitrate_bps.get(self.rungs[0].key, float("nan"))


@dataclass
class RunInfo:
    run_id: str
    status: str
    hostname: str
    sample_interval_s: float | None
    source: str
    host: Mapping[str, Any] = field(default_factory=dict)
    ffmpeg: Mapping[str, Any] = field(default_factory=dict)


def _req(obj: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise ManifestError(f"{where}: missing field {key!r}; regenerate it with ffmpeg-runner")
    return obj[key]


def _nan(value: float | int | None) -> float:
    return float("nan") if value is None else float(value)


def window_from_record(rec: WindowRecord, run: RunInfo) -> Window:
    quality: dict[str, dict[str, list[float]]] = {}
    achieved: dict[str, list[float]] = {}
    for out in rec.quality:  # one per encoded output: streams x rungs
        for metric, score in out.scores.items():
            quality.setdefault(out.rung, {}).setdefault(metric, []).append(score.mean)
        achieved.setdefault(out.rung, []).append(out.achieved_bitrate_bps)
    fps = rec.fps if rec.fps is not None else (rec.source.fps if rec.source else None)
    return Window(
        run_id=run.run_id,
        scenario=rec.scenario,
        phase=rec.phase,
        repeat=rec.repeat,
        start_s=rec.start_ms / 1000.0,
        end_s=rec.end_ms / 1000.0,
        encoder=rec.encoder,
        preset=rec.preset,
        bitrate=rec.bitrate,
        streams=rec.streams,
        ladder=rec.ladder,
        rungs=rec.rungs,
        fps=_nan(fps),
        status=rec.status,
        error=rec.error,
        frames_total=float(rec.frames_total),
        output_pixels=float(rec.output_pixels),
        dropped_frames=float(rec.dropped_frames),
        hostname=run.hostname,
        origin="manifest",
        realtime=rec.realtime,
        quality={r: {m: float(np.mean(v)) for m, v in q.items()} for r, q in quality.items()},
        achieved_bitrate_bps={r: float(np.mean(v)) for r, v in achieved.items()},
        quality_error=rec.quality_error,
    )


def load_manifest(path: Path) -> tuple[RunInfo, list[Window]]:
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ManifestError(
            f"cannot read results manifest {path}: {exc.strerror}; pass the results/<run_id>.json "
            "written by ffmpeg-runner"
        ) from exc
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path} is not JSON ({exc}); pass an ffmpeg-runner manifest") from exc
    if not isinstance(doc, dict):
        raise ManifestError(f"{path}: expected a JSON object (ffmpeg-runner results manifest)")
    version = doc.get("schema_version")
    if version not in SUPPORTED_MANIFEST_VERSIONS:
        raise ManifestError(
            f"{path}: schema_version {version!r} is not supported (this advisor reads "
            f"{SUPPORTED_MANIFEST_VERSIONS}); upgrade the advisor or re-run ffmpeg-runner"
        )
    host = doc.get("host") or {}
    interval = doc.get("sample_interval_s")
    run = RunInfo(
        run_id=str(_req(doc, "run_id", str(path))),
        status=str(doc.get("status") or "completed"),
        hostname=str(host.get("instance") or host.get("hostname") or ""),
        sample_interval_s=float(interval) if isinstance(interval, int | float) else None,
        source=str(path),
        host=host,
        ffmpeg=doc.get("ffmpeg") or {},
    )
    raw_windows = _req(doc, "windows", str(path))
    if not isinstance(raw_windows, list):
        raise ManifestError(f"{path}: windows: expected a list; regenerate it with ffmpeg-runner")
    windows = []
    for i, raw in enumerate(raw_windows):
        try:
            rec = WindowRecord.from_json(raw, f"{path}: windows[{i}]")
        except ContractError as exc:
            raise ManifestError(str(exc)) from None
        windows.append(window_from_record(rec, run))
    return run, windows


def load_manifests(paths: Iterable[Path]) -> tuple[list[RunInfo], list[Window]]:
    runs: list[RunInfo] = []
    windows: list[Window] = []
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
) -> list[Window]:
    """Windows from ``ffmpeg_scenario_info`` (present for exactly the window's duration).

    Start/end are the first/last sample of the info series (precise to one sample interval).
    Frames and output pixels come from the increase of ``ffmpeg_frames_total`` within the
    window; fps from the info series' ``fps`` label (absent before manifest schema 2); quality
    and achieved bitrate from ``ffmpeg_output_quality`` / ``ffmpeg_output_bitrate_bits_per_
    second`` (pushed once per output after the window, so matched by run, scenario and repeat).
    Labels are read through the contract's ``InfoLabels`` / ``OutputLabels``; a series whose
    labels break the contract is skipped with a warning.
    """
    by_window: dict[tuple[str, str, int], list[tuple[OutputLabels, Series]]] = {}
    for s in series:
        if s.name in (FRAMES_METRIC, QUALITY_METRIC, OUTPUT_BITRATE_METRIC):
            try:
                out = OutputLabels.from_labels(s.labels)
            except ContractError as exc:
                log.warning("%s series skipped: %s", s.name, exc)
                continue
            by_window.setdefault(out.window, []).append((out, s))
    windows: list[Window] = []
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
            if end <= start:
                continue
            w = Window(
                run_id=info.run_id,
                scenario=info.scenario,
                phase=info.phase,
                repeat=info.repeat,
                start_s=start,
                end_s=end,
                encoder=info.encoder,
                preset=info.preset,
                bitrate=info.bitrate,
                streams=info.streams,
                ladder=info.ladder,
                rungs=info.rungs,
                fps=info.fps if info.fps and info.fps > 0 else float("nan"),
                hostname=s.labels.get("instance", ""),
                origin="discovered",
            )
            if w.phase == "transcode":
                related = by_window.get((w.run_id, w.scenario, w.repeat), [])
                _attach_frames(w, [r for _, r in related if r.name == FRAMES_METRIC])
                _attach_quality(w, related)
            windows.append(w)
    windows.sort(key=lambda w: (w.start_s, w.scenario))
    return windows


def _attach_frames(w: Window, frames: Sequence[Series]) -> None:
    """Σ frames over every output; pixels assume the rungs of a stream share its frame count
    (one decode, split and scaled), so no output label has to be mapped to a rung."""
    total = 0.0
    found = False
    for s in frames:
        inside = (s.t >= w.start_s) & (s.t <= w.end_s)
        if inside.sum() < 2:
            continue
        vals = s.v[inside]
        total += float(vals[-1] - vals[0])
        found = True
    if found:
        w.frames_total = total
        w.output_pixels = (
            total * sum(r.pixels for r in w.rungs) / len(w.rungs) if w.rungs else float("nan")
        )


def _attach_quality(w: Window, related: Sequence[tuple[OutputLabels, Series]]) -> None:
    quality: dict[str, dict[str, list[float]]] = {}
    achieved: dict[str, list[float]] = {}
    for out, s in related:
        # Pushed at the window's end: the latest sample is this window's (a later repeat has
        # its own repeat label).
        after = s.v[s.t >= w.start_s]
        if not after.size or out.rung is None:
            continue
        if s.name == QUALITY_METRIC and out.metric:
            quality.setdefault(out.rung, {}).setdefault(out.metric, []).append(float(after[-1]))
        elif s.name == OUTPUT_BITRATE_METRIC:
            achieved.setdefault(out.rung, []).append(float(after[-1]))
    w.quality = {r: {m: float(np.mean(v)) for m, v in q.items()} for r, q in quality.items()}
    w.achieved_bitrate_bps = {r: float(np.mean(v)) for r, v in achieved.items()}
