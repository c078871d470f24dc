"""matplotlib figures for the HTML report, returned as base64 PNG (Agg backend, no display)."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from .recommender import AdvisorReport

MAX_SCENARIO_PANELS = 12


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(w: float, h: float) -> Any:
    # Object-oriented API with the Agg canvas: no pyplot state, no global backend switch.
    fig = Figure(figsize=(w, h))
    FigureCanvasAgg(fig)
    return fig


def timeline_plot(rep: AdvisorReport) -> str | None:
    if rep.timeline is None:
        return None
    t, p = rep.timeline
    if not np.isfinite(p).any():
        return None
    t0 = float(t[0])
    fig = _figure(12, 3.5)
    ax = fig.add_subplot(111)
    ax.plot((t - t0) / 60, p, lw=0.6, color="black", label="total power")
    w = rep.windows
    scen = sorted(w["scenario"].unique())
    colors = {s: f"C{i % 10}" for i, s in enumerate(scen)}
    # One collection for all windows (hundreds of axvspan artists render slowly).
    a = ((w["start_s"] - t0) / 60).to_numpy()
    b = ((w["end_s"] - t0) / 60).to_numpy()
    verts = [[(x0, 0), (x0, 1), (x1, 1), (x1, 0)] for x0, x1 in zip(a, b, strict=True)]
    faces = [
        "lightgrey" if ph == "baseline" else colors[s]
        for ph, s in zip(w["phase"], w["scenario"], strict=True)
    ]
    hatches = w["status"] != "ok"
    coll = PolyCollection(
        verts, facecolors=faces, alpha=0.3, linewidths=0, transform=ax.get_xaxis_transform()
    )
    ax.add_collection(coll)
    if hatches.any():
        bad = [v for v, h in zip(verts, hatches, strict=True) if h]
        ax.add_collection(
            PolyCollection(
                bad,
                facecolors="none",
                edgecolors="red",
                hatch="//",
                linewidths=0.5,
                transform=ax.get_xaxis_transform(),
            )
        )
    ax.set_xlabel("minutes since start")
    ax.set_ylabel("W")
    ax.set_title(
        "Total power; transcode windows coloured by scenario, baselines grey, "
        "hatched = failed/missing"
    )
    return _png(fig)


def scenario_panels(rep: AdvisorReport) -> str | None:
    if rep.timeline is None or rep.scenarios.empty:
        return None
    t, p = rep.timeline
    sc = rep.scenarios.sort_values(["rank", "scenario"], na_position="last")
    names = list(sc["scenario"].drop_duplicates())[:MAX_SCENARIO_PANELS]
    n = len(names)
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    fig = _figure(3.2 * cols, 2.4 * rows)
    w = rep.windows
    for k, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, k + 1)
        for _, row in w[(w["scenario"] == name) & (w["phase"] == "transcode")].iterrows():
            m = (t >= row["start_s"] - 2) & (t <= row["end_s"] + 2)
            ax.plot(t[m] - row["start_s"], p[m], lw=0.7, label=f"r{row['repeat']}")
            ax.axvspan(0, row["end_s"] - row["start_s"], color="C0", alpha=0.05, lw=0)
            if np.isfinite(row["baseline_power_w"]):
                ax.axhline(row["baseline_power_w"], color="grey", ls="--", lw=0.7)
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(
        "Power over time per scenario (repeats aligned at window start; dashed = baseline)",
        fontsize=9,
    )
    return _png(fig)


def ranking_plot(rep: AdvisorReport) -> str | None:
    sc = rep.scenarios
    m = rep.meta["rank_by"]
    if sc.empty or not np.isfinite(sc[f"{m}_mean"]).any():
        return None
    sc = sc[np.isfinite(sc[f"{m}_mean"])].sort_values(["ladder", "rank"])
    fig = _figure(10, min(16.0, max(2.5, 0.14 * len(sc) + 1)))
    ax = fig.add_subplot(111)
    y = np.arange(len(sc))
    ladders = sorted(sc["ladder"].unique())
    colors = [f"C{ladders.index(lad) % 10}" for lad in sc["ladder"]]
    ax.barh(
        y,
        sc[f"{m}_mean"],
        xerr=np.nan_to_num(sc[f"{m}_ci95"].to_numpy(dtype=float)),
        color=colors,
        capsize=2,
    )
    ax.set_yticks(
        y,
        [f"{s} [{lad}]" for s, lad in zip(sc["scenario"], sc["ladder"], strict=True)],
        fontsize=7 if len(sc) <= 40 else 5,
    )
    ax.invert_yaxis()
    ax.set_xlabel(f"{m} (mean ± 95% CI)")
    ax.set_title("Efficiency ranking, coloured by output ladder")
    return _png(fig)


def prediction_plot(rep: AdvisorReport) -> str | None:
    block = rep.prediction.get("power") if isinstance(rep.prediction, dict) else None
    if not block or block.get("status") != "ok":
        return None
    pred: pd.DataFrame = block["predictions"]
    fig = _figure(10, 4.5)
    ax = fig.add_subplot(111)
    w = rep.windows
    ok = w[(w["phase"] == "transcode") & (w["status"] == "ok")]
    keys = ["encoder", "preset", "ladder", "bitrate"]
    for i, ((enc, pre, lad, br), grp) in enumerate(pred.groupby(keys)):
        c = f"C{i % 10}"
        g = grp.sort_values("streams")
        ax.plot(g["streams"], g["predicted"], color=c, label=f"{enc}/{pre} {lad}")
        ax.fill_between(g["streams"], g["lower"], g["upper"], color=c, alpha=0.15)
        meas = ok[
            (ok["encoder"] == enc)
            & (ok["preset"] == pre)
            & (ok["ladder"] == lad)
            & (ok["bitrate"] == br)
        ]
        ax.scatter(meas["streams"], meas["mean_power_w"], color=c, s=12)
    ax.set_xlabel("streams")
    ax.set_ylabel("mean power W")
    ax.set_title(
        f"Predicted power ({block['model']}, held-out MAPE "
        f"{block['heldout_mape_pct']:.1f}%) with 90% intervals; dots = measured"
    )
    if len(pred.groupby(keys)) <= 12:
        ax.legend(fontsize=7)
    return _png(fig)


def frontier_plot(rep: AdvisorReport) -> str | None:
    """Energy per output minute vs quality: each family's measured curve, the frontier per
    output resolution (thick), and the target (vertical line)."""
    qa = rep.quality
    pts = qa.points
    if not qa.measured or pts.empty:
        return None
    fig = _figure(10, 5)
    ax = fig.add_subplot(111)
    fams = sorted(pts["family"].unique())
    many = len(fams) > 12
    for i, fam in enumerate(fams):
        g = pts[pts["family"] == fam].sort_values("bitrate_bps")
        c = f"C{i % 10}"
        ax.plot(g["quality"], g["energy"], "o-", color=c, lw=0.8, ms=4, alpha=0.8, label=fam)
    markers = "sD^v<>p*"
    for k, (group, names) in enumerate(sorted(qa.frontier_groups.items())):
        f = pts[pts["scenario"].isin(names)].sort_values("quality")
        ax.plot(
            f["quality"],
            f["energy"],
            "-",
            marker=markers[k % len(markers)],
            color="black",
            lw=2.2,
            ms=7,
            mfc="none",
            label=f"frontier {group}",
            zorder=5,
        )
    if qa.target is not None:
        ax.axvline(qa.target.value, color="red", ls="--", lw=1.2, label=f"target {qa.target}")
        for fam in qa.families:
            if fam.at_target is not None:
                ax.plot([qa.target.value], [fam.at_target.energy], "x", color="red", ms=8)
    ax.set_xlabel(f"{qa.metric} (mean over repeats)")
    ax.set_ylabel(f"J per output minute ({qa.basis_text})")
    ax.set_title(
        "Energy vs quality per family (lines: measured bitrates); black: the frontier"
        + (", red: the target" if qa.target else "")
    )
    ax.legend(fontsize=6 if many else 7, ncol=3 if many else 1, loc="best")
    return _png(fig)


def all_plots(rep: AdvisorReport) -> list[tuple[str, str]]:
    out = []
    for title, fn in (
        ("Energy vs quality: the frontier", frontier_plot),
        ("Power over time", timeline_plot),
        ("Power over time per scenario", scenario_panels),
        ("Efficiency ranking", ranking_plot),
        ("Prediction curve", prediction_plot),
    ):
        png = fn(rep)
        if png:
            out.append((title, png))
    return out
