"""Per-window energy, baselines, scores, repeat statistics and rankings (pandas DataFrames)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from ffmpeg_runner.contract import QUALITY_METRICS, WindowRecord
from scipy import stats

from .energy import FloatArray, counter_cumulative, resample_power, window_integrals
from .prom import Series
from .sources import Selection

# metric -> higher is better
SCORE_DIRECTIONS: dict[str, bool] = {
    "pixels_per_joule": True,
    "net_pixels_per_joule": True,
    "attributed_pixels_per_joule": True,
    "throughput_per_watt": True,
    "energy_per_output_minute_j": False,
    "net_energy_per_output_minute_j": False,
    "attributed_energy_per_output_minute_j": False,
    "energy_per_frame_j": False,
    "energy_j": False,
    "net_energy_j": False,
    "attributed_energy_j": False,
    "mean_power_w": False,
}
AGG_METRICS = (
    "mean_power_w",
    "cpu_power_w",
    "gpu_power_w",
    "baseline_power_w",
    "net_power_w",
    "energy_j",
    "net_energy_j",
    "attributed_energy_j",
    "pixels_per_joule",
    "net_pixels_per_joule",
    "attributed_pixels_per_joule",
    "throughput_per_watt",
    "energy_per_output_minute_j",
    "net_energy_per_output_minute_j",
    "attributed_energy_per_output_minute_j",
    "energy_per_frame_j",
    *(f"quality_{m}" for m in QUALITY_METRICS),
    "achieved_bitrate_bps",
    "engine_cpu_s",
    "engine_cpu_share",
    "transcode_cpu_s",
    "host_busy_cpu_s",
    "background_cpu_share",
    "duration_s",
)


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _sum_or_nan(parts: list[FloatArray], n: int) -> FloatArray:
    if not parts:
        return np.full(n, np.nan)
    # NaN propagates: one missing part = missing total
    return np.asarray(np.sum(np.vstack(parts), axis=0), dtype=np.float64)


def _accounting_columns(w: WindowRecord) -> dict[str, float]:
    """The runner's CPU accounting of a window (NaN without it: manifest schema 2 or older)."""
    acc = w.accounting
    if acc is None:
        return dict.fromkeys(
            (
                "transcode_cpu_s",
                "host_busy_cpu_s",
                "host_total_cpu_s",
                "cgroup_cpu_s",
                "background_cpu_share",
            ),
            math.nan,
        )
    return {
        "transcode_cpu_s": acc.transcode_cpu_s,
        "host_busy_cpu_s": acc.host_busy_cpu_s,
        "host_total_cpu_s": acc.host_total_cpu_s,
        "cgroup_cpu_s": _nan(acc.cgroup_cpu_s),
        "background_cpu_share": _nan(acc.background_cpu_share),
    }


