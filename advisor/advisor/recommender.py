"""TranscodingRecommender: windows → Prometheus data → energy, scores, ranking, prediction."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ffmpeg_runner.contract import INFO_METRIC, WindowRecord

from .analysis import (
    SCORE_DIRECTIONS,
    LadderResult,
    add_scores,
    aggregate_scenarios,
    assign_baselines,
    power_timeline,
    rank_ladders,
    window_energy_table,
)
from .attribution import (
    BASIS_TEXT,
    attribute,
    basis_score,
    basis_warnings,
    check_basis,
    describe_score,
    require_accounting,
    resolve_basis,
)
from .cost import TitleCost, TitleCostRequest, title_cost
from .cost_text import summary_line as cost_summary_line
from .errors import AdvisorConfigError, AdvisorError, InsufficientDataError
from .hosts import HOST_INFO_METRIC, compare_hosts, host_facts
from .predict import PowerPredictor, measured_vs_predicted, stream_predictions
from .prom import PrometheusAPI, Series, name_selector
from .quality import QualityAnalysis, QualityTarget, analyze_quality, parse_metric, parse_target
from .search import SearchAnalysis, analyze_search
from .sources import (
    DATA_METRICS,
    Selection,
    drop_repeated_counter_values,
    instances_of,
    select_entities,
)
from .windows import (
    WINDOW_METRICS,
    RunInfo,
    discover_windows,
    load_manifests,
)

log = logging.getLogger(__name__)
REPORT_SCHEMA_VERSION = 1
EDGE_MARGIN_S = 5.0
# A client stalled by the load it measures (seen: up to 3 s when two encoders start in Docker on
# 2 cores) must not drop a whole window; longer holes are outages, not stalls.
DEFAULT_MAX_EDGE_GAP_S = 5.0
# Held-out error above which predictions are withheld: a model that misses unmeasured
# configurations by a quarter says less than the measured table next to it.
MAX_USEFUL_MAPE_PCT = 25.0


@dataclass
class AdvisorReport:
    meta: dict[str, Any]
    windows: pd.DataFrame
    breakdown: pd.DataFrame
    scenarios: pd.DataFrame
    ladders: list[LadderResult]
    best_overall: dict[str, Any] | None
    prediction: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    timeline: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None = None
    predictor: PowerPredictor | None = None
    summary: str = ""
    quality: QualityAnalysis = field(default_factory=lambda: QualityAnalysis(measured=False))
    cost: TitleCost | None = None  # with a TitleCostRequest: encode + delivery per family
    search: SearchAnalysis | None = None  # the runs' target-quality searches, if any


def _one_sentence(target: str, reason: str, what: str) -> str:
    name = "Power" if target == "mean_power_w" else "Energy-per-frame"
    return f"{name} prediction withheld: {reason}; {what}."


def _what_to_run(predictor: PowerPredictor) -> str:
    if predictor.advice_:
        return "for example, " + predictor.advice_[0]
    return (
        "measure more configurations (other stream counts with ffmpeg-runner multi --count, "
        "resolutions or bitrates) with 3 repeats each"
    )


def drop_unusable_predictions(
    pred: pd.DataFrame, model: str | None
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Rows that are not predictions, by reason:

    - ``flat``: outside the trained ranges a tree model is constant, so all its extrapolated
      rows only repeat a measured value; for other models, an extrapolated row equal to the
      same configuration's row at fewer streams;
    - ``not physical``: a prediction (or its interval's lower end) at or below zero.
    """
    if pred.empty:
        return pred, {}
    ext = pred["extrapolated"].to_numpy(dtype=bool)
    flat = ext.copy() if model == "gradient_boosting" else np.zeros(len(pred), dtype=bool)
    if model != "gradient_boosting":
        keys = ["encoder", "preset", "ladder", "bitrate"]
        for _, group in pred.groupby(keys, sort=False, dropna=False):
            g = group.sort_values("streams")
            vals = g["predicted"].to_numpy(dtype=float)
            for k, idx in enumerate(g.index):
                pos = pred.index.get_loc(idx)
                if ext[pos] and k and np.isclose(vals[k], vals[:k], rtol=1e-9, atol=0).any():
                    flat[pos] = True
    negative = ~flat & (pred["lower"].to_numpy(dtype=float) <= 0)
    counts = {"flat": int(flat.sum()), "not physical": int(negative.sum())}
    return pred[~(flat | negative)].reset_index(drop=True), {k: v for k, v in counts.items() if v}


