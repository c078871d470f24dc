"""Measurement windows: read from ffmpeg-runner manifests or discovered from Prometheus.

The manifest contract (``results/<run_id>.json``, schema_version 1) is in the project briefs:
each window has its exact ``start_ms``/``end_ms`` (stabilization excluded), ``phase``
(``baseline``/``transcode``), ``status`` and, for transcodes, frames and output pixels.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ffmpeg_runner.contract import SUPPORTED_SCHEMA_VERSIONS

from .errors import ManifestError
from .prom import Series

SUPPORTED_MANIFEST_VERSIONS = SUPPORTED_SCHEMA_VERSIONS
_BITRATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)(?:bps|b)?\s*$")
_RUNG_RE = re.compile(r"^(\d+)x(\d+)@(\S+)$")
_NAME_HEIGHT_RE = re.compile(r"^(\d+)p")


def parse_bitrate(text: str | float | int | None) -> float:
    """ffmpeg-style bitrate (``2M``, ``800k``, ``1500000``) in bits per second; NaN if unknown."""
    if text is None:
        return float("nan")
    if isinstance(text, int | float):
        return float(text)
    match = _BITRATE_RE.match(text)
    if not match:
        return float("nan")
    number, unit = match.groups()
    return float(number) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[unit.lower()]


@dataclass(frozen=True)
class Rung:
    name: str
    width: int
    height: int
    bitrate: str

    @property
    def pixels(self) -> int:
        return self.width * self.height


def ladder_key(rungs: Sequence[Rung]) -> str:
    """Contract ladder key: rungs sorted by height desc, ``WxH@BITRATE`` joined with ``+``."""
    ordered = sorted(rungs, key=lambda r: (-r.height, -r.width, r.bitrate))
    return "+".join(f"{r.width}x{r.height}@{r.bitrate}" for r in ordered)


def parse_ladder(key: str) -> list[Rung]:
    """Rungs of a ladder key (names synthesised as ``<height>p``); [] when unparseable."""
    rungs: list[Rung] = []
    for part in key.split("+"):
        match = _RUNG_RE.match(part.strip())
        if not match:
            return []
        w, h, br = match.groups()
        rungs.append(Rung(f"{h}p", int(w), int(h), br))
    return rungs


@dataclass
class Window:
    """One measured window (a baseline or one repeat of a transcode scenario)."""

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
    rungs: list[Rung] = field(default_factory=list)
    fps: float = float("nan")
    status: str = "ok"
    error: str | None = None
    frames_total: float = float("nan")
    output_pixels: float = float("nan")
    dropped_frames: float = float("nan")
    hostname: str = ""
    origin: str = "manifest"

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def window_id(self) -> str:
        return f"{self.run_id}/{self.scenario}/{self.phase}/{self.repeat}"

    @property
    def nominal_pixels_per_s(self) -> float:
        """Streams x Σ rung widthxheight x fps: the pixel rate the configuration asks for."""
        if not self.rungs or not np.isfinite(self.fps):
            return float("nan")
        return float(self.streams * sum(r.pixels for r in self.rungs) * self.fps)


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


def _window_from_manifest(raw: Mapping[str, Any], run: RunInfo, where: str) -> Window:
    start_ms = _req(raw, "start_ms", where)
    end_ms = _req(raw, "end_ms", where)
    if not isinstance(start_ms, int | float) or not isinstance(end_ms, int | float):
        raise ManifestError(f"{where}: start_ms/end_ms must be unix milliseconds")
    if end_ms <= start_ms:
        raise ManifestError(f"{where}: end_ms {end_ms} is not after start_ms {start_ms}")
    rungs = [
        Rung(
            str(r.get("name", f"{r.get('height')}p")),
            int(r["width"]),
            int(r["height"]),
            str(r.get("bitrate", "")),
        )
        for r in (raw.get("rungs") or [])
    ]
    ladder = str(raw.get("ladder") or "")
    if rungs:
        ladder = ladder_key(rungs)  # recompute: the ranking must not trust free text
    elif ladder:
        rungs = parse_ladder(ladder)

    def num(key: str) -> float:
        value = raw.get(key)
        return float(value) if isinstance(value, int | float) else float("nan")

    return Window(
        run_id=run.run_id,
        scenario=str(_req(raw, "scenario", where)),
        phase=str(_req(raw, "phase", where)),
        repeat=int(raw.get("repeat") or 0),
        start_s=start_ms / 1000.0,
        end_s=end_ms / 1000.0,
        encoder=str(raw.get("encoder") or ""),
        preset=str(raw.get("preset") or "default"),
        bitrate=str(raw.get("bitrate") or ""),
        streams=int(raw.get("streams") or 1),
        ladder=ladder,
        rungs=rungs,
        fps=num("fps"),
        status=str(raw.get("status") or "ok"),
        error=raw.get("error"),
        frames_total=num("frames_total"),
        output_pixels=num("output_pixels"),
        dropped_frames=num("dropped_frames"),
        hostname=run.hostname,
        origin="manifest",
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
        hostname=str(host.get("hostname") or ""),
        sample_interval_s=float(interval) if isinstance(interval, int | float) else None,
        source=str(path),
        host=host,
        ffmpeg=doc.get("ffmpeg") or {},
    )
    windows = [
        _window_from_manifest(w, run, f"{path}: windows[{i}]")
        for i, w in enumerate(_req(doc, "windows", str(path)))
    ]
    return run, windows


def load_manifests(paths: Iterable[Path]) -> tuple[list[RunInfo], list[Window]]:
    runs: list[RunInfo] = []
    windows: list[Window] = []
    for path in paths:
        run, ws = load_manifest(path)
        runs.append(run)
        windows.extend(ws)
    return runs, windows


INFO_METRIC = "ffmpeg_scenario_info"
FRAMES_METRIC = "ffmpeg_frames_total"


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
    Frames and output pixels come from the increase of ``ffmpeg_frames_total`` per stream and
    rung within the window; fps is unknown in this mode.
    """
    frames = [s for s in series if s.name == FRAMES_METRIC]
    windows: list[Window] = []
    for s in series:
        if s.name != INFO_METRIC:
            continue
        lab = s.labels
        if run_id and lab.get("run_id") != run_id:
            continue
        for start, end in _split_runs(s.t, max_gap_s):
            if end <= start:
                continue
            ladder = lab.get("ladder", "")
            w = Window(
                run_id=lab.get("run_id", ""),
                scenario=lab.get("scenario", ""),
                phase=lab.get("phase", "transcode"),
                repeat=int(lab.get("repeat", "0") or 0),
                start_s=start,
                end_s=end,
                encoder=lab.get("encoder", ""),
                preset=lab.get("preset", "default"),
                bitrate=lab.get("bitrate", ""),
                streams=int(lab.get("streams", "1") or 1),
                ladder=ladder,
                rungs=parse_ladder(ladder),
                hostname=lab.get("instance", ""),
                origin="discovered",
            )
            if w.phase == "transcode":
                _attach_frames(w, frames)
            windows.append(w)
    windows.sort(key=lambda w: (w.start_s, w.scenario))
    return windows


def _attach_frames(w: Window, frames: Sequence[Series]) -> None:
    total = 0.0
    pixels = 0.0
    found = False
    by_height = {r.height: r for r in w.rungs}
    for s in frames:
        lab = s.labels
        if (
            lab.get("run_id") != w.run_id
            or lab.get("scenario") != w.scenario
            or lab.get("repeat", "0") != str(w.repeat)
        ):
            continue
        inside = (s.t >= w.start_s) & (s.t <= w.end_s)
        if inside.sum() < 2:
            continue
        vals = s.v[inside]
        inc = float(vals[-1] - vals[0])
        found = True
        total += inc
        rung = None
        match = _NAME_HEIGHT_RE.match(lab.get("output", ""))
        if match:
            rung = by_height.get(int(match.group(1)))
        if rung is None and len(w.rungs) == 1:
            rung = w.rungs[0]
        pixels += inc * rung.pixels if rung is not None else float("nan")
    if found:
        w.frames_total = total
        w.output_pixels = pixels
