"""Quality per joule: families, energy at a target quality, the frontier, and ``compare``.

A *family* is encoder + preset + output resolution (+ the rate control when it is constant
quality, crf or cq; + the stream count when more than one; + ``live`` for ``--realtime`` windows
when live and offline windows are mixed). Its measured points, one per setting (a bitrate, or a
CRF/CQ value; mean over repeats), pair a quality score with joules per output minute. Only
scenarios with one output per stream enter: a ladder's energy is spent on all its rungs at once
and cannot be split per output. Energy per output minute is per stream (the minutes of every
stream add up), on the report's energy basis (``attribution``): attributed to the transcode
where every window has CPU accounting, else net of the idle baseline where every window has
one, else the whole machine's.

The family's curve runs through its points in bitrate order (the achieved bitrate for constant
quality, where the setting has no target bitrate); a point whose quality does not exceed that
of a lower bitrate is left out of the curve (more bits, no better picture) and
reported. At a target quality, energy and bitrate are interpolated linearly in quality between
the two curve points that bracket the target; never extrapolated.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from ffmpeg_runner.contract import (
    QUALITY_METRICS,
    parse_quality_target,
)

from .attribution import basis_problem, basis_score, resolve_basis
from .energy import mean_ci95
from .errors import AdvisorConfigError
from .notes import Note, note

UNIT = "J per output minute"


@dataclass(frozen=True)
class QualityTarget:
    metric: str
    value: float

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "value": self.value}


def parse_target(text: str) -> QualityTarget:
    """``vmaf=93``, ``psnr=40`` or ``ssim=0.98``; AdvisorConfigError (exit 2) names the
    setting ``target_quality``."""
    try:
        metric, value = parse_quality_target(text)
    except ValueError as e:
        raise AdvisorConfigError(
            f"target_quality {text!r}: {e}", settings=("target_quality",)
        ) from None
    return QualityTarget(metric, value)


def parse_metric(text: str) -> str:
    """A quality metric's name; AdvisorConfigError names the setting ``quality_metric``."""
    metric = str(text).strip().lower()
    if metric not in QUALITY_METRICS:
        raise AdvisorConfigError(
            f"quality_metric {text!r}: choose one of {', '.join(QUALITY_METRICS)}",
            settings=("quality_metric",),
        )
    return metric


# -- closed-form pieces -----------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """One setting of a family: means over its repeats and their 95 % CI half-widths.

    ``bitrate_bps`` is the target bitrate, or with constant quality (``rate_control`` crf or
    cq, at ``quality_value``) the achieved one, which orders the family's curve."""

    bitrate_bps: float
    quality: float
    energy: float  # J per output minute
    quality_ci95: float = math.nan
    energy_ci95: float = math.nan
    achieved_bitrate_bps: float = math.nan
    n: int = 1
    scenarios: tuple[str, ...] = ()
    rate_control: str = "bitrate"
    quality_value: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "rate_control": self.rate_control,
            "quality_value": self.quality_value,
            "bitrate_bps": self.bitrate_bps,
            "achieved_bitrate_bps": self.achieved_bitrate_bps,
            "quality": self.quality,
            "quality_ci95": self.quality_ci95,
            "energy_j_per_output_minute": self.energy,
            "energy_ci95": self.energy_ci95,
            "repeats": self.n,
            "scenarios": list(self.scenarios),
        }


def rate_curve(points: Iterable[Point]) -> tuple[list[Point], list[Point]]:
    """(curve, left out): points by bitrate, keeping those whose quality beats every lower
    bitrate's, so quality rises strictly along the curve."""
    ordered = sorted(points, key=lambda p: (p.bitrate_bps, p.quality))
    curve: list[Point] = []
    left_out: list[Point] = []
    for p in ordered:
        if curve and p.quality <= curve[-1].quality:
            left_out.append(p)
        else:
            curve.append(p)
    return curve, left_out


