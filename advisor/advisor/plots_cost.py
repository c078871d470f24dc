"""Figures of the title cost, as inline SVG like the report's other figures: total energy
against views (log axes) with the crossovers marked, and the frontier of encode energy
against delivered bits."""

from __future__ import annotations

import math

import numpy as np

from .cost import TitleCost
from .plots import Axes, color, legend, limits, pt, svg, tick_text
from .present.cost import target_text
from .present.numbers import num
from .present.numbers import views as views_text

BOX = (80, 30, 640, 360)


def _decades(lo: float, hi: float) -> range:
    return range(math.floor(lo), math.ceil(hi) + 1)


def _log_ticks(ax: Axes, size: int = 11) -> None:
    """Grid lines (under the data), ticks and labels at powers of ten on both axes (the axes
    hold log10 values)."""
    x0, y0, w, h = ax.x0, ax.y0, ax.w, ax.h
    under: list[str] = []
    over: list[str] = []
    for k in _decades(*ax.xlim):
        if not ax.xlim[0] <= k <= ax.xlim[1]:
            continue
        x = ax.px(k)
        under.append(f"<line x1='{pt(x)}' x2='{pt(x)}' y1='{y0}' y2='{y0 + h}' stroke='#eee'/>")
        over.append(
            f"<line x1='{pt(x)}' x2='{pt(x)}' y1='{y0 + h}' y2='{y0 + h + 4}' stroke='#333'/>"
            f"<text x='{pt(x)}' y='{y0 + h + 6 + size}' font-size='{size}' "
            f"text-anchor='middle'>{tick_text(10.0**k)}</text>"
        )
    for k in _decades(*ax.ylim):
        if not ax.ylim[0] <= k <= ax.ylim[1]:
            continue
        y = ax.py(k)
        under.append(f"<line x1='{x0}' x2='{x0 + w}' y1='{pt(y)}' y2='{pt(y)}' stroke='#eee'/>")
        over.append(
            f"<line x1='{x0 - 4}' x2='{x0}' y1='{pt(y)}' y2='{pt(y)}' stroke='#333'/>"
            f"<text x='{x0 - 6}' y='{pt(y + size / 3)}' font-size='{size}' "
            f"text-anchor='end'>{tick_text(10.0**k)}</text>"
        )
    ax.parts = [*under, *ax.parts, *over]