def window_energy_table(
    windows: Sequence[WindowRecord],
    sel: Selection,
    *,
    max_gap_s: float,
    max_edge_gap_s: float = 0.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Windows DataFrame (energy, power, sources, problems) and the per-entity breakdown.

    ``energy_error_j`` is the worst-case error of windows whose edges were interpolated inside
    a counter gap (0 when every edge had samples around it); the worst cases of the parts add.
    """
    n = len(windows)
    starts = np.array([w.start_s for w in windows], dtype=np.float64)
    ends = np.array([w.end_s for w in windows], dtype=np.float64)
    durations = ends - starts
    problems: list[list[str]] = [[] for _ in range(n)]
    domain_parts: dict[str, list[FloatArray]] = {"cpu": [], "gpu": []}
    domain_sources: dict[str, list[str]] = {"cpu": [], "gpu": []}
    breakdown_rows: list[dict[str, Any]] = []
    edge_error = np.zeros(n)
    for ent in sel.entities:
        energy, method, reasons, error = ent.integrate(starts, ends, max_gap_s, max_edge_gap_s)
        if ent.additive:
            edge_error = edge_error + error
            domain_parts[ent.domain].append(energy)
            domain_sources[ent.domain].append(f"{ent.key}[{ent.source}]")
            for i, r in enumerate(reasons):
                if r is not None:
                    problems[i].append(r)
        for i, w in enumerate(windows):
            breakdown_rows.append(
                {
                    "window_id": w.window_id,
                    "scenario": w.scenario,
                    "phase": w.phase,
                    "repeat": w.repeat,
                    "domain": ent.domain,
                    "entity": ent.key,
                    "instance": ent.instance,
                    "source": ent.source,
                    "method": method[i],
                    "additive": ent.additive,
                    "energy_j": energy[i],
                    "energy_error_j": error[i],
                    "mean_power_w": energy[i] / durations[i],
                    "problem": reasons[i],
                }
            )
    cpu_e = _sum_or_nan(domain_parts["cpu"], n)
    gpu_e = _sum_or_nan(domain_parts["gpu"], n)
    if not domain_parts["cpu"]:
        for p in problems:
            p.append(
                "no CPU power series"
                + (" (only estimated; pass --allow-estimated)" if sel.excluded_estimated else "")
            )
    total = cpu_e + (gpu_e if domain_parts["gpu"] else 0.0)

    def counter_parts(counters: Sequence[Series]) -> list[FloatArray]:
        return [
            window_integrals(
                s.t,
                counter_cumulative(s.v),
                starts,
                ends,
                max_gap_s=max_gap_s,
                raw_counter=s.v,
                max_edge_gap_s=max_edge_gap_s,
            ).values
            for s in counters
        ]

    engine_parts = counter_parts(sel.engine)
    host_parts = counter_parts(sel.host_busy)
    engine = _sum_or_nan(engine_parts, n)
    host_busy = _sum_or_nan(host_parts, n)

    source_text = "; ".join(
        f"{d}={'+'.join(domain_sources[d])}" for d in ("cpu", "gpu") if domain_sources[d]
    )
    rows = []
    for i, w in enumerate(windows):
        status = w.status
        if status == "ok" and not np.isfinite(total[i]):
            status = "missing"
        rows.append(
            {
                "window_id": w.window_id,
                "run_id": w.run_id,
                "scenario": w.scenario,
                "phase": w.phase,
                "repeat": w.repeat,
                "encoder": w.encoder,
                "preset": w.preset,
                "bitrate": w.bitrate,
                # the target, or with constant quality (crf, cq) the achieved bitrate
                "bitrate_bps": w.top_bitrate_bps,
                "rate_control": w.rate_control,
                "quality_value": _nan(w.quality_value),
                "streams": w.streams,
                "ladder": w.ladder,
                "fps": _nan(w.fps),
                "start_s": w.start_s,
                "end_s": w.end_s,
                "duration_s": durations[i],
                "status": status,
                "problem": "; ".join(dict.fromkeys([*problems[i], *filter(None, [w.problem])]))
                or (w.error or None),
                "power_source": source_text,
                "cpu_energy_j": cpu_e[i],
                "gpu_energy_j": gpu_e[i] if domain_parts["gpu"] else np.nan,
                "energy_j": total[i],
                "energy_error_j": edge_error[i] if np.isfinite(total[i]) else np.nan,
                "cpu_power_w": cpu_e[i] / durations[i],
                "gpu_power_w": gpu_e[i] / durations[i] if domain_parts["gpu"] else np.nan,
                "mean_power_w": total[i] / durations[i],
                "engine_cpu_s": engine[i],
                "engine_cpu_share": engine[i] / host_busy[i]
                if host_parts and host_busy[i] > 0
                else np.nan,
                **_accounting_columns(w),
                "frames_total": _nan(w.frames_total),
                "output_pixels": _nan(w.output_pixels),
                "rungs": len(w.rungs),
                "nominal_pixels_per_s": w.nominal_pixels_per_s,
                "origin": w.origin,
                "realtime": w.realtime,
                # One output per stream: the only case where quality and energy pair up.
                "resolution": w.rungs[0].resolution if len(w.rungs) == 1 else "",
                **{f"quality_{m}": w.rung_quality(m) for m in QUALITY_METRICS},
                "achieved_bitrate_bps": w.rung_achieved_bitrate(),
                "quality": w.quality_by_rung() or None,
                "quality_error": w.quality_error,
            }
        )
    df = pd.DataFrame(rows)
    return df, pd.DataFrame(breakdown_rows)


def assign_baselines(df: pd.DataFrame) -> pd.DataFrame:
    """Baseline power per transcode window: its scenario's own baseline (same repeat, else the
    nearest in time), else the nearest baseline of the same run, else missing."""
    df = df.copy()
    mids = ((df["start_s"] + df["end_s"]) / 2).to_numpy()
    is_base = ((df["phase"] == "baseline") & (df["status"] == "ok")).to_numpy()
    run = df["run_id"].to_numpy()
    scen = df["scenario"].to_numpy()
    rep = df["repeat"].to_numpy()
    power = df["mean_power_w"].to_numpy(dtype=float)
    wid = df["window_id"].to_numpy()
    by_run: dict[Any, list[int]] = {}
    for i in np.nonzero(is_base)[0]:
        by_run.setdefault(run[i], []).append(int(i))
    chosen_id: list[Any] = [None] * len(df)
    chosen_p = np.full(len(df), np.nan)
    for i in np.nonzero((df["phase"] == "transcode").to_numpy())[0]:
        cands = by_run.get(run[i], [])
        own = [j for j in cands if scen[j] == scen[i]]
        same = [j for j in own if rep[j] == rep[i]]
        pick = same or own or cands
        if not pick:
            continue
        j = min(pick, key=lambda k: abs(mids[k] - mids[i]))
        chosen_id[i] = wid[j]
        chosen_p[i] = power[j]
    df["baseline_window"] = chosen_id
    df["baseline_power_w"] = chosen_p
    return df


def add_scores(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["net_power_w"] = df["mean_power_w"] - df["baseline_power_w"]
    # Net energy from mean powers x this window's duration: baseline windows may be shorter.
    df["net_energy_j"] = df["net_power_w"] * df["duration_s"]
    energy = df["energy_j"].where(df["energy_j"] > 0)
    net = df["net_energy_j"].where(df["net_energy_j"] > 0)
    df["pixels_per_joule"] = df["output_pixels"] / energy
    df["net_pixels_per_joule"] = df["output_pixels"] / net
    df["throughput_per_watt"] = (df["frames_total"] / df["duration_s"]) / df["mean_power_w"].where(
        df["mean_power_w"] > 0
    )
    # Minutes of ladder video delivered (all rungs of a stream count as one minute of output).
    minutes = df["frames_total"] / (df["fps"] * df["rungs"].where(df["rungs"] > 0)) / 60.0
    df["output_minutes"] = minutes
    df["energy_per_output_minute_j"] = df["energy_j"] / minutes.where(minutes > 0)
    df["net_energy_per_output_minute_j"] = net / minutes.where(minutes > 0)
    df["energy_per_frame_j"] = df["energy_j"] / df["frames_total"].where(df["frames_total"] > 0)
    measured_rate = df["output_pixels"] / df["duration_s"]
    df["pixels_per_s"] = df["nominal_pixels_per_s"].fillna(measured_rate)
    return df


@dataclass(frozen=True)
class WelchTest:
    """Welch's t-test of the winner's per-repeat scores against the runner-up's.

    ``significant`` is None when it cannot be tested (fewer than 2 valid repeats on a side);
    with zero spread on both sides no t is computed (``zero_spread``)."""

    winner: str
    runner_up: str
    metric: str
    alpha: float
    n_winner: int
    n_runner_up: int
    relative_pct: float = math.nan  # (winner - runner-up) / |runner-up|, in %
    t: float | None = None
    p_value: float | None = None
    significant: bool | None = None
    zero_spread: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "test": "welch_t",
            "metric": self.metric,
            "alpha": self.alpha,
            "n_winner": self.n_winner,
            "n_runner_up": self.n_runner_up,
            "t": self.t,
            "p_value": self.p_value,
            "significant": self.significant,
        }


def welch_test(
    names: tuple[str, str], a: FloatArray, b: FloatArray, metric: str, alpha: float
) -> WelchTest:
    """Welch's t-test (scipy ttest_ind, equal_var=False) of winner vs runner-up."""
    a = a[np.isfinite(a)]
    b = b[np.isfinite(b)]
    test = WelchTest(names[0], names[1], metric, alpha, int(a.size), int(b.size))
    if a.size < 2 or b.size < 2:
        return test
    ma, mb = float(a.mean()), float(b.mean())
    rel = (ma - mb) / abs(mb) * 100 if mb else float("inf")
    if float(a.var(ddof=1)) == 0 and float(b.var(ddof=1)) == 0:
        return dataclasses.replace(
            test,
            relative_pct=rel,
            significant=ma != mb,
            p_value=0.0 if ma != mb else 1.0,
            zero_spread=True,
        )
    res = stats.ttest_ind(a, b, equal_var=False)
    t, p = float(res.statistic), float(res.pvalue)
    return dataclasses.replace(test, relative_pct=rel, t=t, p_value=p, significant=bool(p < alpha))


