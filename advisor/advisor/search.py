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
from typing import Any

import numpy as np
import pandas as pd
from ffmpeg_runner.contract import SearchRecord

from .attribution import BASIS_TEXT, basis_score
from .energy import mean_ci95
from .quality import (
    METRIC_UNITS,
    UNIT,
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
    note: str | None = None  # why no energy, when found but not measured

    @property
    def target(self) -> QualityTarget:
        return QualityTarget(self.record.target_metric, self.record.target_value)

    @property
    def measured(self) -> bool:
        return self.record.chosen is not None and math.isfinite(self.energy)

    def to_json(self) -> dict[str, Any]:
        r = self.record
        return {
            "run_id": self.run_id,
            "family": self.name,
            "search_family": r.family,
            "status": r.status,
            "message": r.message,
            "target": self.target.to_json(),
            "chosen": None if r.chosen is None else _probe_json(r, r.chosen),
            "scenario": r.scenario,
            "energy_j_per_output_minute": _finite(self.energy),
            "energy_ci95": _finite(self.energy_ci95),
            "repeats": self.repeats,
            "rank": self.rank,
            "dominated_by": self.dominated_by,
            "note": self.note,
            "probes": [_probe_json(r, p) for p in r.probes],
        }


@dataclass
class SearchAnalysis:
    """The searches of the runs a report covers."""

    target: QualityTarget  # the one the recommendation answers
    searched: bool  # True: a search ran at ``target``; False: interpolated from others
    basis: str  # the report's energy basis: attributed | net | gross (attribution.BASES)
    families: list[SearchedFamily] = field(default_factory=list)  # at ``target`` when searched
    interpolated: list[dict[str, Any]] = field(default_factory=list)  # when not searched
    lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    winner: str | None = None

    @property
    def frontier(self) -> list[str]:
        return sorted(f.name for f in self.families if f.measured and f.dominated_by is None)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target.to_json(),
            "searched_at_target": self.searched,
            "energy_unit": UNIT,
            "energy_basis": self.basis,
            "recommendation": " ".join(self.lines),
            "winner": self.winner,
            "families": [f.to_json() for f in self.families],
            "frontier": self.frontier,
            "interpolated": self.interpolated,
            "notes": self.notes,
        }


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
    out = SearchAnalysis(target=target, searched=target in searched_targets, basis=basis)
    if len(searched_targets) > 1 and asked is None:
        out.notes.append(
            "searches ran at " + ", ".join(map(str, searched_targets)) + f"; the recommendation "
            f"answers the first, {target} (pass --target-quality for another)"
        )
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
        fam.note = (
            f"no ok energy window of {r.scenario} with {column.replace('_', ' ')}: see the "
            "windows not used"
        )
    return fam


def _rank(out: SearchAnalysis) -> None:
    t = out.target
    measured = sorted((f for f in out.families if f.measured), key=lambda f: (f.energy, f.name))
    for i, fam in enumerate(measured, 1):
        fam.rank = i
    points = [(f.name, f.energy, _score(f)) for f in measured]
    for fam in measured:
        fam.dominated_by = dominance(points)[fam.name] if len(points) > 1 else None
    others = [f for f in out.families if not f.measured]
    out.families = [*measured, *sorted(others, key=lambda f: f.name)]
    basis = BASIS_TEXT[out.basis]
    head = f"Target-quality search at {t} (energy measured at each family's setting, {basis})"
    if not measured:
        out.lines.append(
            f"{head}: no family was found and measured; "
            + "; ".join(
                f"{f.name}: {f.record.status} ({f.note or f.record.message})" for f in others
            )
            + "."
        )
        return
    win = measured[0]
    out.winner = win.name
    line = (
        f"{head}: {win.name} at {_setting(win)} ({t.metric} {_score(win):.4g}) uses "
        f"{_pm(win.energy, win.energy_ci95)} {UNIT}"
    )
    if len(measured) == 1:
        line += "; it is the only family found and measured"
    else:
        run = measured[1]
        diff = run.energy - win.energy
        ci = math.sqrt(win.energy_ci95**2 + run.energy_ci95**2)
        pct = 100.0 * diff / run.energy if run.energy else math.nan
        if not math.isfinite(ci):
            verdict = "uncertainty unknown: one repeat; run the search with --repeat 3"
        elif diff > ci:
            verdict = "the margin exceeds its 95 % uncertainty"
        else:
            verdict = "within the 95 % uncertainty: treat them as equal or measure more repeats"
        line += (
            f", {_pm(diff, ci)} {UNIT} ({pct:.0f} %) less than {run.name} at {_setting(run)} "
            f"({_pm(run.energy, run.energy_ci95)}); {verdict}"
        )
    out.lines.append(line + ".")
    for status, what in (
        ("unreachable", "Cannot reach the target at any setting searched"),
        ("exceeded", "Above the target even at the cheapest setting searched"),
        ("failed", "Search failed"),
    ):
        names = [f"{f.name} ({f.record.message})" for f in others if f.record.status == status]
        if names:
            out.lines.append(f"{what}: " + "; ".join(names) + ".")
    unmeasured = [f"{f.name} ({f.note})" for f in others if f.record.status == "found"]
    if unmeasured:
        out.lines.append("Found but not measured: " + "; ".join(unmeasured) + ".")


