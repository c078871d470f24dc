"""TranscodingRecommender: windows → Prometheus data → energy, scores, ranking, prediction.

The report it returns is numbers and structured results (``AdvisorReport``); what it says in
words, tables and figures is the presentation layer's (``advisor.present``). Errors name the
settings as this class's parameters; the CLI says them as its flags.
"""

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
    IdlePower,
    attribute,
    basis_notes,
    basis_score,
    check_basis,
    require_accounting,
    resolve_basis,
)
from .cost import TitleCost, TitleCostRequest, title_cost
from .errors import AdvisorConfigError, AdvisorError, InsufficientDataError
from .hosts import HOST_INFO_METRIC, compare_hosts, host_facts
from .notes import Note, note
from .predict import PowerPredictor, measured_vs_predicted, stream_predictions
from .present.report import summary
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
    # what the report must tell besides its figures (advisor.present.notes says it in words)
    warnings: list[Note] = field(default_factory=list)
    timeline: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None = None
    predictor: PowerPredictor | None = None
    quality: QualityAnalysis = field(default_factory=lambda: QualityAnalysis(measured=False))
    cost: TitleCost | None = None  # with a TitleCostRequest: encode + delivery per family
    search: SearchAnalysis | None = None  # the runs' target-quality searches, if any
    idle: list[IdlePower] = field(default_factory=list)  # each run's idle power (attribution)


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


