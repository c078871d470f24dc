"""Golden files: the report of fixed synthetic experiments in every format, compared with the
files checked in under ``golden/``, so that a change of the code that writes it cannot change
what a user reads unnoticed.

The inputs are the advisor's synthetic generator at a fixed start time, analysed from its
generated series (no receiver), with a fixed clock; what still depends on the run (the
analysis' own duration, the temporary directory of the manifests) is normalised. Text formats
are compared byte for byte; JSON and CSV compare their numbers to 9 significant digits, so a
different BLAS or CPU that moves the last bits of a float does not fail them.

A deliberate change of the output: run with ``ADVISOR_UPDATE_GOLDEN=1`` to rewrite the files,
read the diff, and commit it on its own with the reason.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from advisor.cli import main
from advisor.cost import TitleCostRequest
from advisor.cost_config import parse_cost_config
from advisor.present.quality import compare_doc
from advisor.prom import PrometheusAPI, Series
from advisor.quality import compare
from advisor.recommender import AdvisorReport, HostComparison, TranscodingRecommender
from advisor.render import CSV_TABLES, render
from advisor.render_hosts import render_host_comparison
from advisor.synthetic import Experiment, ladder, noisy, scaling_law_power
from ffmpeg_runner.contract import Probe, Rung, SearchRecord

from .conftest import CPU_IDLE_W, GPU_IDLE_W, L_HD, L_SD, add_quality_run, build_attrib

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("ADVISOR_UPDATE_GOLDEN") == "1"
START_MS = 1_700_000_000_000
NOW_S = 1_700_003_600.0  # the report's clock: generated_at
URL = "http://prometheus.golden:9090"
PRICED = {
    "currency": "EUR",
    "electricity_price_per_kwh": 0.25,
    "compute_price_per_vcpu_hour": 0.04,
    "encode_vcpus": 8,
    "egress_price_per_gb": 0.02,
    "carbon_intensity_g_per_kwh": 300,
}
SIGNIFICANT = 9


class SeriesAPI(PrometheusAPI):
    """The query API answering every fetch with the experiment's series (one query each)."""

    def __init__(self, series: Sequence[Series]) -> None:
        super().__init__(URL)
        self._series = list(series)
        self._queries = 0

    @property
    def query_count(self) -> int:
        return self._queries

    def fetch(
        self, selector: str, start: float, end: float, *, mode: str = "raw", step_s: float = 0.1
    ) -> list[Series]:
        self._queries += 1
        return [s for s in self._series if start <= s.t[-1] and s.t[0] <= end]


def as_series(*exps: Experiment) -> list[Series]:
    """The series as the receiver stores them: with the labels the push adds."""
    return [
        Series({"job": "synthetic", "instance": exp.instance, "__name__": name, **labels},
               t / 1000.0, v)
        for exp in exps
        for name, labels, t, v in exp.series()
    ]  # fmt: skip


@dataclass
class Case:
    report: AdvisorReport | HostComparison
    results: Path  # the manifests' directory, shown in meta.runs; normalised


def recommender(series: Sequence[Series], **kw: Any) -> TranscodingRecommender:
    kw.setdefault("predict", False)
    return TranscodingRecommender(api=SeriesAPI(series), clock=lambda: NOW_S, **kw)


def analysed(tmp: Path, exps: Sequence[Experiment], **kw: Any) -> Case:
    paths = [p for exp in exps for p in exp.write_manifests(tmp / "results")]
    rec = recommender(as_series(*exps), **kw)
    report = rec.analyze(rec.load_windows(paths))
    report.meta["analysis_seconds"] = 0.0
    return Case(report, tmp / "results")


# -- the experiments ------------------------------------------------------------------------------


def quality_experiment() -> Experiment:
    """conftest's four quality families (+ a two-rung ladder left out), with a GPU."""
    exp = Experiment(start_ms=START_MS, gpu=True, idle_gpu_w=GPU_IDLE_W, idle_cpu_w=CPU_IDLE_W)
    exp.idle(2)
    add_quality_run(exp)
    exp.idle(2)
    return exp


