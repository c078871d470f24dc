"""Target-quality searches in words, tables and JSON."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from ffmpeg_runner.contract import Probe, SearchRecord

from ..quality import UNIT
from ..search import Interpolated, SearchAnalysis, SearchedFamily
from . import numbers as n
from .notes import notes_text
from .words import BASIS_TEXT

Section = tuple[str, pd.DataFrame | str, str]


def _setting(f: SearchedFamily) -> str:
    chosen = f.record.chosen
    return "" if chosen is None else n.setting(f.record.rate_control, chosen.value)


def _note(f: SearchedFamily) -> str | None:
    """Why a family that was found has no energy."""
    if f.unmeasured_column is None:
        return None
    return (
        f"no ok energy window of {f.record.scenario} with "
        f"{f.unmeasured_column.replace('_', ' ')}: see the windows not used"
    )


def lines(search: SearchAnalysis) -> list[str]:
    """The search's recommendation, in words."""
    return _searched_lines(search) if search.searched else _interpolated_lines(search)


def _searched_lines(search: SearchAnalysis) -> list[str]:
    t = search.target
    measured = [f for f in search.families if f.measured]
    others = [f for f in search.families if not f.measured]
    head = (
        f"Target-quality search at {n.target(t)} (energy measured at each family's setting, "
        f"{BASIS_TEXT[search.basis]})"
    )
    if not measured:
        return [
            f"{head}: no family was found and measured; "
            + "; ".join(
                f"{f.name}: {f.record.status} ({_note(f) or f.record.message})" for f in others
            )
            + "."
        ]
    win = measured[0]
    line = (
        f"{head}: {win.name} at {_setting(win)} ({t.metric} {win.score:.4g}) uses "
        f"{n.measured_pm(win.energy, win.energy_ci95)} {UNIT}"
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
            f", {n.measured_pm(diff, ci)} {UNIT} ({pct:.0f} %) less than {run.name} at "
            f"{_setting(run)} ({n.measured_pm(run.energy, run.energy_ci95)}); {verdict}"
        )
    out = [line + "."]
    for status, what in (
        ("unreachable", "Cannot reach the target at any setting searched"),
        ("exceeded", "Above the target even at the cheapest setting searched"),
        ("failed", "Search failed"),
    ):
        names = [f"{f.name} ({f.record.message})" for f in others if f.record.status == status]
        if names:
            out.append(f"{what}: " + "; ".join(names) + ".")
    unmeasured = [f"{f.name} ({_note(f)})" for f in others if f.record.status == "found"]
    if unmeasured:
        out.append("Found but not measured: " + "; ".join(unmeasured) + ".")
    return out


def _interpolated_lines(search: SearchAnalysis) -> list[str]:
    t = search.target
    searched = ", ".join(sorted({n.target(x) for x in search.searched_targets}))
    head = (
        f"No search ran at {n.target(t)} (searched: {searched}): energies are interpolated "
        "linearly in quality between two settings searched for other targets, where two "
        "bracket it"
    )
    reached = [r for r in search.interpolated if r.at is not None]
    if not reached:
        return [
            f"{head}; no family has two: run ffmpeg-runner search --target "
            f"{t.metric}={t.value:g} for a measured answer."
        ]
    best = reached[0]
    assert best.at is not None
    energy = n.measured_pm(best.at.energy, best.at.energy_ci95)
    return [f"{head}. {best.family} uses {energy} {UNIT} there (interpolated)."]


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def interpolated_row(search: SearchAnalysis, r: Interpolated) -> dict[str, Any]:
    t = search.target
    return {
        "family": r.family,
        "searched_settings": [n.point_setting(p) for p in r.points],
        "energy_j_per_output_minute": None if r.at is None else r.at.energy,
        "energy_ci95": None if r.at is None else _finite(r.at.energy_ci95),
        "status": "interpolated" if r.at is not None else "not reached",
        "reason": None
        if r.at is not None
        else f"{len(r.points)} searched setting(s) ({t.metric} "
        + ", ".join(f"{p.quality:.4g}" for p in r.points)
        + f"); none pair brackets {n.target(t)}",
    }


def _probe_json(r: SearchRecord, p: Probe) -> dict[str, Any]:
    return {
        "value": p.value,
        "setting": n.setting(r.rate_control, p.value),
        "score": p.score,
        "bitrate_bps": p.bitrate_bps,
        "encode_s": p.encode_s,
        "quality_s": p.quality_s,
        "error": p.error,
    }


