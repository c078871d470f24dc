"""Report output: terminal table, markdown, CSV, JSON (stable, versioned) and HTML."""

from __future__ import annotations

import importlib
import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .attribution import BACKGROUND_FLAG_SHARE
from .cost_text import sections as cost_sections
from .present import html as page
from .present import numbers as n
from .present.notes import note_text
from .present.quality import excluded, families_table, family_json, frontier_table
from .present.report import cv_method as cv_method_text
from .present.report import prediction_message, report_dict, summary
from .present.search import sections as search_sections
from .present.words import BASIS_TEXT, MODE_TEXT, describe_score
from .quality import UNIT
from .recommender import AdvisorReport

FORMATS = ("table", "markdown", "csv", "json", "html")
CSV_TABLES = (
    "scenarios",
    "windows",
    "breakdown",
    "predictions",
    "measured_vs_predicted",
    "families",
    "frontier",
    "cost",
)

_SCEN_COLS: Sequence[tuple[str, str, bool]] = (
    # (column base, header, with CI)
    ("mean_power_w", "power W", True),
    ("baseline_power_w", "baseline W", False),
    ("net_energy_j", "net energy J", True),
    ("pixels_per_joule", "pixels/J", True),
    ("throughput_per_watt", "fps/W", True),
    ("energy_per_output_minute_j", "J/output min", True),
    ("engine_cpu_share", "engine CPU share", False),
)


def scenario_display(rep: AdvisorReport) -> pd.DataFrame:
    sc = rep.scenarios
    if sc.empty:
        return pd.DataFrame()
    out = pd.DataFrame(
        {
            "rank": [("" if not np.isfinite(r) else str(int(r))) for r in sc["rank"]],
            "scenario": sc["scenario"],
            "ladder": sc["ladder"],
            "encoder": sc["encoder"],
            "preset": sc["preset"],
            "streams": sc["streams"],
            "repeats": [
                f"{o}" + (f" (+{f} failed)" if f else "") + (f" (+{m} missing)" if m else "")
                for o, f, m in zip(sc["n_ok"], sc["n_failed"], sc["n_missing"], strict=True)
            ],
        }
    )
    for base, header, ci in _SCEN_COLS:
        out[header] = [
            n.fmt_pm(m, c if ci else None)
            for m, c in zip(sc[f"{base}_mean"], sc[f"{base}_ci95"], strict=True)
        ]
    qa = rep.quality
    if qa.measured and qa.metric and f"quality_{qa.metric}_mean" in sc:
        m = qa.metric
        out[m] = [
            n.fmt_pm(a, b) if np.isfinite(a) else ""
            for a, b in zip(sc[f"quality_{m}_mean"], sc[f"quality_{m}_ci95"], strict=True)
        ]
        col = qa.energy_column
        out[f"{qa.basis} {UNIT}"] = [
            n.fmt_pm(a, b) for a, b in zip(sc[f"{col}_mean"], sc[f"{col}_ci95"], strict=True)
        ]
    share = sc.get("background_cpu_share_mean", pd.Series(np.nan, sc.index)).to_numpy(float)
    if np.isfinite(share).any():
        out["background CPU"] = [f"{100 * x:.0f} %" if np.isfinite(x) else "" for x in share]
    out["source"] = sc["power_source"]
    return out


def shared_windows(rep: AdvisorReport) -> pd.DataFrame:
    """Transcode windows where other processes used more than BACKGROUND_FLAG_SHARE of the busy
    CPU, or that could not be attributed, with their figures."""
    w = rep.windows
    tr = w[(w["phase"] == "transcode") & (w["status"] == "ok")]
    flagged = tr[
        (tr["background_cpu_share"] > BACKGROUND_FLAG_SHARE) | tr["attribution_problem"].notna()
    ]
    return pd.DataFrame(
        {
            "window": flagged["window_id"],
            "background CPU": [f"{100 * x:.0f} %" for x in flagged["background_cpu_share"]],
            "energy J": [n.fmt(x) for x in flagged["energy_j"]],
            "attributed J": [n.fmt(x) for x in flagged["attributed_energy_j"]],
            "not attributed because": flagged["attribution_problem"].fillna(""),
        }
    ).reset_index(drop=True)


def problem_windows(rep: AdvisorReport) -> pd.DataFrame:
    w = rep.windows
    bad = w[w["status"] != "ok"]
    return bad[["window_id", "phase", "status", "problem"]].reset_index(drop=True)


def _pred_display(block: dict[str, Any]) -> pd.DataFrame:
    p = block.get("predictions")
    if not isinstance(p, pd.DataFrame) or p.empty:
        return pd.DataFrame()
    return pd.DataFrame(
        {
            "encoder": p["encoder"],
            "preset": p["preset"],
            "ladder": p["ladder"],
            "streams": p["streams"],
            "predicted": [n.fmt(x) for x in p["predicted"]],
            "90% interval": [
                f"{n.fmt(a)} - {n.fmt(b)}" for a, b in zip(p["lower"], p["upper"], strict=True)
            ],
            "extrapolated": ["yes" if e else "" for e in p["extrapolated"]],
        }
    )