def _interpolate(out: SearchAnalysis, families: Sequence[SearchedFamily]) -> None:
    """Another target than any search's: per family, between two searched settings."""
    t = out.target
    by_name: dict[str, list[SearchedFamily]] = {}
    for f in families:
        if f.measured and f.target.metric == t.metric:
            by_name.setdefault(f.name, []).append(f)
    searched = ", ".join(sorted({str(f.target) for f in families}))
    rows: list[dict[str, Any]] = []
    for name, fams in sorted(by_name.items()):
        points = sorted(
            (
                Point(
                    bitrate_bps=f.record.chosen.bitrate_bps or math.nan,
                    quality=_score(f),
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
        at = interpolate(points, t.value)
        rows.append(
            {
                "family": name,
                "searched_settings": [p.setting for p in points],
                "energy_j_per_output_minute": None if at is None else at.energy,
                "energy_ci95": None if at is None else _finite(at.energy_ci95),
                "status": "interpolated" if at is not None else "not reached",
                "reason": None
                if at is not None
                else f"{len(points)} searched setting(s) ({t.metric} "
                + ", ".join(f"{p.quality:.4g}" for p in points)
                + f"); none pair brackets {t}",
            }
        )
    rows.sort(key=lambda r: (r["energy_j_per_output_minute"] is None,
                             r["energy_j_per_output_minute"] or 0.0, r["family"]))  # fmt: skip
    out.interpolated = rows
    reached = [r for r in rows if r["energy_j_per_output_minute"] is not None]
    head = (
        f"No search ran at {t} (searched: {searched}): energies are interpolated linearly in "
        "quality between two settings searched for other targets, where two bracket it"
    )
    if not reached:
        out.lines.append(
            f"{head}; no family has two: run ffmpeg-runner search --target "
            f"{t.metric}={t.value:g} for a measured answer."
        )
        return
    best = reached[0]
    out.winner = str(best["family"])
    energy = _pm(best["energy_j_per_output_minute"], best["energy_ci95"] or math.nan)
    out.lines.append(f"{head}. {best['family']} uses {energy} {UNIT} there (interpolated).")


def _explain_unscored(quality: QualityAnalysis, families: Sequence[SearchedFamily]) -> None:
    """The search's windows measure energy only; their quality is the chosen probe's."""
    why = {
        f.record.scenario: f"the energy windows of a target-quality search for {f.name}: its "
        f"quality is the chosen probe's ({f.target.metric} {_score(f):.4g}), in the search "
        "section"
        for f in families
        if f.record.scenario and f.record.chosen is not None
    }
    for entry in quality.excluded:
        if entry.get("scenario") in why:
            entry["reason"] = why[entry["scenario"]]


# -- tables -------------------------------------------------------------------------------------


def sections(search: SearchAnalysis | None) -> list[tuple[str, pd.DataFrame | str, str]]:
    """The report sections (title, body, kind) of the searches; none without a search."""
    if search is None:
        return []
    t = search.target
    out: list[tuple[str, pd.DataFrame | str, str]] = []
    if search.searched:
        out.append((f"Target-quality search at {t}: families", families_table(search), "main"))
        if len([f for f in search.families if f.measured]) > 1:
            out.append((f"Target-quality search at {t}: frontier", frontier_table(search), "main"))
    else:
        out.append(
            (f"Interpolated at {t} from settings searched for other targets",
             pd.DataFrame(search.interpolated), "main")
        )  # fmt: skip
    out.append(("Target-quality search: probes", probes_table(search), "main"))
    return out  # the notes go with the report's other notes


def families_table(search: SearchAnalysis) -> pd.DataFrame:
    unit = METRIC_UNITS[search.target.metric]
    rows = []
    for f in search.families:
        r = f.record
        rows.append(
            {
                "rank": "" if f.rank is None else str(f.rank),
                "family": f.name,
                "status": r.status,
                "setting": _setting(f) if r.chosen is not None else "",
                search.target.metric: f"{_score(f):.4g}{unit}" if r.chosen is not None else "",
                "bitrate": _kbps(r.chosen.bitrate_bps) if r.chosen is not None else "",
                f"{UNIT} (measured)": _pm(f.energy, f.energy_ci95) if f.measured else "",
                "repeats": f.repeats,
                "probes": len(r.probes),
                "probe seconds": f"{sum(p.encode_s + p.quality_s for p in r.probes):.1f}",
                "why": f.note or r.message,
            }
        )
    return pd.DataFrame(rows)


def frontier_table(search: SearchAnalysis) -> pd.DataFrame:
    rows = [
        {
            "family": f.name,
            search.target.metric: f"{_score(f):.4g}",
            UNIT: _pm(f.energy, f.energy_ci95),
            "frontier": "yes" if f.dominated_by is None else f"dominated by {f.dominated_by}",
        }
        for f in sorted(search.families, key=lambda f: f.energy)
        if f.measured
    ]
    return pd.DataFrame(rows)


def probes_table(search: SearchAnalysis) -> pd.DataFrame:
    families = search.families or []
    if not search.searched:
        return pd.DataFrame()
    rows = []
    for f in families:
        r = f.record
        for i, p in enumerate(r.probes, 1):
            rows.append(
                {
                    "family": f.name,
                    "probe": i,
                    "setting": _value(r.rate_control, p.value),
                    r.target_metric: "failed" if p.score is None else f"{p.score:.4g}",
                    "bitrate": _kbps(p.bitrate_bps),
                    "encode s": f"{p.encode_s:.1f}",
                    f"{r.target_metric} s": f"{p.quality_s:.1f}",
                    "chosen": "yes" if r.chosen is not None and p.value == r.chosen.value else "",
                    "error": p.error or "",
                }
            )
    return pd.DataFrame(rows)


# -- formatting -----------------------------------------------------------------------------------


def _score(f: SearchedFamily) -> float:
    chosen = f.record.chosen
    return math.nan if chosen is None or chosen.score is None else chosen.score


def _setting(f: SearchedFamily) -> str:
    chosen = f.record.chosen
    return "" if chosen is None else _value(f.record.rate_control, chosen.value)


def _value(rate_control: str, value: float) -> str:
    if rate_control == "bitrate":
        return _kbps(value)
    return f"{rate_control} {value:g}"


def _kbps(bps: float | None) -> str:
    if bps is None or not math.isfinite(bps):
        return ""
    return f"{bps / 1e6:.3g} Mb/s" if bps >= 1e6 else f"{bps / 1e3:.3g} kb/s"


def _pm(x: float, ci: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    text = f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"
    if math.isfinite(ci):
        text += f" ± {ci:.2g}" if abs(ci) < 100 else f" ± {ci:.0f}"
    return text


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _probe_json(r: SearchRecord, p: Any) -> dict[str, Any]:
    return {
        "value": p.value,
        "setting": _value(r.rate_control, p.value),
        "score": p.score,
        "bitrate_bps": p.bitrate_bps,
        "encode_s": p.encode_s,
        "quality_s": p.quality_s,
        "error": p.error,
    }