@dataclass(frozen=True)
class AtTarget:
    energy: float
    energy_ci95: float
    bitrate_bps: float
    achieved_bitrate_bps: float
    lower: Point
    upper: Point
    weight: float  # 0 at ``lower``, 1 at ``upper``


def interpolate(curve: Sequence[Point], target: float) -> AtTarget | None:
    """Energy and bitrate at ``target`` quality, linear in quality between the two curve points
    that bracket it; None when the curve does not reach (or starts above) the target.

    The 95 % half-width is propagated to first order from both points' energy and quality
    half-widths (independent repeats, combined in quadrature); NaN when a point has one repeat.
    """
    for a, b in itertools.pairwise(curve):
        if a.quality <= target <= b.quality:
            w = (target - a.quality) / (b.quality - a.quality)
            slope = (b.energy - a.energy) / (b.quality - a.quality)
            var = 0.0
            for weight, p in ((1.0 - w, a), (w, b)):
                if weight:
                    var += weight**2 * (p.energy_ci95**2 + slope**2 * p.quality_ci95**2)
            return AtTarget(
                energy=a.energy + w * (b.energy - a.energy),
                energy_ci95=math.sqrt(var),
                bitrate_bps=a.bitrate_bps + w * (b.bitrate_bps - a.bitrate_bps),
                achieved_bitrate_bps=a.achieved_bitrate_bps
                + w * (b.achieved_bitrate_bps - a.achieved_bitrate_bps),
                lower=a,
                upper=b,
                weight=w,
            )
    if len(curve) == 1 and curve[0].quality == target:
        p = curve[0]
        return AtTarget(p.energy, p.energy_ci95, p.bitrate_bps, p.achieved_bitrate_bps, p, p, 0.0)
    return None


def dominance(points: Sequence[tuple[str, float, float]]) -> dict[str, str | None]:
    """Pareto frontier of (name, energy, quality): name -> None when no other point has lower
    or equal energy and higher or equal quality with one of them strict; otherwise the
    dominating point with the least energy (ties: the higher quality, then the name)."""
    out: dict[str, str | None] = {}
    for name, e, q in points:
        beaters = [
            (e2, -q2, n2)
            for n2, e2, q2 in points
            if n2 != name and e2 <= e and q2 >= q and (e2 < e or q2 > q)
        ]
        out[name] = min(beaters)[2] if beaters else None
    return out


@dataclass(frozen=True)
class CurveComparison:
    """Mean energy of two curves over the quality interval both cover."""

    overlap: tuple[float, float] | None
    mean_a: float = math.nan
    mean_b: float = math.nan

    @property
    def difference(self) -> float:
        """B - A in J per output minute (positive: B spends more at equal quality)."""
        return self.mean_b - self.mean_a

    @property
    def difference_pct(self) -> float:
        return 100.0 * self.difference / self.mean_a if self.mean_a else math.nan


def compare_curves(a: Sequence[Point], b: Sequence[Point]) -> CurveComparison:
    """The energy analogue of a BD-rate: integrate both piecewise-linear J(q) curves over the
    overlapping quality interval and divide by its width (the mean at equal quality). The
    difference of two piecewise-linear functions is linear between the union of their
    breakpoints, so the trapezoidal rule on that union is exact."""
    if not a or not b:
        return CurveComparison(None)
    qa = np.array([p.quality for p in a])
    qb = np.array([p.quality for p in b])
    ea = np.array([p.energy for p in a])
    eb = np.array([p.energy for p in b])
    lo, hi = max(qa[0], qb[0]), min(qa[-1], qb[-1])
    if lo > hi:
        return CurveComparison(None)
    if lo == hi:  # touching at one quality: the difference there
        return CurveComparison((lo, hi), float(np.interp(lo, qa, ea)), float(np.interp(lo, qb, eb)))
    xs = np.unique(np.concatenate(([lo, hi], qa, qb)))
    xs = xs[(xs >= lo) & (xs <= hi)]
    width = hi - lo
    mean_a = float(np.trapezoid(np.interp(xs, qa, ea), xs)) / width
    mean_b = float(np.trapezoid(np.interp(xs, qb, eb), xs)) / width
    return CurveComparison((float(lo), float(hi)), mean_a, mean_b)


