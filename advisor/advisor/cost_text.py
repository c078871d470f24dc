"""The title cost in words and tables: the one-line summary, the per-family table, the
assumptions, for the table, markdown and HTML reports."""

from __future__ import annotations

import math

import pandas as pd

from .cost import FamilyCost, TitleCost
from .present.cost import assumptions, target_text, unpriced_reason
from .present.numbers import num
from .present.numbers import views as views_text

# (title, body, kind) as render.Section
CostSection = tuple[str, pd.DataFrame | str, str]


def _after(views: float | None) -> str:
    if views is None:
        return "never"
    whole = math.ceil(views)
    return "from the first view" if whole <= 1 else f"after {whole:,} views"


def _money(cost: TitleCost, value: float) -> str:
    return f"{cost.currency} {value:,.2f}" if math.isfinite(value) else "n/a"


def summary_line(cost: TitleCost) -> str:
    """One line: which family costs the least energy in all for this title and audience."""
    head = (
        f"Title cost at {target_text(cost)}, a {num(cost.title_minutes)}-minute title watched "
        f"{views_text(cost.views)} times ({cost.delivery_model} delivery, "
        f"{cost.delivery_kwh_per_gb:g} kWh/GB)"
    )
    best = cost.cheapest
    if best is None:
        return f"{head}: no family reaches the target, so there is nothing to price."
    delivery = cost.views * best.delivery_kwh_per_view
    co2 = (
        f"{num(best.total_kg_co2e)} kg CO2e at {num(cost.carbon_g_per_kwh)} g/kWh"
        if math.isfinite(best.total_kg_co2e)
        else "CO2e unknown (no carbon intensity)"
    )
    money = (
        _money(cost, best.total_cost)
        if not cost.money_missing
        else "money not computed (set " + " and ".join(cost.money_missing) + " in --cost-config)"
    )
    line = (
        f"{head}: least total energy {best.family}, {num(best.total_kwh)} kWh (encode "
        f"{num(best.encode_kwh)}, delivery {num(delivery)}), {co2}, {money}"
    )
    if cost.reference and cost.reference != best.family:
        line += (
            f"; it overtakes {cost.reference} (least encode energy) {_after(best.break_even_views)}"
        )
    return line + "."


def verdict_lines(cost: TitleCost) -> list[str]:
    """Break-even per family, the families never worth it, and what was left out."""
    out: list[str] = []
    if cost.reference:
        ref = cost.family(cost.reference)
        parts = [
            f"{f.family} {_after(f.break_even_views)}"
            for f in cost.families
            if f.family != ref.family
        ]
        if parts:
            out.append(
                f"Against {ref.family} (least encode energy, {num(ref.encode_kwh)} kWh), a "
                "family with fewer bits is cheaper in total energy: " + "; ".join(parts) + "."
            )
    never = [f for f in cost.families if f.least_total_from_views is None]
    if never:
        out.append(
            "Never the least total energy at any view count: "
            + "; ".join(_never_reason(f) for f in never)
            + "."
        )
    for e in cost.excluded:
        out.append(f"Not priced: {e['family']}: {unpriced_reason(e)}.")
    nominal = [f.family for f in cost.families if f.bitrate_basis != "achieved"]
    if nominal:
        out.append(
            "Delivered bits from the nominal bitrate (the achieved bitrate was not recorded): "
            + ", ".join(nominal)
            + "."
        )
    if cost.carbon_missing:
        out.append(f"CO2e not computed: {cost.carbon_missing}.")
    return out


def _never_reason(f: FamilyCost) -> str:
    if f.dominated_by:
        return f"{f.family} (dominated by {f.dominated_by}: no more encode energy, no more bits)"
    return f"{f.family} (on the frontier, but another family totals less at every view count)"


def _views(views: float) -> str:
    """A view count as a reader counts them: the whole views from which it holds (the exact
    crossing, which may fall between two views, is in the JSON)."""
    return "inf" if math.isinf(views) else f"{math.ceil(views):,}"


def family_table(cost: TitleCost) -> pd.DataFrame:
    money = f"total cost ({cost.currency})" if cost.currency else "total cost"
    rows = []
    for f in cost.families:
        if f.least_total_from_views is None:
            cheapest = "never"
        else:
            to = f.least_total_to_views
            cheapest = (
                f"{_views(f.least_total_from_views)}-{_views(to if to is not None else math.inf)}"
            )
        rows.append(
            {
                "family": f.family,
                "encode kWh": num(f.encode_kwh),
                "encode hours": num(f.encode_compute_hours),
                "GB per view": num(f.delivery_gb_per_view),
                "delivery kWh per view": num(f.delivery_kwh_per_view),
                "total kWh": num(f.total_kwh),
                "total kg CO2e": num(f.total_kg_co2e),
                money: num(f.total_cost) if math.isfinite(f.total_cost) else "n/a",
                "break-even views": "reference"
                if f.family == cost.reference
                else (_views(f.break_even_views) if f.break_even_views is not None else "never"),
                "least total energy for views": cheapest,
                "frontier": "yes" if f.on_frontier else f"dominated by {f.dominated_by}",
            }
        )
    return pd.DataFrame(rows)


def _value(v: float | str | None) -> str:
    if v is None:
        return "not set"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1e6 else f"{v:g}"
    return str(v)


def assumption_table(cost: TitleCost) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "assumption": a.name,
                "value": _value(a.value),
                "unit": a.unit,
                "source": a.source,
            }
            for a in assumptions(cost)
        ]
    )


def sections(cost: TitleCost | None) -> list[CostSection]:
    if cost is None:
        return []
    text = "\n".join([summary_line(cost), *verdict_lines(cost)])
    return [
        (
            f"What the title costs: {num(cost.title_minutes)} minutes, "
            f"{views_text(cost.views)} views",
            text,
            "main",
        ),
        (
            "Title cost per family (energy basis: " + cost.energy_basis + ")",
            family_table(cost),
            "main",
        ),
        ("Title cost assumptions", assumption_table(cost), "main"),
    ]