def ranking_experiment() -> Experiment:
    """Two ladders (one significant, one not), a failed repeat, a counter gap over a window's
    end, a counter reset, and the scaling law the prediction learns."""
    exp = Experiment(start_ms=START_MS, gpu=True, idle_gpu_w=GPU_IDLE_W, idle_cpu_w=CPU_IDLE_W)
    exp.idle(2)
    plan = [
        ("fast", L_SD, [100.0, 101.0, 99.0]),
        ("slow", L_SD, [120.0, 121.0, 119.0]),
        ("hd-a", L_HD, [200.0, 210.0, 190.0]),
        ("hd-b", L_HD, [201.0, 211.0, 191.0]),
    ]
    for name, lad, powers in plan:
        for rep, p in enumerate(powers):
            common = {"run_id": "rank", "scenario": name, "repeat": rep, "rungs": lad}
            exp.add(5, phase="baseline", cpu_w=CPU_IDLE_W, **common)
            exp.idle(1)
            w = exp.add(10, phase="transcode", cpu_w=p, gpu_w=30.0, engine_rate=0.2,
                        host_rate=1.0, **common)  # fmt: skip
            if name == "fast" and rep == 1:
                exp.counter_resets_ms.append(w.record.start_ms + 4000 + 50)
            exp.idle(1)
    failed = exp.add(10, run_id="rank", scenario="hd-b", phase="transcode", repeat=3,
                     cpu_w=500.0, gpu_w=30.0, rungs=L_HD, status="failed")  # fmt: skip
    exp.cpu_gaps.append((failed.record.start_ms - 800, failed.record.start_ms + 1700))
    exp.idle(1)
    gap = exp.add(10, run_id="rank", scenario="hd-a", phase="transcode", repeat=3, cpu_w=205.0,
                  gpu_w=30.0, rungs=L_HD)  # fmt: skip
    exp.cpu_gaps.append((gap.record.start_ms + 6000, gap.record.start_ms + 13000))
    exp.idle(2)
    rng = np.random.default_rng(7)
    for enc in ("libx264", "libx265"):
        for s in (1, 2, 3, 4, 6):
            for lad in (ladder((1280, 720, "2M")), ladder((640, 360, "800k"))):
                px = s * sum(r.pixels for r in lad) * 30
                br = 2e6 if lad[0].height == 720 else 8e5
                for rep in range(3):
                    p = noisy(rng, scaling_law_power(enc, s, px, br), 0.05)
                    exp.add(4, run_id="law", scenario=f"{enc}-{s}x-{lad[0].height}p",
                            phase="transcode", repeat=rep, cpu_w=p - GPU_IDLE_W,
                            gpu_w=GPU_IDLE_W, rungs=lad, encoder=enc, preset="medium",
                            streams=s)  # fmt: skip
                    exp.idle(0.5)
    exp.idle(2)
    return exp


def search_record(preset: str, crf: float | None, score: float | None, encoder: str,
                  status: str = "found") -> SearchRecord:  # fmt: skip
    probes = (Probe(25.5, 68.1, 291_000.0, 2.5, 26.9), Probe(12.5, 88.1, 2_191_000.0, 3.6, 14.0))
    chosen = None if crf is None else Probe(crf, score, 630_000.0, 1.8, 12.0)
    return SearchRecord(
        family=f"{encoder}:{preset}@640x360/crf",
        encoder=encoder,
        preset=preset,
        resolution="640x360",
        rate_control="crf",
        target_metric="vmaf",
        target_value=80.0,
        status=status,
        probes=probes if chosen is None else (*probes, chosen),
        chosen=chosen,
        scenario=None if crf is None else f"search-{encoder}-{preset}-360p-crf{crf:g}",
        message="crf within ±0.5" if crf is not None else "best vmaf 60.57 at crf 0",
    )