def family_json(f: SearchedFamily) -> dict[str, Any]:
    r = f.record
    return {
        "run_id": f.run_id,
        "family": f.name,
        "search_family": r.family,
        "status": r.status,
        "message": r.message,
        "target": f.target.to_json(),
        "chosen": None if r.chosen is None else _probe_json(r, r.chosen),
        "scenario": r.scenario,
        "energy_j_per_output_minute": _finite(f.energy),
        "energy_ci95": _finite(f.energy_ci95),
        "repeats": f.repeats,
        "rank": f.rank,
        "dominated_by": f.dominated_by,
        "note": _note(f),
        "probes": [_probe_json(r, p) for p in r.probes],
    }


def search_json(search: SearchAnalysis) -> dict[str, Any]:
    return {
        "target": search.target.to_json(),
        "searched_at_target": search.searched,
        "energy_unit": UNIT,
        "energy_basis": search.basis,
        "recommendation": " ".join(lines(search)),
        "winner": search.winner,
        "families": [family_json(f) for f in search.families],
        "frontier": search.frontier,
        "interpolated": [interpolated_row(search, r) for r in search.interpolated],
        "notes": notes_text(search.notes),
    }


# -- tables -------------------------------------------------------------------------------------


def sections(search: SearchAnalysis | None) -> list[Section]:
    """The report sections (title, body, kind) of the searches; none without a search."""
    if search is None:
        return []
    t = n.target(search.target)
    out: list[Section] = []
    if search.searched:
        out.append((f"Target-quality search at {t}: families", families_table(search), "main"))
        if len([f for f in search.families if f.measured]) > 1:
            out.append((f"Target-quality search at {t}: frontier", frontier_table(search), "main"))
    else:
        rows = [interpolated_row(search, r) for r in search.interpolated]
        out.append(
            (f"Interpolated at {t} from settings searched for other targets",
             pd.DataFrame(rows), "main")
        )  # fmt: skip
    out.append(("Target-quality search: probes", probes_table(search), "main"))
    return out  # the notes go with the report's other notes


def families_table(search: SearchAnalysis) -> pd.DataFrame:
    unit = n.METRIC_UNITS[search.target.metric]
    rows = []
    for f in search.families:
        r = f.record
        rows.append(
            {
                "rank": "" if f.rank is None else str(f.rank),
                "family": f.name,
                "status": r.status,
                "setting": _setting(f) if r.chosen is not None else "",
                search.target.metric: f"{f.score:.4g}{unit}" if r.chosen is not None else "",
                "bitrate": n.rate_or_blank(r.chosen.bitrate_bps) if r.chosen is not None else "",
                f"{UNIT} (measured)": n.measured_pm(f.energy, f.energy_ci95) if f.measured else "",
                "repeats": f.repeats,
                "probes": len(r.probes),
                "probe seconds": f"{sum(p.encode_s + p.quality_s for p in r.probes):.1f}",
                "why": _note(f) or r.message,
            }
        )
    return pd.DataFrame(rows)


def frontier_table(search: SearchAnalysis) -> pd.DataFrame:
    rows = [
        {
            "family": f.name,
            search.target.metric: f"{f.score:.4g}",
            UNIT: n.measured_pm(f.energy, f.energy_ci95),
            "frontier": "yes" if f.dominated_by is None else f"dominated by {f.dominated_by}",
        }
        for f in sorted(search.families, key=lambda f: f.energy)
        if f.measured
    ]
    return pd.DataFrame(rows)


def probes_table(search: SearchAnalysis) -> pd.DataFrame:
    if not search.searched:
        return pd.DataFrame()
    rows = []
    for f in search.families:
        r = f.record
        for i, p in enumerate(r.probes, 1):
            rows.append(
                {
                    "family": f.name,
                    "probe": i,
                    "setting": n.setting(r.rate_control, p.value),
                    r.target_metric: "failed" if p.score is None else f"{p.score:.4g}",
                    "bitrate": n.rate_or_blank(p.bitrate_bps),
                    "encode s": f"{p.encode_s:.1f}",
                    f"{r.target_metric} s": f"{p.quality_s:.1f}",
                    "chosen": "yes" if r.chosen is not None and p.value == r.chosen.value else "",
                    "error": p.error or "",
                }
            )
    return pd.DataFrame(rows)
