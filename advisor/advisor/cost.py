"""What a title costs: encode once, deliver N views.

Pure functions on the quality analysis' per-family results at the target. For a title of M
minutes and N views, per family:

- encode energy = J per output minute at the target x M (the quality analysis' energy, on
  whatever basis it reports); encode compute hours = the measured wall-clock time per output
  minute at the target x M;
- delivery = the bitrate achieved at the target x M x 60 s / 8 bytes per view, in GB (10^9
  bytes), times the network's kWh per GB;
- totals for N views: energy = encode + N x delivery; CO2e = energy x grid intensity; money =
  encode electricity + compute + N x egress (delivery energy is the network's, not paid by
  the streamer).

Every family's total energy is a line in N, ``E + N d``. Against the family with the least
encode energy (E0, d0) a family with fewer bits becomes cheaper after ``(E - E0) / (d0 - d)``
views (break-even); the lower envelope of the lines says which family is cheapest at each view
count, and a family no other beats on both encode energy and bits is on the frontier.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .cost_config import Assumption, CostConfig
from .notes import Note, note
from .quality import AtTarget, Family, Point, QualityAnalysis, QualityTarget, dominance

J_PER_KWH = 3.6e6
BYTES_PER_GB = 1e9


@dataclass(frozen=True)
class TitleCostRequest:
    """A title of ``title_minutes`` watched ``views`` times, priced by ``config``."""

    title_minutes: float
    views: float
    config: CostConfig


@dataclass(frozen=True)
class FamilyAtTarget:
    """What the cost needs of one family at the target quality."""

    family: str
    encode_j_per_output_minute: float
    bitrate_bps: float  # bits delivered per second of video
    bitrate_basis: str  # achieved | nominal
    encode_wall_s_per_output_minute: float = math.nan


@dataclass(frozen=True)
class FamilyCost:
    family: str
    encode_j_per_output_minute: float
    bitrate_bps: float
    bitrate_basis: str
    encode_kwh: float
    encode_compute_hours: float
    encode_vcpu_hours: float
    delivery_gb_per_view: float
    delivery_kwh_per_view: float
    total_kwh: float
    total_kg_co2e: float
    encode_cost: float
    delivery_cost_per_view: float
    total_cost: float
    break_even_views: float | None
    on_frontier: bool
    dominated_by: str | None
    least_total_from_views: float | None  # None: never the least total energy
    least_total_to_views: float | None  # None: from there on, however many views

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "encode_j_per_output_minute": self.encode_j_per_output_minute,
            "bitrate_bps": self.bitrate_bps,
            "bitrate_basis": self.bitrate_basis,
            "encode_kwh": self.encode_kwh,
            "encode_compute_hours": self.encode_compute_hours,
            "encode_vcpu_hours": self.encode_vcpu_hours,
            "delivery_gb_per_view": self.delivery_gb_per_view,
            "delivery_kwh_per_view": self.delivery_kwh_per_view,
            "total_kwh": self.total_kwh,
            "total_kg_co2e": self.total_kg_co2e,
            "encode_cost": self.encode_cost,
            "delivery_cost_per_view": self.delivery_cost_per_view,
            "total_cost": self.total_cost,
            "break_even_views": self.break_even_views,
            "on_frontier": self.on_frontier,
            "dominated_by": self.dominated_by,
            "least_total_from_views": self.least_total_from_views,
            "least_total_to_views": self.least_total_to_views,
        }


@dataclass
class TitleCost:
    title_minutes: float
    views: float
    target: QualityTarget | None
    energy_basis: str
    delivery_model: str
    delivery_kwh_per_gb: float
    carbon_g_per_kwh: float  # NaN: unknown
    currency: str | None
    reference: str | None  # the family with the least encode energy
    families: list[FamilyCost] = field(default_factory=list)
    # the families not priced: {"family": name, "why": Note}
    excluded: list[dict[str, Any]] = field(default_factory=list)
    # encode_energy_basis first: its source is the quality analysis (the presentation says it)
    assumptions: list[Assumption] = field(default_factory=list)
    carbon_missing: str | None = None
    money_missing: list[str] = field(default_factory=list)

    @property
    def cheapest(self) -> FamilyCost | None:
        """The family with the least total energy at ``views``."""
        return min(self.families, key=lambda f: (f.total_kwh, f.family), default=None)

    def family(self, name: str) -> FamilyCost:
        return next(f for f in self.families if f.family == name)


# -- closed form ------------------------------------------------------------------------------


def encode_kwh(j_per_output_minute: float, title_minutes: float) -> float:
    return j_per_output_minute * title_minutes / J_PER_KWH


def delivery_gb(bitrate_bps: float, title_minutes: float) -> float:
    return bitrate_bps * title_minutes * 60.0 / 8.0 / BYTES_PER_GB


def break_even_views(
    encode_kwh: float, per_view_kwh: float, ref_encode_kwh: float, ref_per_view_kwh: float
) -> float | None:
    """Views after which a family's total energy falls below the reference's; None when it
    never does (it sends as many bits or more). The reference itself: None."""
    if per_view_kwh >= ref_per_view_kwh:
        return None
    return max(0.0, (encode_kwh - ref_encode_kwh) / (ref_per_view_kwh - per_view_kwh))


def least_total_ranges(
    lines: Sequence[tuple[str, float, float]],
) -> dict[str, tuple[float, float]]:
    """For lines (name, E, d) meaning E + N d over N >= 0: the view range [from, to) where
    each name has the least total (to = inf: from there on); names never least are absent.

    Walks the lower envelope: from the least total at N = 0, the next line is the one with a
    smaller slope that crosses the current one first."""
    if not lines:
        return {}
    cur = min(lines, key=lambda x: (x[1], x[2], x[0]))
    start = 0.0
    out: dict[str, tuple[float, float]] = {}
    while True:
        crossings = [
            ((e - cur[1]) / (cur[2] - d), d, name, e) for name, e, d in lines if d < cur[2]
        ]
        if not crossings:
            out[cur[0]] = (start, math.inf)
            return out
        n, d, name, e = min(crossings)
        n = max(n, start)
        if n > start:
            out[cur[0]] = (start, n)
        cur, start = (name, e, d), n


def family_costs(
    fams: Sequence[FamilyAtTarget], request: TitleCostRequest
) -> tuple[list[FamilyCost], str | None]:
    """Every family's cost for the title, and the reference (least encode energy)."""
    c = request.config
    m, n = request.title_minutes, request.views
    kwh_per_gb = c.delivery.kwh_per_gb
    g_per_kwh = c.carbon.g_per_kwh if c.carbon else math.nan
    money = not c.money_missing
    rows = []
    for f in fams:
        e = encode_kwh(f.encode_j_per_output_minute, m)
        gb = delivery_gb(f.bitrate_bps, m)
        hours = f.encode_wall_s_per_output_minute * m / 3600.0
        vcpu_hours = hours * c.encode_vcpus if c.encode_vcpus else math.nan
        rows.append((f, e, gb, gb * kwh_per_gb, hours, vcpu_hours))
    if not rows:
        return [], None
    ref = min(rows, key=lambda r: (r[1], r[3], r[0].family))
    lines = [(r[0].family, r[1], r[3]) for r in rows]
    envelope = least_total_ranges(lines)
    # The frontier over encode energy and bits: dominance() wants "higher is better" second.
    dominated = dominance([(r[0].family, r[1], -r[2]) for r in rows])
    out = []
    for f, e, gb, d, hours, vcpu_hours in rows:
        total = e + n * d
        encode_cost = math.nan
        per_view_cost = math.nan
        if money:
            assert c.electricity_price_per_kwh is not None and c.egress_price_per_gb is not None
            compute = 0.0
            if c.compute_price_per_vcpu_hour is not None:
                compute = vcpu_hours * c.compute_price_per_vcpu_hour
            encode_cost = e * c.electricity_price_per_kwh + compute
            per_view_cost = gb * c.egress_price_per_gb
        span = envelope.get(f.family)
        out.append(
            FamilyCost(
                family=f.family,
                encode_j_per_output_minute=f.encode_j_per_output_minute,
                bitrate_bps=f.bitrate_bps,
                bitrate_basis=f.bitrate_basis,
                encode_kwh=e,
                encode_compute_hours=hours,
                encode_vcpu_hours=vcpu_hours,
                delivery_gb_per_view=gb,
                delivery_kwh_per_view=d,
                total_kwh=total,
                total_kg_co2e=total * g_per_kwh / 1000.0,
                encode_cost=encode_cost,
                delivery_cost_per_view=per_view_cost,
                total_cost=encode_cost + n * per_view_cost,
                break_even_views=None
                if f.family == ref[0].family
                else break_even_views(e, d, ref[1], ref[3]),
                on_frontier=dominated[f.family] is None,
                dominated_by=dominated[f.family],
                least_total_from_views=span[0] if span else None,
                least_total_to_views=span[1] if span and math.isfinite(span[1]) else None,
            )
        )
    return out, ref[0].family


