"""Target-quality searches (``ffmpeg-runner search``) in the report.

A search chose one setting per family and measured energy windows at it. Here each family's
joules per output minute is the one *measured* in those windows (mean ± 95 % CI over its
repeats), never interpolated; its quality is the chosen probe's score. The families found are
ranked by that energy, the winner named; with several families, the frontier says which are
not beaten on both energy and quality. The probes are listed per family.

Another ``--target-quality`` than the searches' targets is answered from the settings searched
for other targets: a family's energy is interpolated linearly in quality between two searched
settings that bracket it (several search runs at different targets), else it is not reached,
and the report says which.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from ffmpeg_runner.contract import SearchRecord

from .attribution import basis_score
from .energy import mean_ci95
from .notes import Note, note
from .quality import (
    AtTarget,
    Point,
    QualityAnalysis,
    QualityTarget,
    dominance,
    family_name,
    interpolate,
)
from .windows import RunInfo

PER_MINUTE = "energy_per_output_minute_j"  # the score; its column on each basis: basis_score


@dataclass
class SearchedFamily:
    """One family of one search, with the energy measured at its chosen setting."""

    run_id: str
    record: SearchRecord
    name: str  # the advisor's family name, e.g. libx264/veryfast/640x360/crf
    energy: float = math.nan  # J per output minute at the chosen setting
    energy_ci95: float = math.nan
    repeats: int = 0
    rank: int | None = None
    dominated_by: str | None = None
    # found, but no ok window of its scenario has this column: why it has no energy
    unmeasured_column: str | None = None

    @property
    def target(self) -> QualityTarget:
        return QualityTarget(self.record.target_metric, self.record.target_value)

    @property
    def measured(self) -> bool:
        return self.record.chosen is not None and math.isfinite(self.energy)

    @property
    def score(self) -> float:
        """The chosen probe's quality score; NaN without one."""
        chosen = self.record.chosen
        return math.nan if chosen is None or chosen.score is None else chosen.score


@dataclass(frozen=True)
class Interpolated:
    """Another target than the searches': one family between two searched settings."""

    family: str
    points: list[Point]  # the searched settings, in quality order
    at: AtTarget | None  # None: no two settings bracket the target


@dataclass
class SearchAnalysis:
    """The searches of the runs a report covers."""

    target: QualityTarget  # the one the recommendation answers
    searched: bool  # True: a search ran at ``target``; False: interpolated from others
    basis: str  # the report's energy basis: attributed | net | gross (attribution.BASES)
    searched_targets: list[QualityTarget] = field(default_factory=list)
    families: list[SearchedFamily] = field(default_factory=list)  # at ``target`` when searched
    interpolated: list[Interpolated] = field(default_factory=list)  # when not searched
    notes: list[Note] = field(default_factory=list)
    winner: str | None = None

    @property
    def frontier(self) -> list[str]:
        return sorted(f.name for f in self.families if f.measured and f.dominated_by is None)


def analyze_search(
    runs: Sequence[RunInfo],
    windows: pd.DataFrame,
    asked: QualityTarget | None,
    quality: QualityAnalysis | None = None,
    basis: str = "net",
) -> SearchAnalysis | None:
    """The report's search section, or None when no run was a search; ``basis`` is the
    report's energy basis (one for every figure). ``quality``'s list of scenarios left out is
    told why the search's windows have no score of their own."""
    found = [(run.run_id, r) for run in runs if run.manifest for r in run.manifest.search]
    if not found:
        return None
    families = [_measure(run_id, r, windows, basis) for run_id, r in found]
    searched_targets = list(dict.fromkeys(f.target for f in families))
    target = asked or searched_targets[0]
    out = SearchAnalysis(
        target=target,
        searched=target in searched_targets,
        basis=basis,
        searched_targets=searched_targets,
    )
    if len(searched_targets) > 1 and asked is None:
        out.notes.append(note("search_targets", targets=searched_targets, target=target))
    if out.searched:
        out.families = [f for f in families if f.target == target]
        _rank(out)
    else:
        _interpolate(out, families)
    if quality is not None:
        _explain_unscored(quality, families)
    return out


def _ok_windows(windows: pd.DataFrame, scenarios: Iterable[str]) -> pd.DataFrame:
    if windows.empty:
        return windows
    keep = (
        windows["scenario"].isin(list(scenarios))
        & (windows["phase"] == "transcode")
        & (windows["status"] == "ok")
    )
    return windows[keep]


def _measure(run_id: str, r: SearchRecord, windows: pd.DataFrame, basis: str) -> SearchedFamily:
    name = family_name(r.encoder, r.preset, r.resolution, 1, False, rate_control=r.rate_control)
    fam = SearchedFamily(run_id=run_id, record=r, name=name)
    if r.chosen is None or not r.scenario:
        return fam
    mine = _ok_windows(windows, [r.scenario])
    mine = mine[mine["run_id"] == run_id] if "run_id" in mine else mine
    column = basis_score(PER_MINUTE, basis)
    fam.energy, fam.energy_ci95, fam.repeats = mean_ci95(mine[column].to_numpy(dtype=np.float64))
    if not fam.repeats:
        fam.unmeasured_column = column
    return fam


def _rank(out: SearchAnalysis) -> None:
    """The measured families by energy, each one's place on the frontier, the winner."""
    measured = sorted((f for f in out.families if f.measured), key=lambda f: (f.energy, f.name))
    for i, fam in enumerate(measured, 1):
        fam.rank = i
    points = [(f.name, f.energy, f.score) for f in measured]
    for fam in measured:
        fam.dominated_by = dominance(points)[fam.name] if len(points) > 1 else None
    others = [f for f in out.families if not f.measured]
    out.families = [*measured, *sorted(others, key=lambda f: f.name)]
    if measured:
        out.winner = measured[0].name


def _interpolate(out: SearchAnalysis, families: Sequence[SearchedFamily]) -> None:
    """Another target than any search's: per family, between two searched settings."""
    t = out.target
    by_name: dict[str, list[SearchedFamily]] = {}
    for f in families:
        if f.measured and f.target.metric == t.metric:
            by_name.setdefault(f.name, []).append(f)
    rows: list[Interpolated] = []
    for name, fams in sorted(by_name.items()):
        points = sorted(
            (
                Point(
                    bitrate_bps=f.record.chosen.bitrate_bps or math.nan,
                    quality=f.score,
                    energy=f.energy,
                    energy_ci95=f.energy_ci95,
                    n=f.repeats,
                    scenarios=(f.record.scenario or "",),
                    rate_control=f.record.rate_control,
                    quality_value=f.record.chosen.value,
                )
                for f in fams
                if f.record.chosen is not None
            ),
            key=lambda p: p.quality,
        )
        rows.append(Interpolated(name, points, interpolate(points, t.value)))
    rows.sort(key=lambda r: (r.at is None, r.at.energy if r.at else 0.0, r.family))
    out.interpolated = rows
    if rows and rows[0].at is not None:
        out.winner = rows[0].family


def _explain_unscored(quality: QualityAnalysis, families: Sequence[SearchedFamily]) -> None:
    """The search's windows measure energy only; their quality is the chosen probe's."""
    why = {
        f.record.scenario: note(
            "search_windows", family=f.name, metric=f.target.metric, score=f.score
        )
        for f in families
        if f.record.scenario and f.record.chosen is not None
    }
    for entry in quality.excluded:
        if entry.get("scenario") in why:
            entry["why"] = why[entry["scenario"]]