# -- from the windows table -------------------------------------------------------------------


@dataclass
class Family:
    name: str
    encoder: str
    preset: str
    resolution: str
    streams: int
    live: bool | None
    points: list[Point]
    curve: list[Point] = field(default_factory=list)
    left_out: list[Point] = field(default_factory=list)
    at_target: AtTarget | None = None
    status: str = "no target"  # reached | not reached | exceeded | no target
    rank: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The family as data; the presentation adds the words (``reason``)."""
        at = self.at_target
        return {
            "family": self.name,
            "encoder": self.encoder,
            "preset": self.preset,
            "resolution": self.resolution,
            "streams": self.streams,
            "live": self.live,
            "rank": self.rank,
            "status": self.status,
            "energy_j_per_output_minute_at_target": at.energy if at else None,
            "energy_ci95_at_target": at.energy_ci95 if at else None,
            "bitrate_at_target_bps": at.bitrate_bps if at else None,
            "achieved_bitrate_at_target_bps": at.achieved_bitrate_bps if at else None,
            "bracket_bitrates_bps": [at.lower.bitrate_bps, at.upper.bitrate_bps] if at else None,
            "quality_range": [self.curve[0].quality, self.curve[-1].quality]
            if self.curve
            else None,
            "points": [p.to_json() for p in self.points],
            "left_out_of_curve": [p.to_json() for p in self.left_out],
        }


@dataclass
class QualityAnalysis:
    measured: bool
    metric: str | None = None
    target: QualityTarget | None = None
    basis: str = "net"  # attributed | net | gross (attribution.BASES)
    mode: str = "unknown"  # offline | live | mixed | unknown
    metrics: list[str] = field(default_factory=list)  # measured, most widely measured first
    families: list[Family] = field(default_factory=list)
    # scenario -> None on the frontier, else the scenario that dominates it
    dominated_by: dict[str, str | None] = field(default_factory=dict)
    frontier_groups: dict[str, list[str]] = field(default_factory=dict)
    points: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per scenario
    scenario_quality: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    excluded: list[dict[str, Any]] = field(default_factory=list)  # scenario, why (a Note)
    notes: list[Note] = field(default_factory=list)
    winner: str | None = None
    runner_up: str | None = None
    margin: dict[str, Any] | None = None

    @property
    def frontier(self) -> list[str]:
        return sorted(n for n, d in self.dominated_by.items() if d is None)

    @property
    def energy_column(self) -> str:
        return basis_score("energy_per_output_minute_j", self.basis)

    @property
    def reached(self) -> list[Family]:
        """The families that reach the target, in rank order."""
        return [f for f in self.families if f.at_target is not None]

    def family(self, name: str) -> Family:
        for f in self.families:
            if f.name == name:
                return f
        known = ", ".join(f.name for f in self.families) or "(none: no quality measured)"
        raise AdvisorConfigError(f"unknown family {name!r}; known families: {known}")


def _flag(value: Any) -> bool | None:
    """A window's ``realtime``: True, False, or None when unknown (None or NaN in a frame)."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    return None


def _mode(values: Iterable[Any]) -> str:
    seen = {f for f in map(_flag, values) if f is not None}
    if not seen:
        return "unknown"
    if seen == {True}:
        return "live"
    return "offline" if seen == {False} else "mixed"


def measured_metrics(windows: pd.DataFrame) -> list[str]:
    """Metrics with a score in any transcode window, most widely measured first."""
    counts: dict[str, int] = {}
    for q in windows.get("quality", pd.Series(dtype=object)):
        if isinstance(q, Mapping):
            for scores in q.values():
                for m in scores:
                    counts[m] = counts.get(m, 0) + 1
    order = {m: i for i, m in enumerate(QUALITY_METRICS)}
    return sorted(counts, key=lambda m: (-counts[m], order.get(m, 99)))


