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
from ffmpeg_runner.contract import QUALITY_METRICS

from .attribution import BASIS_TEXT, basis_problem, basis_score, resolve_basis
from .energy import mean_ci95
from .errors import AdvisorConfigError, InsufficientDataError

# Valid target ranges: VMAF 0..100, PSNR in dB (ffmpeg caps identical frames near 100),
# SSIM 0..1.
METRIC_RANGES = {"vmaf": (0.0, 100.0), "psnr": (0.0, 100.0), "ssim": (0.0, 1.0)}
METRIC_EXAMPLES = {"vmaf": "vmaf=93", "psnr": "psnr=40", "ssim": "ssim=0.98"}
METRIC_UNITS = {"vmaf": "", "psnr": " dB", "ssim": ""}
UNIT = "J per output minute"


@dataclass(frozen=True)
class QualityTarget:
    metric: str
    value: float

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "value": self.value}

    def __str__(self) -> str:
        return f"{self.metric} {_q(self.value)}{METRIC_UNITS[self.metric]}"


def parse_target(text: str, flag: str = "--target-quality") -> QualityTarget:
    """``vmaf=93``, ``psnr=40`` or ``ssim=0.98``; AdvisorConfigError (exit 2) names the flag."""
    metric, sep, raw = str(text).partition("=")
    metric = metric.strip().lower()
    known = ", ".join(QUALITY_METRICS)
    if not sep or metric not in QUALITY_METRICS:
        raise AdvisorConfigError(
            f"{flag} {text!r}: write METRIC=VALUE with METRIC one of {known}, e.g. vmaf=93, "
            "psnr=40 or ssim=0.98"
        )
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    lo, hi = METRIC_RANGES[metric]
    if not (math.isfinite(value) and lo < value <= hi):
        raise AdvisorConfigError(
            f"{flag} {text!r}: {metric} targets lie in ({lo:g}, {hi:g}]; "
            f"write e.g. {METRIC_EXAMPLES[metric]}"
        )
    return QualityTarget(metric, value)