@dataclass
class HostComparison:
    """``advisor report --compare-hosts``: every host analysed alone, then compared."""

    facts: dict[str, dict[str, str]]
    table: pd.DataFrame  # one row per (scenario, ladder, host), ranked within the scenario
    verdicts: list[dict[str, Any]]
    reports: dict[str, AdvisorReport]
    queries: int
    energy_basis: str = "gross"  # every host's, the same
    rank_column: str = "pixels_per_joule"  # --rank-by on that basis

    def summary(self, rank_by: str) -> str:
        if not self.verdicts:
            return (
                "No scenario ran on two or more hosts: nothing to compare. Run the same batch "
                "on each node (one runner Job per node) and pass all the manifests."
            )
        lines = []
        for v in self.verdicts:
            t = self.table
            best = t[
                (t["scenario"] == v["scenario"])
                & (t["ladder"] == v["ladder"])
                & (t["host"] == v["best_host"])
            ].iloc[0]
            lines.append(
                f"{v['scenario']}: least energy on {best['host_description']} "
                f"({rank_by} = {_fmt(best[f'{rank_by}_mean'])} ± {_fmt(best[f'{rank_by}_ci95'])}, "
                f"{describe_score(rank_by)}). {v['verdict']}"
            )
        lines.append(f"Energy basis: {self.energy_basis} ({BASIS_TEXT[self.energy_basis]}).")
        return "\n".join(lines)


def _predict_block(
    windows: pd.DataFrame, target: str, seed: int
) -> tuple[dict[str, Any], PowerPredictor | None]:
    data = PowerPredictor.frame_from_windows(windows)
    valid = data[np.isfinite(data[target].to_numpy(dtype=float))] if len(data) else data
    if len(valid) and valid["streams"].nunique() == 1:
        # The table predicts 1-12 streams: with one measured stream count that is all
        # extrapolation, whatever the held-out error on the measured count says.
        n = int(valid["streams"].iloc[0])
        return {
            "status": "insufficient",
            "target": target,
            "message": _one_sentence(
                target,
                f"every configuration ran {n} stream(s), so how power grows with streams "
                "cannot be learned",
                "run a few configurations with ffmpeg-runner multi --count 2 and --count 4",
            ),
        }, None
    predictor = PowerPredictor(target=target, seed=seed)
    try:
        predictor.fit(data)
    except InsufficientDataError as exc:
        reason = str(exc).split(": ", 1)[-1]
        return {
            "status": "insufficient",
            "target": target,
            "message": _one_sentence(target, "too few configurations to learn from", reason),
        }, None
    assert predictor.cv_results_ is not None and predictor.residual_quantiles_ is not None
    mape = float(predictor.mape_ or 0.0)
    if mape > MAX_USEFUL_MAPE_PCT:
        return {
            "status": "withheld",
            "target": target,
            "model": predictor.model_name_,
            "heldout_mape_pct": mape,
            "limit_pct": MAX_USEFUL_MAPE_PCT,
            "message": _one_sentence(
                target,
                f"the best model ({predictor.model_name_}) misses configurations it was not "
                f"trained on by {mape:.0f} % on average (held-out MAPE over "
                f"{predictor.n_groups_} configurations, limit {MAX_USEFUL_MAPE_PCT:.0f} %)",
                _what_to_run(predictor),
            ),
        }, None
    predictions, dropped = drop_unusable_predictions(
        stream_predictions(predictor, data), predictor.model_name_
    )
    block = {
        "status": "ok",
        "target": target,
        "model": predictor.model_name_,
        "heldout_mape_pct": predictor.mape_,
        "cv_method": f"GroupKFold by scenario ({predictor.n_groups_} configurations, "
        f"{predictor.n_rows_} windows)",
        "cv": predictor.cv_results_,
        "interval": {
            "level": predictor.interval,
            "relative_quantiles": list(predictor.residual_quantiles_),
        },
        "predictions": predictions,
        "omitted_predictions": dropped,
        "measured_vs_predicted": measured_vs_predicted(predictor),
        "advice": list(predictor.advice_),
    }
    return block, predictor