def family_name(
    encoder: str, preset: str, resolution: str, streams: int, live: bool, *, rate_control: str
) -> str:
    name = f"{encoder}/{preset}/{resolution}"
    if rate_control != "bitrate":
        name += f"/{rate_control}"
    if streams > 1:
        name += f"/{streams}streams"
    return name + ("/live" if live else "")


def _scenario_quality(tr: pd.DataFrame) -> dict[tuple[str, str], dict[str, Any]]:
    """Each scenario's quality: mean ± 95 % CI per metric over its ok repeats; per rung for
    ladders of several rungs (``by_rung``), plus the achieved bitrate."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for (scen, lad), g in tr.groupby(["scenario", "ladder"], sort=True):
        per_rung: dict[str, dict[str, list[float]]] = {}
        for q in g["quality"]:
            if not isinstance(q, Mapping):
                continue
            for rung, scores in q.items():
                for m, v in scores.items():
                    per_rung.setdefault(rung, {}).setdefault(m, []).append(float(v))
        if not per_rung:
            continue

        def stats_of(values: Mapping[str, list[float]]) -> dict[str, Any]:
            res = {}
            for m in sorted(values, key=QUALITY_METRICS.index):
                mean, ci, n = mean_ci95(np.asarray(values[m], dtype=np.float64))
                res[m] = {"mean": mean, "ci95": ci, "n": n}
            return res

        entry: dict[str, Any] = {}
        if len(per_rung) == 1:
            (scores,) = per_rung.values()
            entry["quality"] = stats_of(scores)
            ach = g["achieved_bitrate_bps"].to_numpy(dtype=np.float64)
            entry["achieved_bitrate_bps"] = mean_ci95(ach)[0]
        else:
            entry["quality"] = None
            entry["quality_by_rung"] = {r: stats_of(s) for r, s in sorted(per_rung.items())}
        out[(str(scen), str(lad))] = entry
    return out


def _no_energy(qa: QualityAnalysis, scored: pd.DataFrame, scenario: Any) -> Note:
    """Why none of a scenario's scored repeats has energy per output minute on the basis."""
    rows = scored[scored["scenario"] == scenario].to_dict(orient="records")
    problems = [p for p in (basis_problem(r, qa.basis) for r in rows) if p]
    return note("no_energy", basis=qa.basis, problem=problems[0] if problems else None)


def _excluded(scenario: Any, why: Note) -> dict[str, Any]:
    return {"scenario": str(scenario), "why": why}