def _mvp_display(block: dict[str, Any]) -> pd.DataFrame:
    m = block.get("measured_vs_predicted")
    if not isinstance(m, pd.DataFrame) or m.empty:
        return pd.DataFrame()
    cols = [c for c in ("scenario", "encoder", "preset", "streams", "n") if c in m.columns]
    out = m[cols].copy()
    out["measured"] = [n.fmt(x) for x in m["measured"]]
    out["predicted (held out)"] = [n.fmt(x) for x in m["predicted"]]
    out["error %"] = [f"{x:+.1f}" for x in m["error_pct"]]
    out["in 90% interval"] = ["yes" if x else "no" for x in m["within_interval"]]
    return out


# -- generic table writers --------------------------------------------------------------------


def text_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "(none)"
    cells = [[str(c) for c in df.columns]] + [
        [str(v) for v in row] for row in df.itertuples(index=False)
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells[1:]]
    return "\n".join(line.rstrip() for line in lines)


def markdown_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_none_"

    def esc(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(c) for c in df.columns) + " |"]
    lines.append("|" + "|".join("---" for _ in df.columns) + "|")
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _head(rep: AdvisorReport) -> str:
    meta = rep.meta
    qa = rep.quality
    runs = ", ".join(r["run_id"] for r in meta["runs"]) or "(discovered)"
    quality = (
        f"quality: {qa.metric}"
        + (
            f", target {n.target(qa.target)}"
            if qa.target
            else ", no target (pass --target-quality)"
        )
        + f"; energy per output minute {BASIS_TEXT[qa.basis]}; {MODE_TEXT[qa.mode]}"
        if qa.measured
        else f"quality: the target-quality search's probes ({n.target(rep.search.target)}); "
        "its windows measured energy only"
        if rep.search
        else "quality: not measured"
    )
    return (
        f"runs: {runs}\nreceiver: {meta['prometheus_url']} ({meta['queries']} queries, "
        f"mode {meta['query_mode']}, step {meta['step_s']} s)\nranked by: "
        f"{describe_score(meta['rank_by'])} ({meta['rank_by']}) within identical output "
        "ladders; mean ± 95% CI over repeats\n"
        f"energy basis: {meta['energy_basis']} ({BASIS_TEXT[meta['energy_basis']]})\n{quality}\n"
        f"power sources: "
        + (
            ", ".join(
                f"{s['domain']}:{s['entity']}[{s['source']}]"
                + ("" if s["added_to_total"] else " (detail, not added)")
                for s in meta["power_sources"]
            )
            or "none"
        )
    )


Body = pd.DataFrame | str
# (title, body, kind): kind "main", "prediction" (collapsed in HTML) or "notes"
Section = tuple[str, Body, str]


def prediction_sections(rep: AdvisorReport) -> list[Section]:
    """One sentence when a model was withheld or not fitted; the tables only when useful."""
    out: list[Section] = []
    pred = rep.prediction
    for key, title in (
        ("power", "Power prediction (W)"),
        ("energy_per_frame", "Energy per output frame prediction (J)"),
    ):
        block = pred.get(key) if isinstance(pred, dict) else None
        if not block:
            continue
        if block.get("status") != "ok":
            out.append((title, prediction_message(block), "main"))
            continue
        cv = block["cv"].copy()
        cv["mape_pct"] = [f"{x:.2f}" for x in cv["mape_pct"]]
        cv["rmse"] = [n.fmt(x) for x in cv["rmse"]]
        lo, hi = block["interval"]["relative_quantiles"]
        text = (
            f"model {block['model']} chosen by {cv_method_text(block)}; held-out MAPE "
            f"{block['heldout_mape_pct']:.2f}%; 90% interval = prediction x "
            f"[{1 + lo:.3f}, {1 + hi:.3f}]"
        )
        omitted = block.get("omitted_predictions") or {}
        if omitted.get("flat"):
            text += (
                f"\n{omitted['flat']} row(s) beyond the measured stream counts are not shown: "
                "the model only repeats its last measured value there"
            )
        if omitted.get("not physical"):
            text += (
                f"\n{omitted['not physical']} row(s) are not shown: the model extrapolates "
                "to zero or negative values there"
            )
        if block.get("advice"):
            text += "\nto improve: " + "; ".join(block["advice"])
        out.append((title, text, "prediction"))
        out.append((f"{title}: candidates", cv, "prediction"))
        out.append((f"{title}: 1, 2, 4, 8, 12 streams", _pred_display(block), "prediction"))
        out.append((f"{title}: measured vs predicted", _mvp_display(block), "prediction"))
    return out