class TranscodingRecommender:
    """Rank FFmpeg configurations by measured energy efficiency; predict power.

    >>> rec = TranscodingRecommender("http://localhost:9090")
    >>> ranking = rec.analyze_and_rank(["results/run.json"])
    >>> rec.get_best_configuration()["scenario"]
    """

    def __init__(
        self,
        prometheus_url: str | None = None,
        *,
        api: PrometheusAPI | None = None,
        allow_estimated: bool = False,
        query_mode: str = "raw",
        step_s: float | None = None,
        matchers: Sequence[str] = (),
        instance: str | None = None,
        rank_by: str = "pixels_per_joule",
        alpha: float = 0.05,
        max_gap_s: float | None = None,
        max_edge_gap_s: float = DEFAULT_MAX_EDGE_GAP_S,
        predict: bool = True,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        target_quality: QualityTarget | str | None = None,
        quality_metric: str | None = None,
        energy_basis: str | None = None,
        title_cost: TitleCostRequest | None = None,
    ) -> None:
        if api is None:
            if not prometheus_url:
                raise AdvisorConfigError(
                    "no Prometheus URL: pass --prometheus-url (e.g. http://localhost:9090) "
                    "or set ADVISOR_PROMETHEUS_URL"
                )
            api = PrometheusAPI(prometheus_url)
        if rank_by not in SCORE_DIRECTIONS:
            raise AdvisorConfigError(
                f"--rank-by {rank_by!r} is not a score; choose from {', '.join(SCORE_DIRECTIONS)}"
            )
        if not max_edge_gap_s >= 0:
            raise AdvisorConfigError(
                f"--max-edge-gap {max_edge_gap_s!r}: give seconds, 0 or more (0 never interpolates)"
            )
        if query_mode not in ("raw", "range"):
            raise AdvisorConfigError(f"--query-mode {query_mode!r}: use raw or range")
        if isinstance(target_quality, str):
            target_quality = parse_target(target_quality)
        self.target_quality = target_quality
        # None: attributed where every window has CPU accounting, else net, else gross
        self.energy_basis = check_basis(energy_basis)
        self.quality_metric = parse_metric(quality_metric) if quality_metric else None
        if title_cost is not None and target_quality is None:
            raise AdvisorConfigError(
                "a title cost needs a target quality: it prices each family at the target; "
                "pass target_quality, e.g. vmaf=93"
            )
        self.title_cost = title_cost
        self.api = api
        self.allow_estimated = allow_estimated
        self.query_mode = query_mode
        self.step_s = step_s
        self.matchers = list(matchers)
        self.instance = instance
        self.rank_by = rank_by
        self.alpha = alpha
        self.max_gap_s = max_gap_s
        self.max_edge_gap_s = max_edge_gap_s
        self.predict = predict
        self.seed = seed
        self.clock = clock
        self.runs: list[RunInfo] = []
        self._report: AdvisorReport | None = None

    # -- windows ---------------------------------------------------------------------------

    def _fetch(self, names: Sequence[str], start: float, end: float, step: float) -> list[Series]:
        matchers = list(self.matchers)
        if self.instance:
            matchers.append(f'instance="{self.instance}"')
        return self.api.fetch(
            name_selector(names, matchers), start, end, mode=self.query_mode, step_s=step
        )

    def load_windows(
        self,
        results: Sequence[Path | str] | None = None,
        *,
        since_s: float | None = None,
        run_id: str | None = None,
    ) -> list[WindowRecord]:
        """From manifests, or discovered from ``ffmpeg_scenario_info`` over the last since_s."""
        if results:
            self.runs, windows = load_manifests(Path(p) for p in results)
            if run_id:
                windows = [w for w in windows if w.run_id == run_id]
            return windows
        if since_s is None:
            raise AdvisorConfigError("pass --results manifest.json or --since 2h")
        end = self.clock()
        # One selector for the info, progress, quality and achieved-bitrate series.
        series = self._fetch(WINDOW_METRICS, end - since_s, end, self.step_s or 0.1)
        windows = discover_windows(series, run_id=run_id)
        # The runner's instance label names the measured host (clients default to the hostname).
        hosts = {w.run_id: w.instance for w in windows}
        self.runs = [
            RunInfo(r, "discovered", hosts.get(r, ""), None, "prometheus")
            for r in sorted({w.run_id for w in windows})
        ]
        if not windows:
            raise AdvisorError(
                f"no {INFO_METRIC} windows in the last {since_s:.0f} s at {self.api.url}; run "
                "ffmpeg-runner against this receiver, widen --since, or pass --results"
            )
        return windows

    # -- analysis --------------------------------------------------------------------------

    def _sample_interval(self) -> float:
        for r in self.runs:
            if r.sample_interval_s:
                return r.sample_interval_s
        return 0.1

    def _resolve_instance(self, series: list[Series], warnings: list[str]) -> list[Series]:
        instances = instances_of(series)
        if self.instance or len(instances) <= 1:
            return series
        hosts = {r.hostname for r in self.runs if r.hostname}
        chosen = sorted(hosts & set(instances))
        if len(chosen) == 1:
            warnings.append(
                f"power series from {len(instances)} instances; using {chosen[0]!r} (the run's "
                "host); pass --instance to choose another"
            )
            keep = chosen[0]
            return [
                s
                for s in series
                if s.labels.get("instance", keep) == keep or s.name not in DATA_METRICS
            ]
        raise AdvisorConfigError(
            f"power series come from several instances {instances}; adding them would mix "
            "machines: pass --instance NAME (the host that ran ffmpeg-runner), or "
            "--compare-hosts to rank each scenario across the hosts"
        )

    def analyze(
        self, windows: Sequence[WindowRecord], *, series: Sequence[Series] | None = None
    ) -> AdvisorReport:
        """The report for these windows; ``series`` skips the fetch (already queried)."""
        t0 = time.perf_counter()
        warnings: list[str] = []
        windows = sorted(windows, key=lambda w: (w.start_s, w.scenario, w.phase))
        if not windows:
            raise AdvisorError("no windows to analyse; the manifest lists none")
        require_accounting(windows, self.energy_basis)  # before any query
        interval = self.step_s or self._sample_interval()
        max_gap = self.max_gap_s or max(2.0, 10 * interval)
        span_start = min(w.start_s for w in windows) - EDGE_MARGIN_S
        span_end = max(w.end_s for w in windows) + EDGE_MARGIN_S
        if series is None:
            series = self._fetch_data(span_start, span_end, interval)
        series = self._resolve_instance(list(series), warnings)
        sel: Selection = select_entities(series, allow_estimated=self.allow_estimated)
        warnings.extend(sel.notes)
        wdf, breakdown = window_energy_table(
            windows, sel, max_gap_s=max_gap, max_edge_gap_s=self.max_edge_gap_s
        )
        wdf, idle = attribute(add_scores(assign_baselines(wdf)))
        basis, basis_notes = resolve_basis(wdf, self.energy_basis)
        rank_column = basis_score(self.rank_by, basis)
        for _, row in wdf.iterrows():
            if row["status"] == "missing":
                warnings.append(f"window {row['window_id']}: power data missing ({row['problem']})")
            elif row["status"] in ("failed", "interrupted") and row["phase"] == "transcode":
                warnings.append(f"window {row['window_id']}: {row['status']} ({row['problem']})")
            if row["energy_error_j"] > 0:  # NaN (missing energy) compares False
                warnings.append(
                    f"window {row['window_id']}: an edge fell inside a gap in the energy "
                    f"counter and was interpolated; energy {row['energy_j']:.4g} J is within "
                    f"±{row['energy_error_j']:.3g} J "
                    f"({100 * row['energy_error_j'] / row['energy_j']:.0f} %) in the worst case"
                )
        # Labels that break the runner's contract: named with the form they should have.
        warnings.extend(f"window {w.window_id}: {w.problem}" for w in windows if w.problem)
        no_base = wdf[(wdf["phase"] == "transcode") & wdf["baseline_window"].isna()]
        if len(no_base):
            warnings.append(
                f"{len(no_base)} transcode window(s) have no baseline: net energy unknown; "
                "run ffmpeg-runner with --with-baseline"
            )
        warnings.extend(basis_notes)
        if basis == "attributed":
            warnings.extend(i.describe() for i in idle)
        warnings.extend(basis_warnings(wdf, basis))
        scenarios = aggregate_scenarios(wdf, rank_column)
        ladders = rank_ladders(wdf, scenarios, rank_column, self.alpha)
        quality = analyze_quality(wdf, self.target_quality, self.quality_metric, basis)
        warnings.extend(quality.notes)
        search = analyze_search(self.runs, wdf, self.target_quality, quality, basis)
        if search is not None:
            warnings.extend(search.notes)
        best_overall = self._best(scenarios, rank_column)
        prediction: dict[str, Any] = {"status": "skipped"}
        predictor = None
        if self.predict:
            power_block, predictor = _predict_block(wdf, "mean_power_w", self.seed)
            epf_block, _ = _predict_block(wdf, "energy_per_frame_j", self.seed)
            prediction = {"power": power_block, "energy_per_frame": epf_block}
        timeline = power_timeline(sel, span_start, span_end, max_gap)
        meta = {
            "schema_version": REPORT_SCHEMA_VERSION,
            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock())),
            "prometheus_url": self.api.url,
            "query_mode": self.query_mode,
            "step_s": interval,
            "max_gap_s": max_gap,
            "max_edge_gap_s": self.max_edge_gap_s,
            "queries": self.api.query_count,
            "span": {"start_s": span_start, "end_s": span_end},
            "runs": [
                {"run_id": r.run_id, "status": r.status, "hostname": r.hostname, "from": r.source}
                for r in self.runs
            ],
            # the column ranked by: --rank-by on the energy basis
            "rank_by": rank_column,
            "rank_by_text": describe_score(rank_column),
            "energy_basis": basis,
            "energy_basis_text": BASIS_TEXT[basis],
            "attribution": [i.to_json() for i in idle],
            "target_quality": self.target_quality.to_json() if self.target_quality else None,
            "alpha": self.alpha,
            "allow_estimated": self.allow_estimated,
            "power_sources": [
                {
                    "domain": e.domain,
                    "entity": e.key,
                    "source": e.source,
                    "instance": e.instance,
                    "added_to_total": e.additive,
                }
                for e in sel.entities
            ],
            "excluded_estimated": sorted(set(sel.excluded_estimated)),
            "analysis_seconds": None,
        }
        report = AdvisorReport(
            meta,
            wdf,
            breakdown,
            scenarios,
            ladders,
            best_overall,
            prediction,
            warnings,
            timeline,
            predictor,
            quality=quality,
            search=search,
        )
        report.summary = self._summary(report)
        if self.title_cost is not None:
            report.cost = title_cost(quality, wdf, self.title_cost)
            report.summary += "\n" + cost_summary_line(report.cost)
        meta["analysis_seconds"] = round(time.perf_counter() - t0, 3)
        self._report = report
        return report

    def _fetch_data(self, start: float, end: float, step: float) -> list[Series]:
        series = self._fetch((*DATA_METRICS, HOST_INFO_METRIC), start, end, step)
        if self.query_mode == "range":
            series = [drop_repeated_counter_values(s) for s in series]
        return series

    def compare_hosts(self, windows: Sequence[WindowRecord]) -> HostComparison:
        """Each host's windows against its own series, then each scenario ranked across hosts.

        One fetch for all hosts: the query count does not grow with the number of hosts.
        """
        if not windows:
            raise AdvisorError("no windows to compare; the manifests list none")
        unknown = sorted({w.window_id for w in windows if not w.instance})
        if unknown:
            raise AdvisorError(
                f"{len(unknown)} window(s) name no host (e.g. {unknown[0]}): --compare-hosts "
                "needs the runner's instance in the manifest or the info series; re-run "
                "ffmpeg-runner with INSTANCE set to the node name"
            )
        interval = self.step_s or self._sample_interval()
        start = min(w.start_s for w in windows) - EDGE_MARGIN_S
        end = max(w.end_s for w in windows) + EDGE_MARGIN_S
        require_accounting(windows, self.energy_basis)
        series = self._fetch_data(start, end, interval)
        facts = host_facts(series)
        hosts = sorted({w.instance for w in windows})
        reports = self._host_reports(windows, series, hosts, self.energy_basis)
        bases = {rep.meta["energy_basis"] for rep in reports.values()}
        if len(bases) > 1:
            # One basis for every host, or the comparison would be wrong: the one all can give.
            common = next(b for b in ("gross", "net", "attributed") if b in bases)
            reports = self._host_reports(windows, series, hosts, common)
            for rep in reports.values():
                rep.warnings.append(
                    f"energy basis {common} for every host: the hosts' data allow "
                    f"{', '.join(sorted(bases))}"
                )
        basis = next(iter(reports.values())).meta["energy_basis"]
        rank_column = basis_score(self.rank_by, basis)
        frames = [rep.windows.assign(host=host) for host, rep in reports.items()]
        table, verdicts = compare_hosts(
            pd.concat(frames, ignore_index=True),
            rank_by=rank_column,
            alpha=self.alpha,
            facts=facts,
            energy_column=basis_score("energy_j", basis),
        )
        return HostComparison(
            facts, table, verdicts, reports, self.api.query_count, basis, rank_column
        )

    def _host_reports(
        self,
        windows: Sequence[WindowRecord],
        series: Sequence[Series],
        hosts: Sequence[str],
        basis: str | None,
    ) -> dict[str, AdvisorReport]:
        reports: dict[str, AdvisorReport] = {}
        for host in hosts:
            sub = self._for_host(host)
            sub.energy_basis = basis
            mine = [
                s for s in series if s.name not in DATA_METRICS or s.labels.get("instance") == host
            ]
            reports[host] = sub.analyze([w for w in windows if w.instance == host], series=mine)
        return reports

    def _for_host(self, host: str) -> TranscodingRecommender:
        """This recommender's settings (and its API client) for one host's windows."""
        sub = copy.copy(self)
        sub.instance = host
        sub.predict = False  # per-host models from a handful of windows each would mislead
        sub.runs = [r for r in self.runs if r.hostname == host]
        sub._report = None
        return sub

    def _best(self, scenarios: pd.DataFrame, rank_column: str) -> dict[str, Any] | None:
        col = f"{rank_column}_mean"
        if scenarios.empty or not np.isfinite(scenarios[col]).any():
            return None
        valid = scenarios[np.isfinite(scenarios[col])]
        higher = SCORE_DIRECTIONS[rank_column]
        row = valid.loc[valid[col].idxmax() if higher else valid[col].idxmin()]
        return {str(k): v for k, v in row.items()}

    # -- the public API (analyze_and_rank, get_best_configuration, get_top_n, summary) --------

    def analyze_and_rank(
        self,
        results: Sequence[Path | str] | None = None,
        *,
        since_s: float | None = None,
        run_id: str | None = None,
        windows: Sequence[WindowRecord] | None = None,
    ) -> pd.DataFrame:
        """Scenario table ranked within each ladder (rank 1 = most efficient)."""
        if windows is None:
            windows = self.load_windows(results, since_s=since_s, run_id=run_id)
        return self.analyze(windows).scenarios

    @property
    def report(self) -> AdvisorReport:
        if self._report is None:
            raise AdvisorError("nothing analysed yet; call analyze_and_rank() first")
        return self._report

    def get_best_configuration(self, ladder: str | None = None) -> dict[str, Any] | None:
        """Best scenario overall, or within one ladder."""
        rep = self.report
        if ladder is None:
            return rep.best_overall
        top = self.get_top_n(1, ladder)
        return None if top.empty else {str(k): v for k, v in top.iloc[0].items()}

    def get_top_n(self, n: int = 5, ladder: str | None = None) -> pd.DataFrame:
        """The n best ranked scenarios (of one ladder, or across all by the ranking score)."""
        sc = self.report.scenarios
        if sc.empty:
            return sc
        rank_column = self.report.meta["rank_by"]
        col = f"{rank_column}_mean"
        sc = sc[np.isfinite(sc[col])]
        if ladder is not None:
            top = sc[sc["ladder"] == ladder].sort_values("rank").head(n)
        else:
            asc = not SCORE_DIRECTIONS[rank_column]
            top = sc.sort_values(col, ascending=asc, kind="stable").head(n)
        return pd.DataFrame(top.reset_index(drop=True))

    def get_recommendation_summary(self) -> str:
        return self.report.summary

    def _summary(self, rep: AdvisorReport) -> str:
        # Quality first: it answers the question users bring (least energy at a quality); a
        # search measured it at the target itself, so it comes before the interpolated answer,
        # and without quality in the windows it is the only quality there is.
        searched = rep.search.lines if rep.search else []
        lines: list[str] = [*searched]
        if rep.quality.measured or not searched:
            lines += rep.quality.lines
        m = rep.meta["rank_by"]
        if rep.quality.measured or searched:
            # The efficiency verdicts below favour fast presets; say what they leave out.
            lines.append(
                f"By energy efficiency alone (picture quality not considered), ranked by "
                f"{rep.meta['rank_by_text']}:"
            )
        else:
            lines.append(f"Ranked by {rep.meta['rank_by_text']}.")
        if rep.best_overall:
            b = rep.best_overall
            lines.append(
                f"Best overall: {b['scenario']} (ladder {b['ladder']}): {m} = "
                f"{_fmt(b[f'{m}_mean'])} ± {_fmt(b[f'{m}_ci95'])} (95% CI, {b['n_ok']} repeats), "
                f"mean power {_fmt(b['mean_power_w_mean'])} W [{b['power_source']}]."
            )
        else:
            lines.append(_nothing_ranked(rep.windows))
        for lad in rep.ladders:
            if lad.test and lad.test.get("verdict"):
                lines.append(f"Ladder {lad.ladder}: best {lad.winner}. {lad.test['verdict']}")
            if lad.unranked:
                lines.append(
                    f"Ladder {lad.ladder}: not ranked (no valid data): " + ", ".join(lad.unranked)
                )
        pw = rep.prediction.get("power") if isinstance(rep.prediction, dict) else None
        if pw and pw.get("status") == "ok":
            lines.append(
                f"Power model: {pw['model']}, held-out MAPE {pw['heldout_mape_pct']:.1f}% "
                f"({pw['cv_method']}); 90% intervals from out-of-fold residuals."
            )
        elif pw:
            lines.append(str(pw.get("message")))
        return "\n".join(lines)


def _nothing_ranked(windows: pd.DataFrame, named: int = 3) -> str:
    """The summary's line when no configuration could be ranked: which transcode windows had a
    problem, and what it was (the first ``named`` of them; the notes list every one)."""
    tr = windows[windows["phase"] == "transcode"]
    why = [f"{r.window_id}: {r.problem}" for r in tr.itertuples() if isinstance(r.problem, str)]
    if not why:
        return "No configuration could be ranked (no complete transcode window)."
    more = f"; and {len(why) - named} more (see the notes)" if len(why) > named else ""
    return (
        f"No configuration could be ranked: {len(why)} of {len(tr)} transcode window(s) have a "
        "problem. " + "; ".join(why[:named]) + more + "."
    )


def _fmt(x: Any) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not np.isfinite(v):
        return "n/a"
    if v != 0 and abs(v) >= 1e5:
        return f"{v:.4g}"
    if v != 0 and abs(v) < 1:
        # Three significant digits: joules per frame are often 0.01-0.1, where two decimals
        # would print 0.01 for both ends of an interval.
        return f"{v:.3g}"
    return f"{v:.2f}"