def analyze_quality(
    windows: pd.DataFrame,
    target: QualityTarget | None = None,
    metric: str | None = None,
    basis: str | None = None,
) -> QualityAnalysis:
    """Families, energy at the target, the frontier and the ranking, from the advisor's
    windows table (after ``add_scores`` and ``attribute``). ``basis`` is the energy basis the
    report uses; left out, it is chosen from the table (``resolve_basis``)."""
    tr = windows[(windows["phase"] == "transcode") & (windows["status"] == "ok")]
    metrics = measured_metrics(tr)
    if not metrics:
        return QualityAnalysis(measured=False, target=target, mode=_mode(tr.get("realtime", [])))
    metric = target.metric if target else (metric or metrics[0])
    qa = QualityAnalysis(measured=True, metric=metric, target=target, metrics=metrics)
    if basis is None:
        basis, notes = resolve_basis(windows, None)
        qa.notes.extend(notes)
    qa.basis = basis
    qa.scenario_quality = _scenario_quality(tr)
    qcol = f"quality_{metric}"
    multi = tr[tr["rungs"] != 1]
    for scen in sorted(set(multi["scenario"])):
        qa.excluded.append(_excluded(scen, note("ladder")))
    single = tr[tr["rungs"] == 1]
    scored = single[np.isfinite(single[qcol].to_numpy(dtype=np.float64))]
    for scen in sorted(set(single["scenario"]) - set(scored["scenario"])):
        errors = single[single["scenario"] == scen]["quality_error"].dropna()
        error = str(errors.iloc[0]) if len(errors) else None
        unmeasured = metric not in measured_metrics(single[single["scenario"] == scen])
        why = note("no_score", metric=metric, error=error, unmeasured=unmeasured)
        qa.excluded.append(_excluded(scen, why))
    if metric not in metrics:
        qa.mode = _mode(tr.get("realtime", []))
        return qa
    ecol = qa.energy_column
    used = scored[np.isfinite(scored[ecol].to_numpy(dtype=np.float64))]
    for scen in sorted(set(scored["scenario"]) - set(used["scenario"])):
        qa.excluded.append(_excluded(scen, _no_energy(qa, scored, scen)))
    qa.mode = _mode(used["realtime"]) if len(used) else _mode(tr.get("realtime", []))
    mixed = qa.mode == "mixed"
    used = used.assign(_live=[mixed and _flag(v) is True for v in used["realtime"]])
    used = used.assign(
        family=[
            family_name(e, p, r, int(s), lv, rate_control=rc)
            for e, p, r, s, lv, rc in zip(
                used["encoder"],
                used["preset"],
                used["resolution"],
                used["streams"],
                used["_live"],
                used["rate_control"],
                strict=True,
            )
        ]
    )
    _build_families(qa, used, qcol, ecol)
    _build_frontier(qa, used, qcol, ecol, mixed)
    if target is not None:
        _rank_at_target(qa, target)
    return qa


def _setting_key(g: pd.DataFrame) -> pd.Series:
    """What makes two windows the same point: the target bitrate, or the CRF/CQ value (their
    achieved bitrates differ from repeat to repeat)."""
    return pd.Series(
        [
            f"{rc}:{float(bps) if rc == 'bitrate' else float(value)!r}"
            for rc, bps, value in zip(
                g["rate_control"], g["bitrate_bps"], g["quality_value"], strict=True
            )
        ],
        index=g.index,
    )


def _names(names: Sequence[str], most: int = 5) -> str:
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def _ci(values: pd.Series) -> tuple[float, float, int]:
    return mean_ci95(values.to_numpy(dtype=np.float64))


def _build_families(qa: QualityAnalysis, used: pd.DataFrame, qcol: str, ecol: str) -> None:
    for name, g in used.groupby("family", sort=True):
        points = []
        for _, pg in g.groupby(_setting_key(g), sort=True):
            q, qci, n = _ci(pg[qcol])
            e, eci, _ = _ci(pg[ecol])
            ach = pg["achieved_bitrate_bps"].to_numpy(dtype=np.float64)
            constant_quality = str(pg["rate_control"].iloc[0]) != "bitrate"
            points.append(
                Point(
                    # constant quality has no target: its mean achieved bitrate stands in
                    bitrate_bps=float(
                        np.mean(ach) if constant_quality else pg["bitrate_bps"].iloc[0]
                    ),
                    quality=q,
                    energy=e,
                    quality_ci95=qci,
                    energy_ci95=eci,
                    achieved_bitrate_bps=float(np.mean(ach))
                    if np.isfinite(ach).all()
                    else math.nan,
                    n=n,
                    scenarios=tuple(sorted(set(pg["scenario"]))),
                    rate_control=str(pg["rate_control"].iloc[0]),
                    quality_value=float(pg["quality_value"].iloc[0]) if constant_quality else None,
                )
            )
        first = g.iloc[0]
        curve, left_out = rate_curve(points)
        fam = Family(
            name=str(name),
            encoder=str(first["encoder"]),
            preset=str(first["preset"]),
            resolution=str(first["resolution"]),
            streams=int(first["streams"]),
            live=_flag(first["realtime"]),
            points=sorted(points, key=lambda p: p.bitrate_bps),
            curve=curve,
            left_out=left_out,
        )
        for p in left_out:
            below = max(
                (c for c in curve if c.bitrate_bps < p.bitrate_bps), key=lambda c: c.quality
            )
            qa.notes.append(note("not_rising", family=fam.name, metric=qa.metric, point=p,
                                 below=below))  # fmt: skip
        qa.families.append(fam)