def search_case(tmp: Path) -> Case:
    exp = Experiment(start_ms=START_MS, idle_cpu_w=CPU_IDLE_W, gpu=False)
    exp.idle(5)
    exp.add(4, run_id="s", scenario="baseline", phase="baseline", repeat=0, cpu_w=CPU_IDLE_W)
    records = [search_record("ultrafast", None, None, "libx264", status="unreachable")]
    for preset, crf, score, watts, encoder in (
        ("veryfast", 20.5, 79.9, 45.0, "libx264"),
        ("medium", 21.0, 80.1, 60.0, "libx264"),
        ("fast", 24.0, 80.3, 80.0, "libx265"),
    ):
        rec = search_record(preset, crf, score, encoder)
        records.append(rec)
        rung = Rung("360p", 640, 360, 0, "crf", crf)
        for repeat in range(2):
            exp.idle(1)
            exp.add(4, run_id="s", scenario=rec.scenario, phase="transcode", repeat=repeat,
                    encoder=encoder, preset=preset, rungs=[rung],
                    cpu_w=watts + repeat)  # fmt: skip
    exp.idle(5)
    manifest = exp.run_manifest("s")
    manifest.search = records
    (tmp / "results").mkdir(parents=True)
    path = tmp / "results" / "s.json"
    path.write_text(json.dumps(manifest.to_json()))
    rec = recommender(as_series(exp), target_quality="vmaf=80")
    report = rec.analyze(rec.load_windows([path]))
    report.meta["analysis_seconds"] = 0.0
    return Case(report, tmp / "results")


HOSTS = {
    "node-a": (90.0, {"cpu_model": "Intel Xeon Gold 6338", "cores": "64", "virtualized": "false"}),
    "node-b": (60.0, {"cpu_model": "AMD EPYC 9654", "cores": "96", "virtualized": "false"}),
    "node-c": (120.0, {"cpu_model": "Intel Xeon E5-2690", "cores": "8", "virtualized": "true",
                       "hypervisor": "kvm"}),
}  # fmt: skip


def hosts_case(tmp: Path) -> Case:
    exps = []
    for i, (host, (watts, facts)) in enumerate(HOSTS.items()):
        exp = Experiment(start_ms=START_MS + i * 1000, instance=host, idle_cpu_w=20.0,
                         host_info={"instance": host, "job": "cpu-rapl-client", **facts},
                         with_estimated_shadow=False)  # fmt: skip
        exp.idle(2)
        for rep in range(3):
            common = {"run_id": f"fleet-{host}", "scenario": "x264-720p", "repeat": rep}
            exp.add(4, phase="baseline", cpu_w=20.0, rungs=ladder((1280, 720, "2M")), **common)
            exp.idle(1)
            exp.add(8, phase="transcode", cpu_w=watts + rep, rungs=ladder((1280, 720, "2M")),
                    encoder="libx264", preset="fast", **common)  # fmt: skip
            exp.idle(1)
        if host == "node-a":
            exp.add(8, run_id="fleet-node-a", scenario="x265-720p", phase="transcode", repeat=0,
                    cpu_w=95.0, rungs=ladder((1280, 720, "2M")), encoder="libx265")  # fmt: skip
        exp.idle(2)
        exps.append(exp)
    paths = [p for exp in exps for p in exp.write_manifests(tmp / "results")]
    rec = recommender(as_series(*exps), rank_by="energy_j")
    comparison = rec.compare_hosts(rec.load_windows(paths))
    for rep in comparison.reports.values():
        rep.meta["analysis_seconds"] = 0.0
    return Case(comparison, tmp / "results")


def cost_request() -> TitleCostRequest:
    config = parse_cost_config(PRICED, "cost.json", lambda: None)
    return TitleCostRequest(90.0, 1e6, config)