def _predict_block(
    windows: pd.DataFrame, target: str, seed: int
) -> tuple[dict[str, Any], PowerPredictor | None]:
    """The prediction of ``target``: ``status`` ok with the model's results, or insufficient
    / withheld with ``why`` (a kind and its values) in place of them."""
    data = PowerPredictor.frame_from_windows(windows)
    valid = data[np.isfinite(data[target].to_numpy(dtype=float))] if len(data) else data
    if len(valid) and valid["streams"].nunique() == 1:
        # The table predicts 1-12 streams: with one measured stream count that is all
        # extrapolation, whatever the held-out error on the measured count says.
        why = {"kind": "one_stream_count", "streams": int(valid["streams"].iloc[0])}
        return {"status": "insufficient", "target": target, "why": why}, None
    predictor = PowerPredictor(target=target, seed=seed)
    try:
        predictor.fit(data)
    except InsufficientDataError as exc:
        why = {"kind": "too_few", "detail": str(exc).split(": ", 1)[-1]}
        return {"status": "insufficient", "target": target, "why": why}, None
    assert predictor.cv_results_ is not None and predictor.residual_quantiles_ is not None
    mape = float(predictor.mape_ or 0.0)
    if mape > MAX_USEFUL_MAPE_PCT:
        return {
            "status": "withheld",
            "target": target,
            "model": predictor.model_name_,
            "heldout_mape_pct": mape,
            "limit_pct": MAX_USEFUL_MAPE_PCT,
            "why": {
                "kind": "withheld",
                "configurations": predictor.n_groups_,
                "advice": predictor.advice_[0] if predictor.advice_ else None,
            },
        }, None
    predictions, dropped = drop_unusable_predictions(
        stream_predictions(predictor, data), predictor.model_name_
    )
    block = {
        "status": "ok",
        "target": target,
        "model": predictor.model_name_,
        "heldout_mape_pct": predictor.mape_,
        "cv_configurations": predictor.n_groups_,  # GroupKFold by scenario
        "cv_windows": predictor.n_rows_,
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
                    "no Prometheus URL: pass prometheus_url (e.g. http://localhost:9090) "
                    "or set ADVISOR_PROMETHEUS_URL",
                    settings=("prometheus_url",),
                )
            api = PrometheusAPI(prometheus_url)
        if rank_by not in SCORE_DIRECTIONS:
            raise AdvisorConfigError(
                f"rank_by {rank_by!r} is not a score; choose from {', '.join(SCORE_DIRECTIONS)}",
                settings=("rank_by",),
            )
        if not max_edge_gap_s >= 0:
            raise AdvisorConfigError(
                f"max_edge_gap_s {max_edge_gap_s!r}: give seconds, 0 or more (0 never "
                "interpolates)",
                settings=("max_edge_gap_s",),
            )
        if query_mode not in ("raw", "range"):
            raise AdvisorConfigError(
                f"query_mode {query_mode!r}: use raw or range", settings=("query_mode",)
            )
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
            raise AdvisorConfigError(
                "pass results manifest.json or since_s 2h", settings=("results", "since_s")
            )
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
                "ffmpeg-runner against this receiver, widen since_s, or pass results",
                settings=("since_s", "results"),
            )
        return windows

    # -- analysis --------------------------------------------------------------------------

    def _sample_interval(self) -> float:
        for r in self.runs:
            if r.sample_interval_s:
                return r.sample_interval_s
        return 0.1

    def _resolve_instance(self, series: list[Series], warnings: list[Note]) -> list[Series]:
        instances = instances_of(series)
        if self.instance or len(instances) <= 1:
            return series
        hosts = {r.hostname for r in self.runs if r.hostname}
        chosen = sorted(hosts & set(instances))
        if len(chosen) == 1:
            warnings.append(note("instance_chosen", instances=len(instances), chosen=chosen[0]))
            keep = chosen[0]
            return [
                s
                for s in series
                if s.labels.get("instance", keep) == keep or s.name not in DATA_METRICS
            ]
        raise AdvisorConfigError(
            f"power series come from several instances {instances}; adding them would mix "
            "machines: pass instance NAME (the host that ran ffmpeg-runner), or "
            "compare_hosts to rank each scenario across the hosts",
            settings=("instance", "compare_hosts"),
        )

    def analyze(
        self, windows: Sequence[WindowRecord], *, series: Sequence[Series] | None = None
    ) -> AdvisorReport:
        """The report for these windows; ``series`` skips the fetch (already queried)."""
        t0 = time.perf_counter()
        warnings: list[Note] = []
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
        basis, basis_why = resolve_basis(wdf, self.energy_basis)
        rank_column = basis_score(self.rank_by, basis)
        for _, row in wdf.iterrows():
            wid = row["window_id"]
            if row["status"] == "missing":
                warnings.append(note("window_missing", window=wid, problem=row["problem"]))
            elif row["status"] in ("failed", "interrupted") and row["phase"] == "transcode":
                warnings.append(
                    note("window_failed", window=wid, status=row["status"], problem=row["problem"])
                )
            if row["energy_error_j"] > 0:  # NaN (missing energy) compares False
                warnings.append(
                    note("edge_interpolated", window=wid, energy_j=row["energy_j"],
                         error_j=row["energy_error_j"])
                )  # fmt: skip
        # Labels that break the runner's contract: named with the form they should have.
        warnings.extend(
            note("window_label", window=w.window_id, problem=w.problem)
            for w in windows
            if w.problem
        )
        no_base = wdf[(wdf["phase"] == "transcode") & wdf["baseline_window"].isna()]
        if len(no_base):
            warnings.append(note("no_baseline", count=len(no_base)))
        warnings.extend(basis_why)
        if basis == "attributed":
            warnings.extend(note("idle_power", idle=i) for i in idle)
        warnings.extend(basis_notes(wdf, basis))
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
            # the column ranked by: rank_by on the energy basis
            "rank_by": rank_column,
            "energy_basis": basis,
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
            idle=idle,
        )
        if self.title_cost is not None:
            report.cost = title_cost(quality, wdf, self.title_cost)
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
                f"{len(unknown)} window(s) name no host (e.g. {unknown[0]}): compare_hosts "
                "needs the runner's instance in the manifest or the info series; re-run "
                "ffmpeg-runner with INSTANCE set to the node name",
                settings=("compare_hosts",),
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
                rep.warnings.append(note("common_basis", basis=common, bases=sorted(bases)))
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
        """The recommendation in words, as the report's first section says it."""
        return summary(self.report)
