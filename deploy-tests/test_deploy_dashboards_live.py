"""Dashboards against data pushed by the real client framework, not a hand-made generator.

A real ``Pipeline`` runs the real gpu-nvml-client over its fake NVML (no GPU needed) and pushes
into a real Prometheus, so the self-metrics and GPU series carry exactly the names and labels
the clients produce. Then every client-health panel and every GPU panel of the power overview
must return series.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from base_monitoring_client.config import ClientConfig
from base_monitoring_client.pipeline import Pipeline
from wattpush_testing import PrometheusProcess, wait_until

GRAFANA = Path(__file__).resolve().parent.parent / "grafana"
INSTANCE = "wp-live-host"
RUN_S = 4.0


def targets(name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    dash = json.loads((GRAFANA / "dashboards" / name).read_text())
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target


def substitute(expr: str, variables: dict[str, str], range_s: int) -> str:
    values = {
        "__rate_interval": "1m",
        "__interval": "1s",
        "__range": f"{range_s}s",
        **variables,
    }
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(f"${{{name}}}", values[name]).replace(f"${name}", values[name])
    assert "$" not in expr, expr
    return expr


def gpu_only(expr: str) -> bool:
    names = set(re.findall(r"\b(?:cpu|gpu|container|docker_engine|host)_[a-z_]+", expr))
    return bool(names) and all(n.startswith("gpu_") for n in names)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrometheusProcess, float]]:
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed (apt-get install prometheus, or `make setup`)")
    gpu_client = pytest.importorskip("gpu_nvml_client.client")
    gpu_testing = pytest.importorskip("wattpush_testing.nvml")
    nvml = gpu_testing.FakeNvml(
        [
            gpu_testing.FakeGpu(
                uuid="GPU-00000000-0000-4000-8000-000000000001",
                gpu_percent=60.0,
                encoder_percent=40.0,
                encoder_sessions=2,
                temperature=55.0,
            )
        ]
    )
    with PrometheusProcess(tmp_path_factory.mktemp("prom-live")) as prom:
        config = ClientConfig(
            remote_write_url=prom.write_url,
            sample_interval_s=0.1,
            push_interval_s=0.5,
            instance=INSTANCE,
        )
        pipeline = Pipeline(gpu_client.GpuNvmlClient(nvml), config)
        pipeline.start()
        try:
            deadline = time.monotonic() + RUN_S
            while time.monotonic() < deadline:
                nvml.run(0, 0.1, 45.0)
                time.sleep(0.1)
            assert pipeline.flush(timeout=10)
        finally:
            pipeline.stop()
        end = time.time()
        assert wait_until(lambda: prom.query("monitoring_client_info", at=end), timeout=10)
        yield prom, end


def run_query(prom: PrometheusProcess, target: dict[str, Any], expr: str, end: float) -> Any:
    if target.get("instant"):
        return prom.query(expr, at=end)
    return prom.query_range(expr, end - RUN_S - 5, end, 1)


def finite(result: list[dict[str, Any]]) -> bool:
    for series in result:
        for _, value in [series["value"]] if "value" in series else series["values"]:
            if math.isfinite(float(value)):
                return True
    return False


@pytest.mark.integration
@pytest.mark.slow
def test_client_health_panels_on_real_self_metrics(live: tuple[PrometheusProcess, float]) -> None:
    prom, end = live
    variables = {"job": "gpu-nvml-client", "instance": INSTANCE}
    empty = []
    for title, target in targets("client-health.json"):
        expr = substitute(target["expr"], variables, int(RUN_S) + 30)
        result = run_query(prom, target, expr, end)
        if not result or not finite(result):
            empty.append(f"{title}/{target['refId']}")
    # A healthy run drops nothing and survives no error, and the labelled counters only exist
    # after a first event: those graphs are empty here (the generator test fills them), the
    # totals show 0.
    assert not prom.query("monitoring_client_samples_dropped_total", at=end)
    assert sorted(empty) == [
        "Dropped and retried samples/A",
        "Errors survived, spool entries set aside/A",
        "Errors survived, spool entries set aside/B",
    ]


@pytest.mark.integration
@pytest.mark.slow
def test_gpu_panels_on_the_real_gpu_client(live: tuple[PrometheusProcess, float]) -> None:
    prom, end = live
    checked, empty = 0, []
    for title, target in targets("power-overview.json"):
        if not gpu_only(target["expr"]):
            continue
        checked += 1
        expr = substitute(target["expr"], {"instance": INSTANCE}, int(RUN_S) + 30)
        result = run_query(prom, target, expr, end)
        if not result or not finite(result):
            empty.append(f"{title}/{target['refId']}: {expr}")
    assert checked >= 8
    assert not empty, "panels without data:\n" + "\n".join(empty)