CASES: dict[str, Callable[[Path], Case]] = {
    "quality": lambda tmp: analysed(
        tmp, [quality_experiment()], target_quality="vmaf=93", title_cost=cost_request()
    ),
    "frontier": lambda tmp: analysed(tmp, [quality_experiment()]),
    "ranking": lambda tmp: analysed(tmp, [ranking_experiment()], predict=True),
    "attrib": lambda tmp: analysed(tmp, [build_attrib(START_MS)], target_quality="vmaf=93"),
    "search": search_case,
    "hosts": hosts_case,
}
# (case, format, csv table): what is compared
OUTPUTS: list[tuple[str, str, str]] = [
    *((c, f, "") for c in ("quality", "ranking") for f in ("table", "markdown", "json", "html")),
    *(("quality", "csv", t) for t in CSV_TABLES),
    *(("ranking", "csv", t) for t in ("scenarios", "predictions", "measured_vs_predicted")),
    *((c, f, "") for c in ("attrib", "search") for f in ("table", "json", "html")),
    ("frontier", "table", ""),
    ("attrib", "markdown", ""),
    ("search", "markdown", ""),
    *(("hosts", f, "") for f in ("table", "markdown", "json", "csv", "html")),
]


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Case]:
    """Each case built on first use: a single test (-k) builds only what it needs."""
    built: dict[str, Case] = {}

    def get(name: str) -> Case:
        if name not in built:
            built[name] = CASES[name](tmp_path_factory.mktemp(f"golden-{name}"))
        return built[name]

    return get


def output(case: Case, fmt: str, table: str) -> str:
    if isinstance(case.report, HostComparison):
        text = render_host_comparison(case.report, fmt)
    else:
        text = render(case.report, fmt, table or "scenarios")
    return text.replace(str(case.results), "<results>")


# -- comparison -----------------------------------------------------------------------------------


def rounded(value: Any) -> Any:
    """Numbers to SIGNIFICANT digits, recursively; everything else as it is."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return float(f"{value:.{SIGNIFICANT}g}") if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


def csv_rows(text: str) -> list[list[Any]]:
    return [
        [rounded(float(cell)) if _NUMBER.match(cell) else cell for cell in row]
        for row in csv.reader(io.StringIO(text))
    ]


def assert_same(kind: str, actual: str, expected: str, name: str) -> None:
    if kind == "json":
        assert rounded(json.loads(actual)) == rounded(json.loads(expected)), name
    elif kind == "csv":
        assert csv_rows(actual) == csv_rows(expected), name
    else:
        # Line by line first: pytest's diff of one long string says little.
        assert actual.splitlines() == expected.splitlines(), name
        assert actual == expected, name


def check(name: str, kind: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"{path} missing: run with ADVISOR_UPDATE_GOLDEN=1 and commit it"
    assert_same(kind, actual, path.read_text(encoding="utf-8"), name)


EXTENSIONS = {"table": "txt", "markdown": "md", "json": "json", "csv": "csv", "html": "html"}


@pytest.mark.parametrize(("case", "fmt", "table"), OUTPUTS)
def test_report_output_is_unchanged(
    cases: Callable[[str], Case], case: str, fmt: str, table: str
) -> None:
    suffix = f"-{table}" if table else ""
    check(f"{case}{suffix}.{EXTENSIONS[fmt]}", fmt, output(cases(case), fmt, table))


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_compare_output_is_unchanged(cases: Callable[[str], Case], fmt: str) -> None:
    report = cases("quality").report
    assert isinstance(report, AdvisorReport)
    pairs = [
        ("libx264/medium/640x360", "libx264/veryfast/640x360"),  # overlapping curves
        ("libx264/ultrafast/640x360", "libx265/fast/640x360"),  # touching at one quality
        ("libx265/fast/640x360", "libx264/ultrafast/640x360"),
    ]
    docs = [compare_doc(report.quality, *compare(report.quality, a, b)) for a, b in pairs]
    if fmt == "json":
        text = json.dumps(docs, indent=2, allow_nan=False)
    else:
        text = "\n".join(str(d["summary"]) for d in docs) + "\n"
    check(f"compare.{EXTENSIONS[fmt]}", fmt, text)


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv", "json"])
def test_predict_output_is_unchanged(
    cases: Callable[[str], Case], fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = cases("ranking").report
    assert isinstance(report, AdvisorReport) and report.predictor is not None
    report.predictor.save(tmp_path / "model")
    argv = ["predict", "--model", str(tmp_path / "model"), "--streams", "1,2,4",
            "--resolution", "1280x720", "--encoder", "libx264", "--preset", "medium",
            "--format", fmt]  # fmt: skip
    assert main(argv, env={}) == 0
    check(f"predict.{EXTENSIONS[fmt]}", fmt, capsys.readouterr().out)