def parse_metric(text: str, flag: str = "--metric") -> str:
    metric = str(text).strip().lower()
    if metric not in QUALITY_METRICS:
        raise AdvisorConfigError(f"{flag} {text!r}: choose one of {', '.join(QUALITY_METRICS)}")
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

    @property
    def setting(self) -> str:
        """``1 Mb/s``, or ``crf 23 (412 kb/s)`` with constant quality."""
        if self.quality_value is None:
            return _rate(self.bitrate_bps)
        return f"{self.rate_control} {self.quality_value:g} ({_rate(self.bitrate_bps)})"

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
    reason: str | None = None
    rank: int | None = None

    def to_json(self) -> dict[str, Any]:
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
            "reason": self.reason,
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
    families: list[Family] = field(default_factory=list)
    # scenario -> None on the frontier, else the scenario that dominates it
    dominated_by: dict[str, str | None] = field(default_factory=dict)
    frontier_groups: dict[str, list[str]] = field(default_factory=dict)
    points: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per scenario
    scenario_quality: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    excluded: list[dict[str, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # the recommendation, in words
    notes: list[str] = field(default_factory=list)
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
    def basis_text(self) -> str:
        return BASIS_TEXT[self.basis]

    def family(self, name: str) -> Family:
        for f in self.families:
            if f.name == name:
                return f
        known = ", ".join(f.name for f in self.families) or "(none: no quality measured)"
        raise AdvisorConfigError(f"unknown family {name!r}; known families: {known}")

    def to_json(self) -> dict[str, Any]:
        return {
            "measured": self.measured,
            "metric": self.metric,
            "target": self.target.to_json() if self.target else None,
            "energy_unit": UNIT,
            "energy_basis": self.basis if self.measured else None,
            "mode": self.mode,
            "mode_text": MODE_TEXT[self.mode],
            "recommendation": " ".join(self.lines),
            "winner": self.winner,
            "runner_up": self.runner_up,
            "margin": self.margin,
            "families": [f.to_json() for f in self.families],
            "frontier": self.frontier,
            "frontier_by_resolution": self.frontier_groups,
            "dominated": {n: d for n, d in sorted(self.dominated_by.items()) if d is not None},
            "excluded": self.excluded,
            "notes": self.notes,
        }


MODE_TEXT = {
    "offline": "offline: windows encoded as fast as the machine could, so the figures are the "
    "cost of encoding a file",
    "live": "live: windows ran at the source frame rate (--realtime), so the figures are the "
    "cost of encoding live",
    "mixed": "live and offline windows are mixed; live families carry /live and are compared "
    "apart on the frontier",
    "unknown": "live or offline is unknown: windows discovered from Prometheus do not record "
    "--realtime; pass --results for it",
}


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


def _no_energy_reason(qa: QualityAnalysis, scored: pd.DataFrame, scenario: Any) -> str:
    """Why none of a scenario's scored repeats has energy per output minute on the basis."""
    rows = scored[scored["scenario"] == scenario].to_dict(orient="records")
    problems = [p for p in (basis_problem(r, qa.basis) for r in rows) if p]
    if problems:
        return f"no {qa.basis} energy in any repeat: {problems[0]}"
    return "no energy per output minute (frames or fps unknown)"


def analyze_quality(
    windows: pd.DataFrame,
    target: QualityTarget | None = None,
    metric: str | None = None,
    basis: str | None = None,
) -> QualityAnalysis:
    """Families, energy at the target, the frontier and the recommendation, from the
    advisor's windows table (after ``add_scores`` and ``attribute``). ``basis`` is the energy
    basis the report uses; left out, it is chosen from the table (``resolve_basis``)."""
    tr = windows[(windows["phase"] == "transcode") & (windows["status"] == "ok")]
    metrics = measured_metrics(tr)
    if not metrics:
        qa = QualityAnalysis(measured=False, target=target, mode=_mode(tr.get("realtime", [])))
        qa.lines.append(
            "Quality was not measured, so the ranking below is by energy efficiency alone, "
            "which favours fast presets whose picture is worse; run ffmpeg-runner with "
            "--quality psnr,ssim (vmaf with the quality extra) for quality per joule."
        )
        return qa
    metric = target.metric if target else (metric or metrics[0])
    qa = QualityAnalysis(measured=True, metric=metric, target=target)
    if basis is None:
        basis, notes = resolve_basis(windows, None)
        qa.notes.extend(notes)
    qa.basis = basis
    qa.scenario_quality = _scenario_quality(tr)
    qcol = f"quality_{metric}"
    multi = tr[tr["rungs"] != 1]
    for scen in sorted(set(multi["scenario"])):
        qa.excluded.append(
            {
                "scenario": str(scen),
                "reason": "a ladder of several outputs: its energy is spent on all rungs at "
                "once and cannot be split per output; measure single-output scenarios",
            }
        )
    single = tr[tr["rungs"] == 1]
    scored = single[np.isfinite(single[qcol].to_numpy(dtype=np.float64))]
    for scen in sorted(set(single["scenario"]) - set(scored["scenario"])):
        errors = single[single["scenario"] == scen]["quality_error"].dropna()
        why = f"no {metric} score"
        if len(errors):
            why += f" (quality step failed: {errors.iloc[0]})"
        elif metric not in measured_metrics(single[single["scenario"] == scen]):
            why += f"; run it with --quality {metric}"
        qa.excluded.append({"scenario": str(scen), "reason": why})
    if metric not in metrics:
        others = ", ".join(metrics)
        alt = METRIC_EXAMPLES[metrics[0]]
        qa.lines.append(
            f"{metric} was not measured in these windows (measured: {others}); pass "
            f"--target-quality {alt.split('=')[0]}=VALUE (e.g. {alt}) or re-run ffmpeg-runner "
            f"with --quality {metric}."
        )
        qa.mode = _mode(tr.get("realtime", []))
        return qa
    ecol = qa.energy_column
    used = scored[np.isfinite(scored[ecol].to_numpy(dtype=np.float64))]
    for scen in sorted(set(scored["scenario"]) - set(used["scenario"])):
        qa.excluded.append({"scenario": str(scen), "reason": _no_energy_reason(qa, scored, scen)})
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
    else:
        _describe_frontier(qa)
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
            qa.notes.append(
                f"{fam.name}: {qa.metric} does not rise with bitrate: {p.setting} "
                f"scores {_q(p.quality)}, not above {_q(below.quality)} at "
                f"{below.setting}; left out of the family's curve"
            )
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
    t = target.value
    for fam in qa.families:
        fam.at_target = interpolate(fam.curve, t)
        lo, hi = fam.curve[0], fam.curve[-1]
        if fam.at_target is not None:
            fam.status = "reached"
        elif hi.quality < t:
            fam.status = "not reached"
            fam.reason = (
                f"not reached within the measured bitrates: best {_q(hi.quality)} at "
                f"{_rate(hi.bitrate_bps)}; measure higher bitrates"
            )
        else:
            fam.status = "exceeded"
            fam.reason = (
                f"exceeded at every measured bitrate ({_q(lo.quality)} at "
                f"{_rate(lo.bitrate_bps)}); measure lower bitrates to place the target"
            )
    reached = sorted(
        (f for f in qa.families if f.at_target is not None),
        key=lambda f: (f.at_target.energy if f.at_target else math.inf, f.name),
    )
    for i, fam in enumerate(reached, 1):
        fam.rank = i
    others = sorted((f for f in qa.families if f.at_target is None), key=lambda f: f.name)
    qa.families = [*reached, *others]
    head = f"At {target} ({MODE_TEXT[qa.mode].split(':')[0]})"
    if not reached:
        best = max(qa.families, key=lambda f: (f.curve[-1].quality, f.name), default=None)
        if best is None:
            qa.lines.append(f"{head}: no family has both {qa.metric} and energy measured.")
            return
        qa.lines.append(
            f"{head}: no family reaches the target within the measured bitrates (closest: "
            f"{best.name}, {_q(best.curve[-1].quality)} at {_rate(best.curve[-1].bitrate_bps)}); "
            "measure higher bitrates, or pick a target inside the measured range."
        )
        return
    win = reached[0]
    assert win.at_target is not None
    w = win.at_target
    qa.winner = win.name
    line = (
        f"{head}: {win.name} at {_rate(w.bitrate_bps)} uses {_pm(w.energy, w.energy_ci95)} "
        f"{UNIT} ({qa.basis_text})"
    )
    if len(reached) == 1:
        qa.lines.append(line + "; it is the only family that reaches the target.")
    else:
        run = reached[1]
        assert run.at_target is not None
        r = run.at_target
        qa.runner_up = run.name
        diff = r.energy - w.energy
        ci = math.sqrt(w.energy_ci95**2 + r.energy_ci95**2)
        pct = 100.0 * diff / r.energy if r.energy else math.nan
        if not math.isfinite(ci):
            verdict = (
                "whether the difference is significant is unknown: a bracketing point has one "
                "repeat; measure 3 or more"
            )
            significant = None
        elif diff > ci:
            verdict = "the margin exceeds its 95 % uncertainty"
            significant = True
        else:
            verdict = (
                "the difference is not significant (within its 95 % uncertainty): treat them as "
                "equal or measure more repeats"
            )
            significant = False
        qa.margin = {
            "energy_j_per_output_minute": diff,
            "ci95": ci,
            "pct_of_runner_up": pct,
            "significant": significant,
            "method": "difference of the interpolated energies; each half-width propagated "
            "to first order from the 95 % CIs (energy and quality) of the two bracketing "
            "points, combined in quadrature",
        }
        qa.lines.append(
            line + f", {_pm(diff, ci)} {UNIT} ({pct:.0f} %) less than the runner-up "
            f"{run.name} ({_pm(r.energy, r.energy_ci95)} at {_rate(r.bitrate_bps)}); {verdict}."
        )
    missing = [f for f in qa.families if f.at_target is None]
    not_reached = [f.name for f in missing if f.status == "not reached"]
    exceeded = [f.name for f in missing if f.status == "exceeded"]
    if not_reached:
        qa.lines.append("Not reached within the measured bitrates: " + ", ".join(not_reached) + ".")
    if exceeded:
        qa.lines.append(
            "Above the target at every measured bitrate (measure lower bitrates): "
            + ", ".join(exceeded)
            + "."
        )


def _describe_frontier(qa: QualityAnalysis) -> None:
    parts = [f"{g}: {', '.join(names)}" for g, names in qa.frontier_groups.items()]
    n_dom = sum(1 for d in qa.dominated_by.values() if d is not None)
    qa.lines.append(
        f"Quality ({qa.metric}) vs energy ({MODE_TEXT[qa.mode].split(':')[0]}): the frontier "
        f"(no other scenario has less or equal energy and higher or equal quality) is "
        + "; ".join(parts)
        + f"; {n_dom} scenario(s) dominated. Pass --target-quality "
        + METRIC_EXAMPLES.get(qa.metric or "vmaf", "vmaf=93")
        + " for a recommendation."
    )


def compare(qa: QualityAnalysis, name_a: str, name_b: str) -> dict[str, Any]:
    """``advisor compare``: the mean energy difference of two families at equal quality."""
    if not qa.measured or qa.metric is None:
        raise InsufficientDataError(" ".join(qa.lines) or "quality was not measured")
    a, b = qa.family(name_a), qa.family(name_b)
    res = compare_curves(a.curve, b.curve)
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
        "method": "mean over the common quality range of B's minus A's piecewise-linear "
        "energy-vs-quality curve (an energy analogue of the BD-rate)",
    }
    m = qa.metric
    if res.overlap is None:
        doc["summary"] = (
            f"{a.name} ({m} {_q(a.curve[0].quality)}-{_q(a.curve[-1].quality)}) and {b.name} "
            f"({m} {_q(b.curve[0].quality)}-{_q(b.curve[-1].quality)}) cover no common quality "
            "range, so they cannot be compared at equal quality; measure the lower one at "
            "higher bitrates or the higher one at lower bitrates."
        )
        return doc
    lo, hi = res.overlap
    more = "more" if res.difference > 0 else "less"
    where = f"at {m} {_q(lo)}" if lo == hi else f"over {m} {_q(lo)}-{_q(hi)}"
    doc["summary"] = (
        f"{where}, {b.name} uses on average {_fmt(abs(res.difference))} {UNIT} "
        f"({abs(res.difference_pct):.1f} %) {more} than {a.name} at equal quality "
        f"({_fmt(res.mean_b)} vs {_fmt(res.mean_a)}; energy {qa.basis_text}, {qa.mode})."
    )
    doc["summary"] = doc["summary"][0].upper() + doc["summary"][1:]
    if lo == hi:
        doc["summary"] += " The curves touch at one quality only; measure more bitrates."
    return doc


# -- formatting -------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x:.3g}" if abs(x) < 10 else f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}"


def _pm(x: float, ci: float) -> str:
    return _fmt(x) + (f" ± {_fmt(ci)}" if math.isfinite(ci) else "")


def _q(x: float) -> str:
    return f"{x:.4g}"


def _rate(bps: float) -> str:
    if not math.isfinite(bps):
        return "n/a"
    if bps >= 1e6:
        return f"{bps / 1e6:.3g} Mb/s"
    return f"{bps / 1e3:.3g} kb/s"


def families_table(qa: QualityAnalysis) -> pd.DataFrame:
    rows = []
    for f in qa.families:
        at = f.at_target
        rows.append(
            {
                "rank": "" if f.rank is None else str(f.rank),
                "family": f.name,
                "measured bitrates": ", ".join(p.setting for p in f.points),
                f"{qa.metric} range": f"{_q(f.curve[0].quality)}-{_q(f.curve[-1].quality)}",
                **(
                    {
                        f"{UNIT} at target": _pm(at.energy, at.energy_ci95) if at else "null",
                        "bitrate at target": _rate(at.bitrate_bps) if at else "null",
                        "status": "reached" if at else str(f.reason),
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
            "bitrate": [_rate(b) for b in p["bitrate_bps"]],
            str(qa.metric): [
                _pm(q, c) for q, c in zip(p["quality"], p["quality_ci95"], strict=True)
            ],
            UNIT: [_pm(e, c) for e, c in zip(p["energy"], p["energy_ci95"], strict=True)],
            "frontier": [
                "yes" if on else f"dominated by {d}"
                for on, d in zip(p["on_frontier"], p["dominated_by"], strict=True)
            ],
        }
    )
