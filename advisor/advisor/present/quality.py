"""Quality per joule in words, tables and JSON: the recommendation, each family's status, the
frontier, and ``advisor compare``."""

from __future__ import annotations

from typing import Any

import pandas as pd
from ffmpeg_runner.contract import METRIC_EXAMPLES

from ..quality import UNIT, CurveComparison, Family, QualityAnalysis
from . import numbers as n
from .notes import note_text, notes_text
from .words import BASIS_TEXT, MODE_TEXT, inserted, mode_head

MARGIN_METHOD = (
    "difference of the interpolated energies; each half-width propagated to first order from "
    "the 95 % CIs (energy and quality) of the two bracketing points, combined in quadrature"
)
COMPARE_METHOD = (
    "mean over the common quality range of B's minus A's piecewise-linear energy-vs-quality "
    "curve (an energy analogue of the BD-rate)"
)
NOT_MEASURED = (
    "Quality was not measured, so the ranking below is by energy efficiency alone, which "
    "favours fast presets whose picture is worse; run ffmpeg-runner with --quality psnr,ssim "
    "(vmaf with the quality extra) for quality per joule."
)


def family_reason(f: Family) -> str | None:
    """Why a family has no energy at the target; None when it has one (or there is none)."""
    lo, hi = f.curve[0], f.curve[-1]
    if f.status == "not reached":
        return (
            f"not reached within the measured bitrates: best {n.score(hi.quality)} at "
            f"{n.rate(hi.bitrate_bps)}; measure higher bitrates"
        )
    if f.status == "exceeded":
        return (
            f"exceeded at every measured bitrate ({n.score(lo.quality)} at "
            f"{n.rate(lo.bitrate_bps)}); measure lower bitrates to place the target"
        )
    return None


def lines(qa: QualityAnalysis) -> list[str]:
    """The recommendation, in words."""
    if not qa.measured:
        return [NOT_MEASURED]
    if qa.metric not in qa.metrics:
        alt = METRIC_EXAMPLES[qa.metrics[0]]
        return [
            f"{qa.metric} was not measured in these windows (measured: {', '.join(qa.metrics)}); "
            f"pass --target-quality {alt.split('=')[0]}=VALUE (e.g. {alt}) or re-run "
            f"ffmpeg-runner with --quality {qa.metric}."
        ]
    if qa.target is None:
        return [_frontier_line(qa)]
    return _target_lines(qa)


def _frontier_line(qa: QualityAnalysis) -> str:
    parts = [f"{g}: {', '.join(names)}" for g, names in qa.frontier_groups.items()]
    n_dom = sum(1 for d in qa.dominated_by.values() if d is not None)
    return (
        f"Quality ({qa.metric}) vs energy ({mode_head(qa.mode)}): the frontier "
        f"(no other scenario has less or equal energy and higher or equal quality) is "
        + "; ".join(parts)
        + f"; {n_dom} scenario(s) dominated. Pass --target-quality "
        + METRIC_EXAMPLES.get(qa.metric or "vmaf", "vmaf=93")
        + " for a recommendation."
    )


def _target_lines(qa: QualityAnalysis) -> list[str]:
    assert qa.target is not None
    head = f"At {n.target(qa.target)} ({mode_head(qa.mode)})"
    reached = qa.reached
    if not reached:
        best = max(qa.families, key=lambda f: (f.curve[-1].quality, f.name), default=None)
        if best is None:
            return [f"{head}: no family has both {qa.metric} and energy measured."]
        top = best.curve[-1]
        return [
            f"{head}: no family reaches the target within the measured bitrates (closest: "
            f"{best.name}, {n.score(top.quality)} at {n.rate(top.bitrate_bps)}); "
            "measure higher bitrates, or pick a target inside the measured range."
        ]
    win = reached[0]
    w = win.at_target
    assert w is not None
    line = (
        f"{head}: {win.name} at {n.rate(w.bitrate_bps)} uses "
        f"{n.energy_pm(w.energy, w.energy_ci95)} {UNIT} ({BASIS_TEXT[qa.basis]})"
    )
    out: list[str] = []
    if len(reached) == 1 or qa.margin is None:
        out.append(line + "; it is the only family that reaches the target.")
    else:
        run = reached[1]
        r = run.at_target
        assert r is not None
        m = qa.margin
        diff, ci, pct = m["energy_j_per_output_minute"], m["ci95"], m["pct_of_runner_up"]
        if m["significant"] is None:
            verdict = (
                "whether the difference is significant is unknown: a bracketing point has one "
                "repeat; measure 3 or more"
            )
        elif m["significant"]:
            verdict = "the margin exceeds its 95 % uncertainty"
        else:
            verdict = (
                "the difference is not significant (within its 95 % uncertainty): treat them as "
                "equal or measure more repeats"
            )
        out.append(
            line + f", {n.energy_pm(diff, ci)} {UNIT} ({pct:.0f} %) less than the runner-up "
            f"{run.name} ({n.energy_pm(r.energy, r.energy_ci95)} at {n.rate(r.bitrate_bps)}); "
            f"{verdict}."
        )
    missing = [f for f in qa.families if f.at_target is None]
    not_reached = [f.name for f in missing if f.status == "not reached"]
    exceeded = [f.name for f in missing if f.status == "exceeded"]
    if not_reached:
        out.append("Not reached within the measured bitrates: " + ", ".join(not_reached) + ".")
    if exceeded:
        out.append(
            "Above the target at every measured bitrate (measure lower bitrates): "
            + ", ".join(exceeded)
            + "."
        )
    return out