def views_plot(cost: TitleCost | None) -> str | None:
    """Total energy (encode + N x delivery) against views N, one line per family; circles
    where a family overtakes the one with the least encode energy, squares where the family
    with the least total energy changes, the dashed line at the requested views."""
    if cost is None or not cost.families:
        return None
    fams = sorted(cost.families, key=lambda f: f.family)
    crossings = [f.break_even_views for f in fams if f.break_even_views]
    last = max([cost.views, 10.0, *[c for c in crossings if c is not None]])
    x_hi = math.ceil(math.log10(last)) + 1
    views = np.logspace(0, x_hi, 240)
    totals = {f.family: f.encode_kwh + views * f.delivery_kwh_per_view for f in fams}
    every = np.concatenate(list(totals.values()))
    every = every[np.isfinite(every) & (every > 0)]
    if not every.size:
        return None
    y_lo = math.floor(math.log10(float(every.min())))
    y_hi = math.ceil(math.log10(float(every.max())))
    if y_hi == y_lo:
        y_hi += 1
    ax = Axes(BOX, (0.0, float(x_hi)), (float(y_lo), float(y_hi)))
    lx = np.log10(views)
    entries: list[tuple[str, str, str]] = []
    for i, f in enumerate(fams):
        t = totals[f.family]
        ly = np.where(t > 0, np.log10(np.where(t > 0, t, 1.0)), np.nan)
        ax.line(list(lx), list(ly), color(i), width=2.2 if f.family == cost.reference else 1.4)
        label = f.family + (" (least encode)" if f.family == cost.reference else "")
        entries.append((label, color(i), "line"))
    ref = next((f for f in fams if f.family == cost.reference), None)
    drawn = {"overtakes": 0, "changes": 0}
    for i, f in enumerate(fams):
        n = f.break_even_views
        if ref is None or n is None or not 1.0 <= n <= 10.0**x_hi:
            continue
        total = ref.encode_kwh + n * ref.delivery_kwh_per_view
        ax.points(
            [math.log10(n)],
            [math.log10(total)],
            color(i),
            r=5,
            stroke="#000",
            tips=[f"{f.family} overtakes {ref.family} after {num(n)} views ({num(total)} kWh)"],
        )
        drawn["overtakes"] += 1
    for f in fams:
        n = f.least_total_from_views
        if n is None or not 1.0 <= n <= 10.0**x_hi:
            continue
        total = f.encode_kwh + n * f.delivery_kwh_per_view
        ax.points(
            [math.log10(n)],
            [math.log10(total)],
            "none",
            r=6,
            shape="square",
            stroke="#000",
            tips=[f"from {num(n)} views on, {f.family} has the least total energy"],
        )
        drawn["changes"] += 1
    ax.vline(math.log10(max(cost.views, 1.0)), "#d00")
    entries.append((f"{views_text(cost.views)} views", "#d00", "dashed"))
    ax.frame(
        "views (log)",
        "total kWh (log)",
        title=f"Encode once + deliver N views at {target_text(cost)} "
        f"({cost.delivery_model} delivery)",
        xticks=False,
        yticks=False,
    )
    _log_ticks(ax)
    y = 40 + 15 * len(entries)
    marks = []
    if drawn["overtakes"]:
        marks.append(
            f"<circle cx='748' cy='{y - 3}' r='4' fill='#888' stroke='#000'/>"
            f"<text x='762' y='{y}' font-size='10'>overtakes the least-encode family</text>"
        )
        y += 17
    if drawn["changes"]:
        marks.append(
            f"<rect x='743' y='{y - 9}' width='10' height='10' fill='none' stroke='#000'/>"
            f"<text x='762' y='{y}' font-size='10'>least total energy from here on</text>"
        )
    height = max(440, y + 40)
    body = [*ax.parts, legend(740, 40, entries, 10), *marks]
    return svg(1000, height, body, "total energy vs views")


def frontier_plot(cost: TitleCost | None) -> str | None:
    """Encode energy of the title against GB delivered per view: the frontier (black) is the
    families no other beats on both; the others (hollow) are never worth it."""
    if cost is None or not cost.families:
        return None
    fams = sorted(cost.families, key=lambda f: f.family)
    xs = [f.delivery_gb_per_view for f in fams]
    ys = [f.encode_kwh for f in fams]
    ax = Axes(BOX, limits(xs), limits(ys))
    front = sorted((f for f in fams if f.on_frontier), key=lambda f: f.delivery_gb_per_view)
    ax.line([f.delivery_gb_per_view for f in front], [f.encode_kwh for f in front], "#000", width=2)
    entries: list[tuple[str, str, str]] = []
    for i, f in enumerate(fams):
        where = "on the frontier" if f.on_frontier else f"dominated by {f.dominated_by}"
        tip = (
            f"{f.family}: {num(f.encode_kwh)} kWh to encode, {num(f.delivery_gb_per_view)} GB "
            f"per view; {where}"
        )
        ax.points(
            [f.delivery_gb_per_view],
            [f.encode_kwh],
            color(i) if f.on_frontier else "white",
            r=6,
            stroke=color(i),
            tips=[tip],
        )
        entries.append((f.family + ("" if f.on_frontier else " (dominated)"), color(i), "square"))
    entries.append(("frontier", "#000", "thick"))
    ax.frame(
        "GB delivered per view",
        f"encode kWh for the title ({cost.energy_basis})",
        title=f"Encode energy vs delivered bits at {target_text(cost)}",
    )
    height = max(440, 40 + 16 * len(entries))
    body = [*ax.parts, legend(740, 40, entries, 10)]
    return svg(1000, height, body, "encode energy vs delivered bits")


def figures(cost: TitleCost | None) -> list[tuple[str, str]]:
    """(title, svg) of every cost figure there is data for."""
    out = []
    for title, fig in (
        ("What the title costs: total energy against views", views_plot(cost)),
        ("Encode energy against delivered bits: the frontier", frontier_plot(cost)),
    ):
        if fig:
            out.append((title, fig))
    return out