def aggregate_scenarios(df: pd.DataFrame, rank_by: str) -> pd.DataFrame:
    """One row per (scenario, ladder) over its transcode repeats: mean ± 95 % CI per metric."""
    tr = df[df["phase"] == "transcode"]
    if tr.empty:
        return pd.DataFrame()
    keys = ["scenario", "ladder"]
    g_all = tr.groupby(keys, sort=True, dropna=False)
    firsts = ("encoder", "preset", "bitrate", "streams", "power_source", "resolution", "realtime")
    out = g_all.agg(**{c: (c, "first") for c in firsts if c in tr})
    status = tr["status"]
    out["n_ok"] = (status == "ok").groupby([tr[k] for k in keys]).sum()
    out["n_failed"] = status.isin(["failed", "interrupted"]).groupby([tr[k] for k in keys]).sum()
    out["n_missing"] = (status == "missing").groupby([tr[k] for k in keys]).sum()
    ok = tr[status == "ok"]
    metrics = [m for m in AGG_METRICS if m in ok]
    # Vectorised mean ± Student-t 95 % half-width; non-finite values do not count.
    vals = ok[metrics].astype(float).where(np.isfinite(ok[metrics].astype(float)))
    grouped = vals.groupby([ok[k] for k in keys], sort=True, dropna=False)
    mean = grouped.mean()
    std = grouped.std(ddof=1)
    count = grouped.count()
    n = count.to_numpy(dtype=float)
    tcrit = stats.t.ppf(0.975, np.maximum(n - 1, 1))
    half = pd.DataFrame(
        tcrit * std.to_numpy(dtype=float) / np.sqrt(np.maximum(n, 1)),
        index=count.index,
        columns=count.columns,
    ).where(count >= 2)
    for m in metrics:
        out[f"{m}_mean"] = mean[m].reindex(out.index)
        out[f"{m}_ci95"] = half[m].reindex(out.index)
    out = out.reset_index()
    out["streams"] = out["streams"].astype(int)
    for c in ("n_ok", "n_failed", "n_missing"):
        out[c] = out[c].fillna(0).astype(int)
    col = f"{rank_by}_mean"
    higher = SCORE_DIRECTIONS.get(rank_by, True)
    out["rank"] = np.nan
    for _, g in out.groupby("ladder", sort=False):
        valid = g[np.isfinite(g[col])]
        order = valid.sort_values(col, ascending=not higher, kind="stable").index
        out.loc[order, "rank"] = np.arange(1, len(order) + 1)
    out = out.sort_values(["ladder", "rank", "scenario"], na_position="last", kind="stable")
    return out.reset_index(drop=True)