def notes(qa: QualityAnalysis) -> list[str]:
    return notes_text(qa.notes)


def excluded(qa: QualityAnalysis) -> list[dict[str, str]]:
    """The scenarios left out of the analysis, each with the reason."""
    return [{"scenario": e["scenario"], "reason": note_text(e["why"])} for e in qa.excluded]


def family_json(f: Family) -> dict[str, Any]:
    return inserted(f.to_json(), "status", "reason", family_reason(f))


def quality_json(qa: QualityAnalysis) -> dict[str, Any]:
    margin = None if qa.margin is None else {**qa.margin, "method": MARGIN_METHOD}
    return {
        "measured": qa.measured,
        "metric": qa.metric,
        "target": qa.target.to_json() if qa.target else None,
        "energy_unit": UNIT,
        "energy_basis": qa.basis if qa.measured else None,
        "mode": qa.mode,
        "mode_text": MODE_TEXT[qa.mode],
        "recommendation": " ".join(lines(qa)),
        "winner": qa.winner,
        "runner_up": qa.runner_up,
        "margin": margin,
        "families": [family_json(f) for f in qa.families],
        "frontier": qa.frontier,
        "frontier_by_resolution": qa.frontier_groups,
        "dominated": {k: d for k, d in sorted(qa.dominated_by.items()) if d is not None},
        "excluded": excluded(qa),
        "notes": notes(qa),
    }


def compare_doc(qa: QualityAnalysis, a: Family, b: Family, res: CurveComparison) -> dict[str, Any]:
    """``advisor compare``'s document: the numbers and the summary in words."""
    doc: dict[str, Any] = {
        "metric": qa.metric,
        "energy_unit": UNIT,
        "energy_basis": qa.basis,
        "mode": qa.mode,
        "a": {"family": a.name, "quality_range": [a.curve[0].quality, a.curve[-1].quality]},
        "b": {"family": b.name, "quality_range": [b.curve[0].quality, b.curve[-1].quality]},
        "overlap": list(res.overlap) if res.overlap else None,
        "mean_energy_a": res.mean_a if res.overlap else None,
        "mean_energy_b": res.mean_b if res.overlap else None,
        "difference_j_per_output_minute": res.difference if res.overlap else None,
        "difference_pct": res.difference_pct if res.overlap else None,
        "method": COMPARE_METHOD,
    }
    m = qa.metric
    if res.overlap is None:
        doc["summary"] = (
            f"{a.name} ({m} {n.score(a.curve[0].quality)}-{n.score(a.curve[-1].quality)}) and "
            f"{b.name} ({m} {n.score(b.curve[0].quality)}-{n.score(b.curve[-1].quality)}) cover "
            "no common quality range, so they cannot be compared at equal quality; measure the "
            "lower one at higher bitrates or the higher one at lower bitrates."
        )
        return doc
    lo, hi = res.overlap
    more = "more" if res.difference > 0 else "less"
    where = f"at {m} {n.score(lo)}" if lo == hi else f"over {m} {n.score(lo)}-{n.score(hi)}"
    summary = (
        f"{where}, {b.name} uses on average {n.energy(abs(res.difference))} {UNIT} "
        f"({abs(res.difference_pct):.1f} %) {more} than {a.name} at equal quality "
        f"({n.energy(res.mean_b)} vs {n.energy(res.mean_a)}; energy {BASIS_TEXT[qa.basis]}, "
        f"{qa.mode})."
    )
    summary = summary[0].upper() + summary[1:]
    if lo == hi:
        summary += " The curves touch at one quality only; measure more bitrates."
    doc["summary"] = summary
    return doc


def families_table(qa: QualityAnalysis) -> pd.DataFrame:
    rows = []
    for f in qa.families:
        at = f.at_target
        rows.append(
            {
                "rank": "" if f.rank is None else str(f.rank),
                "family": f.name,
                "measured bitrates": ", ".join(n.point_setting(p) for p in f.points),
                f"{qa.metric} range": f"{n.score(f.curve[0].quality)}-"
                f"{n.score(f.curve[-1].quality)}",
                **(
                    {
                        f"{UNIT} at target": n.energy_pm(at.energy, at.energy_ci95)
                        if at
                        else "null",
                        "bitrate at target": n.rate(at.bitrate_bps) if at else "null",
                        "status": "reached" if at else str(family_reason(f)),
                    }
                    if qa.target
                    else {}
                ),
            }
        )
    return pd.DataFrame(rows)


def frontier_table(qa: QualityAnalysis) -> pd.DataFrame:
    p = qa.points
    if p.empty:
        return p
    p = p.sort_values(["group", "on_frontier", "quality"], ascending=[True, False, True])
    return pd.DataFrame(
        {
            "output": p["group"],
            "scenario": p["scenario"],
            "family": p["family"],
            "bitrate": [n.rate(b) for b in p["bitrate_bps"]],
            str(qa.metric): [
                n.energy_pm(q, c) for q, c in zip(p["quality"], p["quality_ci95"], strict=True)
            ],
            UNIT: [n.energy_pm(e, c) for e, c in zip(p["energy"], p["energy_ci95"], strict=True)],
            "frontier": [
                "yes" if on else f"dominated by {d}"
                for on, d in zip(p["on_frontier"], p["dominated_by"], strict=True)
            ],
        }
    )
