"""Figures for the HTML report, written as inline SVG.

Plain SVG text instead of matplotlib PNGs: the report stays one self-contained file, the
figures stay sharp at any zoom, points carry tooltips, and rendering takes milliseconds
(matplotlib's import and five Agg renders took about 3 s of the benchmark's 100-scenario
report).
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .present.numbers import target as target_text
from .recommender import AdvisorReport

MAX_SCENARIO_PANELS = 12
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def pt(v: float) -> str:
    """An SVG coordinate: one decimal is finer than a pixel and keeps the file small."""
    return f"{v:.1f}"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round tick values (1, 2 or 5 x 10^k apart) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + k * step, 12) for k in range(int((hi - first) / step + 1e-9) + 1)]


def tick_text(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:g}M"
    if a >= 1e4:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def limits(values: Iterable[float], pad: float = 0.05) -> tuple[float, float]:
    arr = np.asarray([v for v in values if v is not None], dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if not arr.size:
        return 0.0, 1.0
    lo, hi = float(arr.min()), float(arr.max())
    if hi == lo:
        lo, hi = lo - (abs(lo) or 1) * 0.1, hi + (abs(hi) or 1) * 0.1
    span = hi - lo
    return lo - pad * span, hi + pad * span


class Axes:
    """A rectangle of the figure with linear data scales; collects SVG elements."""

    def __init__(
        self,
        box: tuple[float, float, float, float],
        xlim: tuple[float, float],
        ylim: tuple[float, float],
    ) -> None:
        self.x0, self.y0, self.w, self.h = box
        self.xlim, self.ylim = xlim, ylim
        self.parts: list[str] = []

    def px(self, x: float) -> float:
        lo, hi = self.xlim
        return self.x0 + (x - lo) / (hi - lo) * self.w

    def py(self, y: float) -> float:
        lo, hi = self.ylim
        return self.y0 + self.h - (y - lo) / (hi - lo) * self.h

    def line(
        self,
        xs: Sequence[float],
        ys: Sequence[float],
        stroke: str,
        *,
        width: float = 1.0,
        dash: str | None = None,
        opacity: float = 1.0,
    ) -> None:
        """A polyline, broken where a value is not finite (a gap stays a gap)."""
        seg: list[str] = []
        extra = f" stroke-dasharray='{dash}'" if dash else ""
        if opacity < 1:
            extra += f" stroke-opacity='{opacity}'"

        def flush() -> None:
            if len(seg) > 1:
                self.parts.append(
                    f"<polyline fill='none' stroke='{stroke}' stroke-width='{width}'{extra} "
                    f"points='{' '.join(seg)}'/>"
                )
            seg.clear()

        for x, y in zip(xs, ys, strict=True):
            if math.isfinite(x) and math.isfinite(y):
                seg.append(f"{pt(self.px(x))},{pt(self.py(y))}")
            else:
                flush()
        flush()

    def points(
        self,
        xs: Sequence[float],
        ys: Sequence[float],
        fill: str,
        *,
        r: float = 3.0,
        tips: Sequence[str] | None = None,
        shape: str = "circle",
        stroke: str | None = None,
    ) -> None:
        for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            tip = f"<title>{_e(tips[i])}</title>" if tips else ""
            cx, cy = self.px(x), self.py(y)
            style = f"fill='{fill}'" + (f" stroke='{stroke}' stroke-width='1.5'" if stroke else "")
            if shape == "square":
                self.parts.append(
                    f"<rect x='{pt(cx - r)}' y='{pt(cy - r)}' width='{pt(2 * r)}' "
                    f"height='{pt(2 * r)}' {style}>{tip}</rect>"
                )
            elif shape == "x":
                d = f"M{pt(cx - r)},{pt(cy - r)}L{pt(cx + r)},{pt(cy + r)}"
                d += f"M{pt(cx - r)},{pt(cy + r)}L{pt(cx + r)},{pt(cy - r)}"
                self.parts.append(f"<path d='{d}' stroke='{fill}' stroke-width='2'>{tip}</path>")
            else:
                self.parts.append(
                    f"<circle cx='{pt(cx)}' cy='{pt(cy)}' r='{r}' {style}>{tip}</circle>"
                )

    def band(
        self, xs: Sequence[float], lo: Sequence[float], hi: Sequence[float], fill: str
    ) -> None:
        pts = [f"{pt(self.px(x))},{pt(self.py(y))}" for x, y in zip(xs, hi, strict=True)]
        pts += [
            f"{pt(self.px(x))},{pt(self.py(y))}"
            for x, y in zip(reversed(xs), reversed(lo), strict=True)
        ]
        self.parts.append(f"<polygon fill='{fill}' fill-opacity='0.15' points='{' '.join(pts)}'/>")

    def vspan(self, x0: float, x1: float, fill: str, opacity: float = 0.3, extra: str = "") -> None:
        a, b = self.px(x0), self.px(x1)
        self.parts.append(
            f"<rect x='{pt(a)}' y='{pt(self.y0)}' width='{pt(max(b - a, 0.5))}' "
            f"height='{pt(self.h)}' fill='{fill}' fill-opacity='{opacity}'{extra}/>"
        )

    def vline(self, x: float, stroke: str, dash: str = "5,3", width: float = 1.2) -> None:
        self.parts.append(
            f"<line x1='{pt(self.px(x))}' x2='{pt(self.px(x))}' y1='{pt(self.y0)}' "
            f"y2='{pt(self.y0 + self.h)}' stroke='{stroke}' stroke-width='{width}' "
            f"stroke-dasharray='{dash}'/>"
        )

    def hline(self, y: float, stroke: str, dash: str = "4,3", width: float = 0.8) -> None:
        self.parts.append(
            f"<line x1='{pt(self.x0)}' x2='{pt(self.x0 + self.w)}' y1='{pt(self.py(y))}' "
            f"y2='{pt(self.py(y))}' stroke='{stroke}' stroke-width='{width}' "
            f"stroke-dasharray='{dash}'/>"
        )

    def frame(
        self,
        xlabel: str = "",
        ylabel: str = "",
        *,
        title: str = "",
        xticks: bool = True,
        yticks: bool = True,
        size: int = 11,
    ) -> None:
        """Grid lines under the data; box, ticks and labels over it."""
        x0, y0, w, h = self.x0, self.y0, self.w, self.h
        under: list[str] = []
        over = [f"<rect x='{x0}' y='{y0}' width='{w}' height='{h}' fill='none' stroke='#333'/>"]
        if xticks:
            for t in nice_ticks(*self.xlim):
                x = self.px(t)
                over.append(
                    f"<line x1='{pt(x)}' x2='{pt(x)}' y1='{y0 + h}' y2='{y0 + h + 4}' "
                    "stroke='#333'/>"
                    f"<text x='{pt(x)}' y='{y0 + h + 6 + size}' font-size='{size}' "
                    f"text-anchor='middle'>{tick_text(t)}</text>"
                )
        if yticks:
            for t in nice_ticks(*self.ylim):
                y = self.py(t)
                under.append(
                    f"<line x1='{x0}' x2='{x0 + w}' y1='{pt(y)}' y2='{pt(y)}' stroke='#eee'/>"
                )
                over.append(
                    f"<line x1='{x0 - 4}' x2='{x0}' y1='{pt(y)}' y2='{pt(y)}' stroke='#333'/>"
                    f"<text x='{x0 - 6}' y='{pt(y + size / 3)}' font-size='{size}' "
                    f"text-anchor='end'>{tick_text(t)}</text>"
                )
        if xlabel:
            over.append(
                f"<text x='{pt(x0 + w / 2)}' y='{pt(y0 + h + 2 * size + 12)}' "
                f"font-size='{size + 1}' text-anchor='middle'>{_e(xlabel)}</text>"
            )
        if ylabel:
            cx, cy = x0 - 48, y0 + h / 2
            over.append(
                f"<text x='{pt(cx)}' y='{pt(cy)}' font-size='{size + 1}' text-anchor='middle' "
                f"transform='rotate(-90 {pt(cx)} {pt(cy)})'>{_e(ylabel)}</text>"
            )
        if title:
            over.append(
                f"<text x='{pt(x0 + w / 2)}' y='{pt(y0 - 8)}' font-size='{size + 1}' "
                f"text-anchor='middle' font-weight='bold'>{_e(title)}</text>"
            )
        self.parts = [*under, *self.parts, *over]


def legend(x: float, y: float, entries: Sequence[tuple[str, str, str]], size: int = 11) -> str:
    """Entries (label, color, kind: line | dashed | square)."""
    out = []
    for k, (label, col, kind) in enumerate(entries):
        yy = y + k * (size + 5)
        if kind == "square":
            out.append(f"<rect x='{x}' y='{pt(yy - 8)}' width='10' height='10' fill='{col}'/>")
        else:
            dash = " stroke-dasharray='5,3'" if kind == "dashed" else ""
            wide = 3 if kind == "thick" else 2
            out.append(
                f"<line x1='{x}' x2='{x + 16}' y1='{pt(yy - 3)}' y2='{pt(yy - 3)}' "
                f"stroke='{col}' stroke-width='{wide}'{dash}/>"
            )
        out.append(f"<text x='{x + 22}' y='{pt(yy)}' font-size='{size}'>{_e(label)}</text>")
    return "".join(out)


def svg(width: float, height: float, body: Iterable[str], label: str) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' role='img' aria-label='{_e(label)}' "
        f"width='{width:.0f}' height='{height:.0f}' viewBox='0 0 {width:.0f} {height:.0f}' "
        "font-family='system-ui,sans-serif'>"
        f"<rect width='100%' height='100%' fill='white'/>{''.join(body)}</svg>"
    )


# -- the figures ------------------------------------------------------------------------------


def frontier_plot(rep: AdvisorReport) -> str | None:
    """Energy per output minute vs quality: each family's measured bitrates as a line, the
    frontier per output resolution (black), the target (red dashed line, x per family)."""
    qa = rep.quality
    pts = qa.points
    if not qa.measured or pts.empty:
        return None
    xs = list(pts["quality"]) + ([qa.target.value] if qa.target else [])
    ax = Axes((80, 30, 640, 360), limits(xs), limits(pts["energy"]))
    fams = sorted(pts["family"].unique())
    entries: list[tuple[str, str, str]] = []
    for i, fam in enumerate(fams):
        g = pts[pts["family"] == fam].sort_values("bitrate_bps")
        c = color(i)
        ax.line(list(g["quality"]), list(g["energy"]), c, width=1.2, opacity=0.8)
        tips = [
            f"{s}: {qa.metric} {q:.4g}, {e:.4g} J/output min, {b / 1e6:.3g} Mb/s"
            for s, q, e, b in zip(
                g["scenario"], g["quality"], g["energy"], g["bitrate_bps"], strict=True
            )
        ]
        ax.points(list(g["quality"]), list(g["energy"]), c, r=3.5, tips=tips)
        entries.append((fam, c, "line"))
    for k, (group, names) in enumerate(sorted(qa.frontier_groups.items())):
        f = pts[pts["scenario"].isin(names)].sort_values("quality")
        dash = None if k == 0 else "6,3"
        ax.line(list(f["quality"]), list(f["energy"]), "#000", width=2.5, dash=dash)
        ax.points(list(f["quality"]), list(f["energy"]), "none", r=5, shape="square", stroke="#000")
        entries.append((f"frontier {group}", "#000", "thick" if k == 0 else "dashed"))
    if qa.target is not None:
        ax.vline(qa.target.value, "#d00")
        reached = [f for f in qa.families if f.at_target is not None]
        ax.points(
            [qa.target.value] * len(reached),
            [f.at_target.energy for f in reached if f.at_target],
            "#d00",
            r=5,
            tips=[
                f"{f.name} at {target_text(qa.target)}: {f.at_target.energy:.4g} J/output min"
                for f in reached
                if f.at_target
            ],
            shape="x",
        )
        entries.append((f"target {target_text(qa.target)}", "#d00", "dashed"))
    ax.frame(f"{qa.metric} (mean over repeats)", f"J per output minute ({qa.basis})")
    height = max(440, 40 + 16 * len(entries))
    return svg(1000, height, [*ax.parts, legend(740, 40, entries, 10)], "energy vs quality")


def ranking_plot(rep: AdvisorReport) -> str | None:
    sc = rep.scenarios
    m = rep.meta["rank_by"]
    if sc.empty or not np.isfinite(sc[f"{m}_mean"]).any():
        return None
    sc = sc[np.isfinite(sc[f"{m}_mean"])].sort_values(["ladder", "rank"])
    labels = [f"{s} [{lad}]" for s, lad in zip(sc["scenario"], sc["ladder"], strict=True)]
    bar = 14 if len(sc) <= 60 else 10
    size = 10 if len(sc) <= 60 else 8
    left = min(520, 24 + 0.62 * size * max(len(t) for t in labels))
    mean = sc[f"{m}_mean"].to_numpy(dtype=float)
    ci = np.nan_to_num(sc[f"{m}_ci95"].to_numpy(dtype=float))
    hi = float(np.max(mean + ci))
    ax = Axes((left, 30, 560, bar * len(sc)), (0.0, hi * 1.05 if hi > 0 else 1.0), (0, len(sc)))
    ladders = sorted(sc["ladder"].unique())
    for k, (v, c, lad, text) in enumerate(zip(mean, ci, sc["ladder"], labels, strict=True)):
        y = ax.y0 + k * bar
        col = color(ladders.index(lad))
        ax.parts.append(
            f"<rect x='{pt(ax.px(0))}' y='{pt(y + 1)}' width='{pt(ax.px(v) - ax.px(0))}' "
            f"height='{bar - 2}' fill='{col}'><title>{_e(text)}: {v:.4g} ± {c:.3g}</title></rect>"
            f"<text x='{pt(left - 6)}' y='{pt(y + bar - 3)}' font-size='{size}' "
            f"text-anchor='end'>{_e(text)}</text>"
        )
        if c > 0:
            yy = y + bar / 2
            ax.parts.append(
                f"<line x1='{pt(ax.px(v - c))}' x2='{pt(ax.px(v + c))}' y1='{pt(yy)}' "
                f"y2='{pt(yy)}' stroke='#222'/>"
            )
    ax.frame(f"{m} (mean ± 95% CI)", yticks=False, title="Efficiency, coloured by output ladder")
    return svg(left + 600, 30 + bar * len(sc) + 50, ax.parts, "efficiency ranking")


def timeline_plot(rep: AdvisorReport) -> str | None:
    if rep.timeline is None:
        return None
    t, p = rep.timeline
    if not np.isfinite(p).any():
        return None
    t0 = float(t[0])
    mins = (t - t0) / 60
    ax = Axes((70, 30, 1100, 260), (float(mins[0]), float(mins[-1])), limits(p))
    w = rep.windows
    scen = sorted(w["scenario"].unique())
    colors = {s: color(i) for i, s in enumerate(scen)}
    hatch = " stroke='#d00' stroke-width='0.8' fill='url(#hatch)'"
    for a, b, ph, s, st in zip(
        (w["start_s"] - t0) / 60,
        (w["end_s"] - t0) / 60,
        w["phase"],
        w["scenario"],
        w["status"],
        strict=True,
    ):
        ax.vspan(a, b, "#bbb" if ph == "baseline" else colors[s], 0.3)
        if st != "ok":
            ax.vspan(a, b, "none", 1.0, hatch)
    ax.line(list(mins), list(p), "#000", width=0.7)
    ax.frame(
        "minutes since start",
        "W",
        title="Total power; transcode windows coloured by scenario, baselines grey, "
        "hatched = failed/missing",
    )
    defs = (
        "<defs><pattern id='hatch' width='6' height='6' patternUnits='userSpaceOnUse' "
        "patternTransform='rotate(45)'><line x1='0' y1='0' x2='0' y2='6' stroke='#d00'/>"
        "</pattern></defs>"
    )
    return svg(1200, 350, [defs, *ax.parts], "total power over time")


def scenario_panels(rep: AdvisorReport) -> str | None:
    if rep.timeline is None or rep.scenarios.empty:
        return None
    t, p = rep.timeline
    sc = rep.scenarios.sort_values(["rank", "scenario"], na_position="last")
    names = list(sc["scenario"].drop_duplicates())[:MAX_SCENARIO_PANELS]
    cols = min(4, len(names))
    rows = (len(names) + cols - 1) // cols
    pw, ph = 260, 150
    w = rep.windows
    tr = w[w["phase"] == "transcode"]
    parts: list[str] = []
    for k, name in enumerate(names):
        mine = tr[tr["scenario"] == name]
        spans = []
        for start, end in zip(mine["start_s"], mine["end_s"], strict=True):
            m = (t >= start - 2) & (t <= end + 2)
            spans.append((t[m] - start, p[m], end - start))
        if not spans:
            continue
        xs = np.concatenate([s[0] for s in spans]) if spans else np.zeros(1)
        ys = np.concatenate([s[1] for s in spans])
        base = mine["baseline_power_w"].to_numpy(dtype=float)
        box = (50 + (k % cols) * (pw + 50), 40 + (k // cols) * (ph + 50), pw, ph)
        ax = Axes(box, limits(xs, 0.0), limits(np.concatenate([ys, base])))
        ax.vspan(0.0, max(s[2] for s in spans), "#1f77b4", 0.06)
        for i, (x, y, _) in enumerate(spans):
            ax.line(list(x), list(y), color(i), width=0.9)
        for b in base[np.isfinite(base)][:1]:
            ax.hline(float(b), "#777")
        ax.frame(title=name, size=9)
        parts.extend(ax.parts)
    title = (
        "<text x='20' y='16' font-size='12' font-weight='bold'>Power over time per scenario "
        "(W; repeats aligned at the window start, in colour; dashed = baseline)</text>"
    )
    return svg(50 + cols * (pw + 50), 40 + rows * (ph + 50), [title, *parts], "per scenario")


def prediction_plot(rep: AdvisorReport) -> str | None:
    block = rep.prediction.get("power") if isinstance(rep.prediction, dict) else None
    if not block or block.get("status") != "ok":
        return None
    pred: pd.DataFrame = block["predictions"]
    if pred.empty:
        return None
    w = rep.windows
    ok = w[(w["phase"] == "transcode") & (w["status"] == "ok")]
    keys = ["encoder", "preset", "ladder", "bitrate"]
    groups = list(pred.groupby(keys))
    ys = [*pred["lower"], *pred["upper"], *ok["mean_power_w"]]
    ax = Axes((70, 30, 700, 320), limits(pred["streams"]), limits(ys))
    entries = []
    for i, ((enc, pre, lad, br), grp) in enumerate(groups):
        c = color(i)
        g = grp.sort_values("streams")
        ax.band(list(g["streams"]), list(g["lower"]), list(g["upper"]), c)
        ax.line(list(g["streams"]), list(g["predicted"]), c, width=1.5)
        meas = ok[
            (ok["encoder"] == enc)
            & (ok["preset"] == pre)
            & (ok["ladder"] == lad)
            & (ok["bitrate"] == br)
        ]
        ax.points(list(meas["streams"]), list(meas["mean_power_w"]), c, r=2.5)
        entries.append((f"{enc}/{pre} {lad}", c, "line"))
    ax.frame(
        "streams",
        "mean power W",
        title=f"Predicted power ({block['model']}, held-out MAPE "
        f"{block['heldout_mape_pct']:.1f}%), 90% intervals; dots = measured",
    )
    body = [*ax.parts]
    if len(entries) <= 12:
        body.append(legend(790, 40, entries, 10))
    return svg(1100, 400, body, "predicted power")