def _build_frontier(
    qa: QualityAnalysis, used: pd.DataFrame, qcol: str, ecol: str, mixed: bool
) -> None:
    rows = []
    for (scen, lad), g in used.groupby(["scenario", "ladder"], sort=True):
        q, qci, n = _ci(g[qcol])
        e, eci, _ = _ci(g[ecol])
        first = g.iloc[0]
        group = str(first["resolution"]) + (" live" if mixed and bool(first["_live"]) else "")
        rows.append(
            {
                "scenario": str(scen),
                "ladder": str(lad),
                "family": str(first["family"]),
                "group": group,
                "resolution": str(first["resolution"]),
                "bitrate_bps": float(first["bitrate_bps"]),
                "quality": q,
                "quality_ci95": qci,
                "energy": e,
                "energy_ci95": eci,
                "repeats": n,
            }
        )
    pts = pd.DataFrame(rows)
    dominated: dict[str, str | None] = {}
    groups: dict[str, list[str]] = {}
    for _, g in pts.groupby("group", sort=True):
        dom = dominance(list(zip(g["scenario"], g["energy"], g["quality"], strict=True)))
        dominated.update(dom)
        groups[str(g["group"].iloc[0])] = sorted(
            (n for n, d in dom.items() if d is None),
            key=lambda n: float(g.loc[g["scenario"] == n, "quality"].iloc[0]),
        )
    pts["dominated_by"] = [dominated.get(s) for s in pts["scenario"]]
    pts["on_frontier"] = pts["dominated_by"].isna()
    qa.points = pts
    qa.dominated_by = dominated
    qa.frontier_groups = groups


def _rank_at_target(qa: QualityAnalysis, target: QualityTarget) -> None:
    """Each family's energy at the target (or not reached / exceeded), the ranking, and the
    winner's margin over the runner-up with its 95 % uncertainty."""
    t = target.value
    for fam in qa.families:
        fam.at_target = interpolate(fam.curve, t)
        if fam.at_target is not None:
            fam.status = "reached"
        elif fam.curve[-1].quality < t:
            fam.status = "not reached"
        else:
            fam.status = "exceeded"
    reached = sorted(
        (f for f in qa.families if f.at_target is not None),
        key=lambda f: (f.at_target.energy if f.at_target else math.inf, f.name),
    )
    for i, fam in enumerate(reached, 1):
        fam.rank = i
    others = sorted((f for f in qa.families if f.at_target is None), key=lambda f: f.name)
    qa.families = [*reached, *others]
    if not reached:
        return
    qa.winner = reached[0].name
    if len(reached) == 1:
        return
    w, r = reached[0].at_target, reached[1].at_target
    assert w is not None and r is not None
    qa.runner_up = reached[1].name
    diff = r.energy - w.energy
    ci = math.sqrt(w.energy_ci95**2 + r.energy_ci95**2)
    qa.margin = {
        "energy_j_per_output_minute": diff,
        "ci95": ci,
        "pct_of_runner_up": 100.0 * diff / r.energy if r.energy else math.nan,
        # None: a bracketing point has one repeat, so the uncertainty is unknown
        "significant": None if not math.isfinite(ci) else bool(diff > ci),
    }


def compare(
    qa: QualityAnalysis, name_a: str, name_b: str
) -> tuple[Family, Family, CurveComparison]:
    """``advisor compare``: two families and the mean energy difference of their curves at
    equal quality. The analysis must have measured quality (``qa.measured``)."""
    a, b = qa.family(name_a), qa.family(name_b)
    return a, b, compare_curves(a.curve, b.curve)