# -- from the quality analysis ------------------------------------------------------------------


def _wall_s_per_output_minute(windows: pd.DataFrame, fam: Family, point: Point) -> float:
    """Mean wall-clock seconds per output minute over the point's ok transcode windows."""
    need = {"scenario", "phase", "status", "duration_s", "output_minutes"}
    if not need <= set(windows.columns):
        return math.nan
    w = windows[
        windows["scenario"].isin(point.scenarios)
        & (windows["phase"] == "transcode")
        & (windows["status"] == "ok")
    ]
    if "encoder" in w.columns:
        w = w[(w["encoder"] == fam.encoder) & (w["preset"] == fam.preset)]
    minutes = w["output_minutes"].to_numpy(dtype=np.float64)
    dur = w["duration_s"].to_numpy(dtype=np.float64)
    ok = np.isfinite(minutes) & (minutes > 0) & np.isfinite(dur)
    return float(np.mean(dur[ok] / minutes[ok])) if ok.any() else math.nan


def _unpriced(fam: Family, why: Note) -> dict[str, Any]:
    return {"family": fam.name, "why": why}


def at_target(
    qa: QualityAnalysis, windows: pd.DataFrame
) -> tuple[list[FamilyAtTarget], list[dict[str, Any]]]:
    """The families that reach the target, with what the cost needs; the others with why."""
    fams: list[FamilyAtTarget] = []
    excluded: list[dict[str, Any]] = []
    for fam in qa.families:
        at: AtTarget | None = fam.at_target
        if at is None:
            excluded.append(_unpriced(fam, note("not_at_target", family=fam)))
            continue
        bitrate, basis = at.achieved_bitrate_bps, "achieved"
        if not (math.isfinite(bitrate) and bitrate > 0):
            bitrate, basis = at.bitrate_bps, "nominal"
        if not (math.isfinite(bitrate) and bitrate > 0):
            excluded.append(_unpriced(fam, note("no_bitrate")))
            continue
        lo = _wall_s_per_output_minute(windows, fam, at.lower)
        hi = _wall_s_per_output_minute(windows, fam, at.upper) if at.weight else lo
        fams.append(
            FamilyAtTarget(
                family=fam.name,
                encode_j_per_output_minute=at.energy,
                bitrate_bps=bitrate,
                bitrate_basis=basis,
                encode_wall_s_per_output_minute=lo + at.weight * (hi - lo),
            )
        )
    return fams, excluded


def title_cost(qa: QualityAnalysis, windows: pd.DataFrame, request: TitleCostRequest) -> TitleCost:
    """The cost section of a report: every family that reaches the target, priced."""
    fams, excluded = at_target(qa, windows) if qa.measured else ([], [])
    rows, ref = family_costs(fams, request)
    c = request.config
    # Its source is the quality analysis at the target, in words: advisor.present.cost.
    basis = Assumption("encode_energy_basis", qa.basis, "J per output minute", "", True)
    return TitleCost(
        title_minutes=request.title_minutes,
        views=request.views,
        target=qa.target,
        energy_basis=qa.basis,
        delivery_model=c.delivery_model,
        delivery_kwh_per_gb=c.delivery.kwh_per_gb,
        carbon_g_per_kwh=c.carbon.g_per_kwh if c.carbon else math.nan,
        currency=c.currency,
        reference=ref,
        families=sorted(rows, key=lambda f: (f.total_kwh, f.family)),
        excluded=excluded,
        assumptions=[basis, *c.assumptions],
        carbon_missing=c.carbon_missing,
        money_missing=c.money_missing,
    )