@dataclass
class LadderResult:
    ladder: str
    ranking: list[str]
    winner: str | None
    runner_up: str | None
    test: WelchTest | None  # None with fewer than two ranked configurations
    unranked: list[str] = field(default_factory=list)


def rank_ladders(
    windows: pd.DataFrame, scenarios: pd.DataFrame, rank_by: str, alpha: float
) -> list[LadderResult]:
    out: list[LadderResult] = []
    if scenarios.empty:
        return out
    ok = windows[(windows["phase"] == "transcode") & (windows["status"] == "ok")]
    for ladder, g in scenarios.groupby("ladder", sort=True):
        ranked = g[g["rank"].notna()].sort_values("rank")
        ranking = list(ranked["scenario"])
        unranked = list(g[g["rank"].isna()]["scenario"])
        winner = ranking[0] if ranking else None
        runner = ranking[1] if len(ranking) > 1 else None
        test = None
        if winner and runner:
            vals = ok[ok["ladder"] == ladder]
            a = vals[vals["scenario"] == winner][rank_by].to_numpy(dtype=np.float64)
            b = vals[vals["scenario"] == runner][rank_by].to_numpy(dtype=np.float64)
            test = welch_test((winner, runner), a, b, rank_by, alpha)
        out.append(LadderResult(str(ladder), ranking, winner, runner, test, unranked))
    return out


def power_timeline(
    sel: Selection, start_s: float, end_s: float, max_gap_s: float, points: int = 4000
) -> tuple[FloatArray, FloatArray]:
    """Total (additive) power over the span on a regular grid, for plots; NaN in gaps."""
    step = max((end_s - start_s) / points, 0.1)
    grid = np.arange(start_s, end_s + step, step)
    total = np.zeros(max(grid.size - 1, 0))
    any_part = False
    for ent in sel.entities:
        if not ent.additive:
            continue
        cum = ent.cumulative()
        if cum is None:
            continue
        t, c, _ = cum
        total = total + resample_power(t, c, grid, max_gap_s)
        any_part = True
    if not any_part:
        total = np.full_like(total, np.nan)
    return (grid[1:] + grid[:-1]) / 2, total


def finite_or_none(x: Any) -> Any:
    if isinstance(x, float | np.floating) and not math.isfinite(float(x)):
        return None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x