def _sections(rep: AdvisorReport) -> list[Section]:
    qa = rep.quality
    out: list[Section] = [
        ("Advisor report", _head(rep), "main"),
        ("Recommendation", summary(rep), "main"),
        *search_sections(rep.search),
    ]
    if qa.measured and qa.families:
        title = f"Energy at {n.target(qa.target)} per family" if qa.target else "Families"
        out.append((title, families_table(qa), "main"))
    if qa.measured and not qa.points.empty:
        out.append((f"Frontier: {qa.metric} vs {UNIT}", frontier_table(qa), "main"))
    out.extend(cost_sections(rep.cost))
    out.append(("Scenarios", scenario_display(rep), "main"))
    bad = problem_windows(rep)
    if not bad.empty:
        out.append(("Windows not used (failed or missing data)", bad, "main"))
    shared = shared_windows(rep)
    if not shared.empty and rep.meta["energy_basis"] == "attributed":
        out.append(("Windows shared with other processes, or not attributed", shared, "main"))
    if qa.excluded:
        out.append(("Left out of the quality analysis", pd.DataFrame(excluded(qa)), "main"))
    out.extend(prediction_sections(rep))
    if rep.warnings:
        out.append(("Notes", "\n".join(f"- {note_text(w)}" for w in rep.warnings), "notes"))
    return out


def render_table(rep: AdvisorReport) -> str:
    parts = []
    for title, body, _ in _sections(rep):
        parts.append(f"== {title} ==")
        parts.append(text_table(body) if isinstance(body, pd.DataFrame) else body)
        parts.append("")
    return "\n".join(parts)


def render_markdown(rep: AdvisorReport) -> str:
    parts = []
    for i, (title, body, _) in enumerate(_sections(rep)):
        parts.append(("# " if i == 0 else "## ") + title)
        parts.append("")
        if isinstance(body, pd.DataFrame):
            parts.append(markdown_table(body))
        else:
            parts.append(
                "\n".join(
                    line if line.startswith("- ") else line + "  " for line in body.splitlines()
                )
            )
        parts.append("")
    return "\n".join(parts)


# -- JSON ---------------------------------------------------------------------------------------


def render_json(rep: AdvisorReport) -> str:
    return json.dumps(report_dict(rep), indent=2, sort_keys=False, allow_nan=False)


def render_csv(rep: AdvisorReport, table: str = "scenarios") -> str:
    df: Any
    if table == "scenarios":
        df = rep.scenarios
    elif table == "windows":
        df = rep.windows
    elif table == "breakdown":
        df = rep.breakdown
    elif table == "families":
        # One row per family: the JSON fields without the nested points.
        df = pd.DataFrame(
            [
                {k: v for k, v in family_json(f).items() if not isinstance(v, list)}
                for f in rep.quality.families
            ]
        )
    elif table == "frontier":
        df = rep.quality.points
    elif table == "cost":
        df = pd.DataFrame([f.to_json() for f in rep.cost.families] if rep.cost else [])
    else:
        block = rep.prediction.get("power") if isinstance(rep.prediction, dict) else None
        key = "predictions" if table == "predictions" else "measured_vs_predicted"
        df = block.get(key) if block else None
        if not isinstance(df, pd.DataFrame):
            df = pd.DataFrame()
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


# -- HTML ---------------------------------------------------------------------------------------


def _figures(rep: AdvisorReport, named: Sequence[tuple[str, Any]]) -> list[page.Figure]:
    """The plots that have something to draw, each with its title."""
    out = []
    for title, fn in named:
        svg = fn(rep)
        if svg:
            out.append(page.figure(title, svg))
    return out


def render_html(rep: AdvisorReport) -> str:
    """Read top-down: the recommendation, the frontier and ranking plots, the tables, power
    over time, then the prediction sections collapsed (templates/report.html)."""
    plots = importlib.import_module(".plots", __package__)
    plots_cost = importlib.import_module(".plots_cost", __package__)
    all_sections = _sections(rep)
    main = [s for s in all_sections if s[2] == "main"]
    top = _figures(
        rep,
        (
            ("Energy vs quality: the frontier", plots.frontier_plot),
            ("Efficiency ranking", plots.ranking_plot),
        ),
    )
    top += [page.figure(title, svg) for title, svg in plots_cost.figures(rep.cost)]
    prediction = [s for s in all_sections if s[2] == "prediction"]
    prediction_svg = plots.prediction_plot(rep) if prediction else ""
    context = {
        "css": page.CSS,
        "head": page.section(main[0][0], main[0][1]),
        "recommendation": page.section(main[1][0], main[1][1]),
        "top_figures": top,
        # What was measured and how (runs, receiver, quality basis, power sources), then tables.
        "tables": page.sections(main[2:]),
        "time_figures": _figures(
            rep,
            (
                ("Power over time", plots.timeline_plot),
                ("Power over time per scenario", plots.scenario_panels),
            ),
        ),
        "prediction": page.sections(prediction),
        "prediction_figure": page.figure("Prediction curve", prediction_svg)
        if prediction_svg
        else None,
        "notes": page.sections(s for s in all_sections if s[2] == "notes"),
    }
    return page.render_page("report.html", context)


def render(rep: AdvisorReport, fmt: str, csv_table: str = "scenarios") -> str:
    if fmt == "table":
        return render_table(rep)
    if fmt == "markdown":
        return render_markdown(rep)
    if fmt == "csv":
        return render_csv(rep, csv_table)
    if fmt == "json":
        return render_json(rep)
    if fmt == "html":
        return render_html(rep)
    raise ValueError(f"unknown format {fmt!r}")
