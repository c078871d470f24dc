"""Grafana provisioning and dashboards.

The integration test starts a real Prometheus, backfills 20 minutes of realistic data for every
metric the dashboards use (the clients' exact metric and label names, pushed by remote write with
the project's encoder), then runs every panel target and every template-variable query of every
dashboard and asserts each returns series with finite values.
"""

from __future__ import annotations

import json
import math
import random
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from base_monitoring_client import encoder
from base_monitoring_client.hostinfo import HOST_INFO_METRIC, HostInfo
from base_monitoring_client.sample import Sample
from base_monitoring_client.selfmetrics import SelfMetrics
from wattpush_testing import PrometheusProcess

GRAFANA = Path(__file__).resolve().parent.parent / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
DATASOURCE_UID = "wattpush-prometheus"

INSTANCE = "wp-test-host"
HOST = HostInfo("Test CPU 9000", 2, virtualized=True, hypervisor="kvm")
RUN_ID = "20261123T101500Z-3f9a"
SPAN_S = 20 * 60
STEP_S = 1
LADDER = "1280x720@2M+640x360@800k"
RUNGS = (("720p", 1280 * 720), ("360p", 640 * 360))
# Mean scores each preset's outputs get (psnr dB, ssim, vmaf), pushed once at the window end.
QUALITY = {"fast": (40.0, 0.97, 93.0), "veryfast": (38.0, 0.95, 88.0)}
# CPU seconds per second while encoding: ffmpeg's, and the host's busy time (user 1.6 + system
# 0.1, as host_cpu_seconds_total below); the rest of the busy time is other processes'.
FFMPEG_CPU_RATE = 1.5
BUSY_CPU_RATE = 1.7

# Metric names by producer: the clients, the runner and the base client's self-metrics.
DATA_METRICS = {
    "cpu_energy_joules_total",
    "cpu_power_watts",
    "gpu_energy_joules_total",
    "gpu_power_watts",
    "gpu_power_limit_watts",
    "gpu_utilization_ratio",
    "gpu_memory_utilization_ratio",
    "gpu_encoder_utilization_ratio",
    "gpu_decoder_utilization_ratio",
    "gpu_encoder_sessions",
    "gpu_memory_used_bytes",
    "gpu_temperature_celsius",
    "gpu_sm_clock_hertz",
    "container_cpu_seconds_total",
    "container_memory_bytes",
    "container_network_receive_bytes_total",
    "container_network_transmit_bytes_total",
    "docker_engine_cpu_seconds_total",
    "docker_engine_memory_bytes",
    "host_cpu_seconds_total",
    "ffmpeg_scenario_info",
    "ffmpeg_frames_total",
    "ffmpeg_fps",
    "ffmpeg_speed_ratio",
    "ffmpeg_output_quality",
    "ffmpeg_output_bitrate_bits_per_second",
    "ffmpeg_window_cpu_seconds",
}
SELF_METRICS = {fam.name for fam in SelfMetrics.FAMILIES}
METRIC_PREFIXES = (
    "cpu_",
    "gpu_",
    "container_",
    "docker_engine_",
    "host_",
    "ffmpeg_",
    "monitoring_client_",
    "process_",
    "wattpush_",
)
TOKEN_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def iter_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def iter_targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


def metric_names(expr: str) -> set[str]:
    # Label values and legend text are inside quotes: strip them before tokenising.
    bare = re.sub(r'"[^"]*"', '""', expr)
    # Grouping lists and label matchers name labels (cpu_model, gpu_model), not metrics.
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare)
    bare = re.sub(r"\{[^}]*\}", "{}", bare)
    return {t for t in TOKEN_RE.findall(bare) if t.startswith(METRIC_PREFIXES)}


def substitute(expr: str, variables: dict[str, str], range_s: int) -> str:
    """Grafana's variable interpolation, as far as these dashboards use it."""
    builtins = {
        "__rate_interval": "1m",
        "__interval": "15s",
        "__range": f"{range_s}s",
        "__range_s": str(range_s),
    }
    values = {**builtins, **variables}
    for name in sorted(values, key=len, reverse=True):
        for pattern in (f"${{{name}}}", f"[[{name}]]", f"${name}"):
            expr = expr.replace(pattern, values[name])
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


# ------------------------------------------------------------------ static checks


def test_three_dashboards_with_unique_uids() -> None:
    uids = {load(p)["uid"] for p in DASHBOARDS}
    assert uids == {
        "wattpush-power-overview",
        "wattpush-scenario-comparison",
        "wattpush-client-health",
    }


def test_datasource_provisioning_matches_dashboards() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (source,) = ds["datasources"]
    assert source["uid"] == DATASOURCE_UID
    assert source["url"] == "http://prometheus:9090"
    assert source["type"] == "prometheus"
    for path in DASHBOARDS:
        dash = load(path)
        for panel, target in iter_targets(dash):
            assert panel["datasource"]["uid"] == DATASOURCE_UID, (path.name, panel["title"])
            assert target["datasource"]["uid"] == DATASOURCE_UID, (path.name, panel["title"])
        for var in dash["templating"]["list"]:
            assert var["datasource"]["uid"] == DATASOURCE_UID


def test_dashboard_provider_points_at_the_compose_mount() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/wattpush.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    compose = yaml.safe_load((GRAFANA.parent / "docker-compose.yml").read_text())
    volumes = compose["services"]["grafana"]["volumes"]
    assert any(v.startswith("./grafana/dashboards:") and v.split(":")[1] == path for v in volumes)


def test_panels_have_unique_ids_and_titles_and_fit_the_grid() -> None:
    for path in DASHBOARDS:
        dash = load(path)
        ids = [p["id"] for p in iter_panels(dash)]
        assert len(ids) == len(set(ids)), path.name
        titles = [p["title"] for p in iter_panels(dash)]
        assert len(titles) == len(set(titles)), path.name
        for panel in iter_panels(dash):
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24, (path.name, panel["title"])


def test_dashboards_use_only_contract_metrics() -> None:
    known = DATA_METRICS | SELF_METRICS
    for path in DASHBOARDS:
        for panel, target in iter_targets(load(path)):
            unknown = metric_names(target["expr"]) - known
            assert not unknown, f"{path.name} / {panel['title']}: {unknown}"


def test_client_health_covers_every_self_metric() -> None:
    used: set[str] = set()
    for _, target in iter_targets(load(GRAFANA / "dashboards/client-health.json")):
        used |= metric_names(target["expr"])
    # spool_samples duplicates spool_bytes in another unit; everything else has a panel.
    assert SELF_METRICS - {"monitoring_client_spool_samples"} <= used


def test_scenario_comparison_uses_windows_and_run_id() -> None:
    dash = load(GRAFANA / "dashboards/scenario-comparison.json")
    names = [v["name"] for v in dash["templating"]["list"]]
    assert names[0] == "run_id"
    exprs = [t["expr"] for _, t in iter_targets(dash)]
    assert all('run_id="$run_id"' in e for e in exprs)
    assert sum("ffmpeg_scenario_info" in e for e in exprs) >= 5


def test_power_overview_has_per_zone_cpu_and_gpu_power_and_energy() -> None:
    exprs = [t["expr"] for _, t in iter_targets(load(GRAFANA / "dashboards/power-overview.json"))]
    assert any("cpu_power_watts" in e and "zone" in e for e in exprs)
    assert any("cpu_energy_joules_total" in e and "zone" in e for e in exprs)
    assert any("gpu_power_watts" in e for e in exprs)
    assert any("gpu_energy_joules_total" in e for e in exprs)


# ------------------------------------------------------------------ data generator


class Series:
    """Accumulates one job's samples; strictly increasing timestamps per series."""

    def __init__(self, job: str) -> None:
        self.job = job
        self.samples: list[Sample] = []

    def add(self, name: str, labels: dict[str, str], value: float, ts_ms: int) -> None:
        self.samples.append(Sample(name, labels, value, ts_ms))


def windows(start_s: int) -> list[dict[str, Any]]:
    """Scenario windows of one run: (scenario, phase, repeat, start, end) in unix seconds."""
    spec = [
        ("x264-fast-720p", "baseline", 0, 60, 180, "fast"),
        ("x264-fast-720p", "transcode", 0, 200, 380, "fast"),
        ("x264-fast-720p", "transcode", 1, 400, 580, "fast"),
        ("x264-veryfast-720p", "baseline", 0, 600, 700, "veryfast"),
        ("x264-veryfast-720p", "transcode", 0, 720, 900, "veryfast"),
    ]
    return [
        {
            "scenario": s,
            "phase": ph,
            "repeat": rep,
            "start": start_s + a,
            "end": start_s + b,
            "preset": preset,
        }
        for s, ph, rep, a, b, preset in spec
    ]


def generate(start_s: int) -> dict[str, Series]:
    rng = random.Random(7)
    jobs = {
        j: Series(j)
        for j in ("cpu-rapl-client", "gpu-nvml-client", "docker-overhead-client", "ffmpeg-runner")
    }
    cpu, gpu, dock, ff = (jobs[j] for j in jobs)
    wins = windows(start_s)
    cpu_zones = [("package", 1.0), ("core", 0.7), ("uncore", 0.08), ("dram", 0.12), ("psys", 1.4)]
    energy = dict.fromkeys((z for z, _ in cpu_zones), 1.0e6)
    gpu_energy = 5.0e5
    host_cpu = {"user": 1000.0, "system": 300.0, "iowait": 5.0, "idle": 90000.0}
    ctr_cpu = {"ffmpeg": 0.0, "prometheus": 50.0}
    ctr_net = {"ffmpeg": [0.0, 0.0], "prometheus": [1e6, 2e6]}
    engine_cpu = {"dockerd": 30.0, "containerd": 20.0, "containerd-shim-runc-v2": 2.0}
    frames: dict[tuple[str, int, str, str], float] = {}
    self_counters: dict[tuple[str, str, str], float] = {}
    active_before: set[int] = set()

    for t in range(start_s, start_s + SPAN_S + 1, STEP_S):
        ts = t * 1000
        active = [i for i, w in enumerate(wins) if w["start"] <= t < w["end"]]
        busy = any(wins[i]["phase"] == "transcode" for i in active)
        load = 1.0 if busy else 0.1
        pkg = 12.0 + 38.0 * load + rng.uniform(-1.5, 1.5)
        for zone, share in cpu_zones:
            watts = pkg * share
            energy[zone] += watts * STEP_S
            labels = {"zone": zone, "socket": "0", "source": "rapl"}
            cpu.add("cpu_power_watts", labels, watts, ts)
            cpu.add("cpu_energy_joules_total", labels, energy[zone], ts)
        g = {"gpu": "0", "uuid": "GPU-5f2c7d1e-0000-4a1b-9c3d-000000000001", "name": "NVIDIA L4"}
        gpu_watts = 16.0 + 40.0 * load + rng.uniform(-1, 1)
        gpu_energy += gpu_watts * STEP_S
        gpu.add("gpu_power_watts", {**g, "source": "nvml_power_instant"}, gpu_watts, ts)
        gpu.add("gpu_energy_joules_total", {**g, "source": "nvml_energy_counter"}, gpu_energy, ts)
        for name, value in (
            ("gpu_power_limit_watts", 72.0),
            ("gpu_utilization_ratio", 0.05 + 0.5 * load),
            ("gpu_memory_utilization_ratio", 0.02 + 0.2 * load),
            ("gpu_encoder_utilization_ratio", 0.6 * load if busy else 0.0),
            ("gpu_decoder_utilization_ratio", 0.0),
            ("gpu_encoder_sessions", 2.0 if busy else 0.0),
            ("gpu_memory_used_bytes", 4.0e8 + 1.0e9 * load),
            ("gpu_temperature_celsius", 40.0 + 25.0 * load),
            ("gpu_sm_clock_hertz", 2.04e9 if busy else 3.0e8),
        ):
            gpu.add(name, g, value, ts)
        host_cpu["user"] += 1.6 * load * STEP_S
        host_cpu["system"] += 0.1 * STEP_S
        host_cpu["iowait"] += 0.001 * STEP_S
        host_cpu["idle"] += (2.0 - 1.7 * load) * STEP_S
        for mode, value in host_cpu.items():
            dock.add("host_cpu_seconds_total", {"mode": mode}, value, ts)
        for name, rate in (("ffmpeg", 1.5 * load), ("prometheus", 0.05)):
            ctr_cpu[name] += rate * STEP_S
            ctr_net[name][0] += 1000.0 * STEP_S
            ctr_net[name][1] += 2500.0 * STEP_S
            labels = {
                "container": f"wattpush-{name}-1",
                "image": f"wattpush/{name}:latest",
                "service": name,
            }
            dock.add("container_cpu_seconds_total", labels, ctr_cpu[name], ts)
            dock.add("container_memory_bytes", labels, 8.0e7 + 1.0e8 * load, ts)
            dock.add("container_network_receive_bytes_total", labels, ctr_net[name][0], ts)
            dock.add("container_network_transmit_bytes_total", labels, ctr_net[name][1], ts)
        for process, value in engine_cpu.items():
            engine_cpu[process] = value + 0.01 * STEP_S
            dock.add("docker_engine_cpu_seconds_total", {"process": process}, value, ts)
            dock.add("docker_engine_memory_bytes", {"process": process}, 6.0e7, ts)

        # ffmpeg-runner: window info while active, stale markers when a window ends.
        for i, w in enumerate(wins):
            info = {
                "run_id": RUN_ID,
                "scenario": w["scenario"],
                "phase": w["phase"],
                "encoder": "libx264",
                "preset": w["preset"],
                "ladder": LADDER,
                "streams": "2",
                "bitrate": "2M",
                "repeat": str(w["repeat"]),
                "fps": "30",
            }
            progress = [
                (
                    {
                        "run_id": RUN_ID,
                        "scenario": w["scenario"],
                        "repeat": str(w["repeat"]),
                        "stream": str(stream),
                        "output": rung,
                    },
                    (w["scenario"], w["repeat"], str(stream), rung),
                )
                for stream in range(2)
                for rung, _ in RUNGS
            ]
            if i in active:
                ff.add("ffmpeg_scenario_info", info, 1.0, ts)
                if w["phase"] == "transcode":
                    for labels, key in progress:
                        frames[key] = frames.get(key, 0.0) + 30.0 * STEP_S
                        ff.add("ffmpeg_frames_total", labels, frames[key], ts)
                        ff.add("ffmpeg_fps", labels, 30.0 + rng.uniform(-0.5, 0.5), ts)
                        ff.add("ffmpeg_speed_ratio", labels, 1.0 + rng.uniform(-0.02, 0.02), ts)
            elif i in active_before:
                ff.samples.append(Sample.stale("ffmpeg_scenario_info", info, ts))
                if w["phase"] == "transcode":
                    # Quality: one sample per output (and metric) at the window's end.
                    window = {"run_id": RUN_ID, "scenario": w["scenario"]}
                    window["repeat"] = str(w["repeat"])
                    end_ms = w["end"] * 1000
                    for rung in LADDER.split("+"):
                        bitrate = 1.96e6 if rung.startswith("1280") else 7.9e5
                        labels = {**window, "rung": rung}
                        ff.add("ffmpeg_output_bitrate_bits_per_second", labels, bitrate, end_ms)
                        scores = zip(("psnr", "ssim", "vmaf"), QUALITY[w["preset"]], strict=True)
                        for metric, value in scores:
                            labels = {**window, "rung": rung, "metric": metric}
                            ff.add("ffmpeg_output_quality", labels, value, end_ms)
                if w["phase"] == "transcode":
                    for labels, _ in progress:
                        for name in ("ffmpeg_frames_total", "ffmpeg_fps", "ffmpeg_speed_ratio"):
                            ff.samples.append(Sample.stale(name, labels, ts))
                # The runner's CPU accounting: one sample per scope at the window's end.
                seconds = w["end"] - w["start"]
                busy = w["phase"] == "transcode"
                accounting = {
                    "transcode": FFMPEG_CPU_RATE * seconds if busy else 0.0,
                    "host_busy": (BUSY_CPU_RATE if busy else 0.1 * 1.6 + 0.1) * seconds,
                    "host_total": 2.0 * seconds,
                }
                for scope, cpu_s in accounting.items():
                    labels = {"run_id": RUN_ID, "scenario": w["scenario"], "phase": w["phase"]}
                    labels |= {"repeat": str(w["repeat"]), "scope": scope}
                    ff.add("ffmpeg_window_cpu_seconds", labels, cpu_s, w["end"] * 1000)
        active_before = set(active)

        # Self-metrics every 2 s (a push), as every client sends them.
        if t % 2 == 0:
            for job, series in jobs.items():
                rate = 10.0 * 20
                for name, inc in (
                    ("monitoring_client_samples_collected_total", rate * 2),
                    ("monitoring_client_samples_sent_total", rate * 2),
                    ("monitoring_client_samples_retried_total", 3.0 if t % 60 == 0 else 0.0),
                    ("monitoring_client_send_duration_seconds_sum", 0.004),
                    ("monitoring_client_send_duration_seconds_count", 1.0),
                    ("monitoring_client_collect_duration_seconds_sum", 0.0008 * 20),
                    ("monitoring_client_collect_duration_seconds_count", 20.0),
                    ("monitoring_client_skipped_ticks_total", 1.0 if t % 120 == 0 else 0.0),
                    ("process_cpu_seconds_total", 0.01),
                ):
                    counter = (job, name, "")
                    self_counters[counter] = self_counters.get(counter, 0.0) + inc
                    series.add(name, {}, self_counters[counter], ts)
                for family, label, label_value, inc in (
                    ("monitoring_client_requests_total", "code", "204", 1.0),
                    ("monitoring_client_samples_dropped_total", "reason", "rejected",
                     5.0 if t % 300 == 0 else 0.0),
                    ("monitoring_client_stage_errors_total", "stage", "sender",
                     1.0 if t % 600 == 0 else 0.0),
                    ("monitoring_client_spool_quarantined_total", "reason", "damaged",
                     1.0 if t % 900 == 0 else 0.0),
                ):  # fmt: skip
                    counter = (job, family, label_value)
                    self_counters[counter] = self_counters.get(counter, 0.0) + inc
                    series.add(family, {label: label_value}, self_counters[counter], ts)
                series.add("monitoring_client_pending_samples", {}, float(rng.randint(0, 800)), ts)
                series.add("monitoring_client_spool_bytes", {}, 0.0, ts)
                series.add("monitoring_client_spool_samples", {}, 0.0, ts)
                series.add("monitoring_client_sampling_lag_seconds", {}, rng.uniform(0, 0.004), ts)
                series.add("process_resident_memory_bytes", {}, 4.2e7, ts)
                series.add("monitoring_client_info", {"version": "0.1.0"}, 1.0, ts)
                series.add(HOST_INFO_METRIC, HOST.labels(), 1.0, ts)
    return jobs


def push(write_url: str, job: str, samples: list[Sample]) -> None:
    enc = encoder.SeriesEncoder({"job": job, "instance": INSTANCE})
    samples = sorted(samples, key=lambda s: s.timestamp_ms)
    chunk = 20_000
    for i in range(0, len(samples), chunk):
        body = encoder.compress(enc.encode(samples[i : i + chunk]))
        resp = requests.post(
            write_url,
            data=body,
            headers={
                "Content-Encoding": "snappy",
                "Content-Type": "application/x-protobuf",
                "X-Prometheus-Remote-Write-Version": "0.1.0",
            },
            timeout=30,
        )
        assert resp.status_code == 204, resp.text


def test_generated_data_covers_every_dashboard_metric() -> None:
    pushed = {s.name for series in generate(1_700_000_000).values() for s in series.samples}
    used: set[str] = set()
    for path in DASHBOARDS:
        for _, target in iter_targets(load(path)):
            used |= metric_names(target["expr"])
    assert used <= pushed
    assert pushed <= DATA_METRICS | SELF_METRICS


# ------------------------------------------------------------------ the real thing


@pytest.fixture(scope="module")
def filled_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, int]]:
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed (apt-get install prometheus, or `make setup`)")
    # Aligned to whole minutes: subqueries ([$__range:$__interval]) evaluate at absolute
    # multiples of their step, so an unaligned span would move which samples each window holds
    # and make the expected means depend on the wall clock.
    end_s = (int(time.time()) - 5) // 60 * 60
    start_s = end_s - SPAN_S
    with PrometheusProcess(tmp_path_factory.mktemp("prom")) as prom:
        for job, series in generate(start_s).items():
            push(prom.write_url, job, series.samples)
        yield prom, end_s


def label_values(prom: Any, query: str) -> list[str]:
    match = re.fullmatch(r"label_values\((?:(.+),\s*)?(\w+)\)", query.strip())
    assert match, f"unsupported variable query {query}"
    selector, label = match.groups()
    params = {"match[]": selector} if selector else {}
    resp = requests.get(f"{prom.base_url}/api/v1/label/{label}/values", params=params, timeout=10)
    resp.raise_for_status()
    return list(resp.json()["data"])


def finite_values(result: list[dict[str, Any]]) -> list[float]:
    raw: list[Any] = []
    for series in result:
        raw.extend([series["value"]] if "value" in series else series["values"])
    return [float(v) for _, v in raw if math.isfinite(float(v))]


CASES = [
    pytest.param(
        path, panel["id"], target["refId"], id=f"{path.stem}/{panel['title']}/{target['refId']}"
    )
    for path in DASHBOARDS
    for panel, target in iter_targets(load(path))
]


@pytest.mark.integration
@pytest.mark.parametrize(("path", "panel_id", "ref_id"), CASES)
def test_panel_query_returns_series(
    filled_prometheus: tuple[Any, int], path: Path, panel_id: int, ref_id: str
) -> None:
    prom, end_s = filled_prometheus
    dash = load(path)
    variables = {
        "instance": INSTANCE,
        "run_id": RUN_ID,
        "job": "cpu-rapl-client",
        "quality_metric": "psnr",
    }
    ((panel, target),) = [
        (p, t) for p, t in iter_targets(dash) if p["id"] == panel_id and t["refId"] == ref_id
    ]
    title = panel["title"]
    expr = substitute(target["expr"], variables, SPAN_S)
    if target.get("instant"):
        result = prom.query(expr, at=end_s)
    else:
        result = prom.query_range(expr, end_s - SPAN_S + 60, end_s, 15)
    assert result, f"{path.name} / {title} / {ref_id}: no series for {expr}"
    assert finite_values(result), f"{path.name} / {title} / {ref_id}: only NaN/Inf for {expr}"


@pytest.mark.integration
def test_template_variable_queries_find_the_data(filled_prometheus: tuple[Any, int]) -> None:
    prom, _ = filled_prometheus
    expected = {
        "instance": INSTANCE,
        "run_id": RUN_ID,
        "job": "cpu-rapl-client",
        "quality_metric": "psnr",
    }
    seen = 0
    for path in DASHBOARDS:
        for var in load(path)["templating"]["list"]:
            query = substitute(var["query"]["query"], expected, SPAN_S)
            values = label_values(prom, query)
            assert expected[var["name"]] in values, (path.name, var["name"], values)
            seen += 1
    assert seen == 6


@pytest.mark.integration
def test_scenario_power_table_tells_transcode_from_baseline(
    filled_prometheus: tuple[Any, int],
) -> None:
    """The comparison is meaningful, not just non-empty: transcode windows draw more power."""
    prom, end_s = filled_prometheus
    dash = load(GRAFANA / "dashboards/scenario-comparison.json")
    (target,) = [
        t
        for p, t in iter_targets(dash)
        if p["title"] == "Mean power per configuration (all repeats)" and t["refId"] == "A"
    ]
    expr = substitute(target["expr"], {"instance": INSTANCE, "run_id": RUN_ID}, SPAN_S)
    rows = {
        (r["metric"]["scenario"], r["metric"]["phase"]): float(r["value"][1])
        for r in prom.query(expr, at=end_s)
    }
    assert set(rows) == {
        ("x264-fast-720p", "baseline"),
        ("x264-fast-720p", "transcode"),
        ("x264-veryfast-720p", "baseline"),
        ("x264-veryfast-720p", "transcode"),
    }
    # package + dram = 1.12 * (12 + 38 * load): load 0.1 idle, 1.0 transcoding (± noise).
    assert rows[("x264-fast-720p", "transcode")] == pytest.approx(1.12 * 50, rel=0.05)
    assert rows[("x264-fast-720p", "baseline")] == pytest.approx(1.12 * 15.8, rel=0.05)


@pytest.mark.integration
def test_background_share_sits_beside_each_windows_energy(
    filled_prometheus: tuple[Any, int],
) -> None:
    """Per transcode window: 1 - ffmpeg's CPU seconds / the host's busy CPU seconds, and the
    window's CPU energy, keyed alike so the table's merge puts them on one row."""
    prom, end_s = filled_prometheus
    dash = load(GRAFANA / "dashboards/scenario-comparison.json")
    title = "Background CPU share and energy per window"
    targets = {t["refId"]: t for p, t in iter_targets(dash) if p["title"] == title}
    assert list(targets) == ["A", "B"]
    assert all(t["instant"] and t["format"] == "table" for t in targets.values())
    rows = {}
    for ref, target in targets.items():
        expr = substitute(target["expr"], {"instance": INSTANCE, "run_id": RUN_ID}, SPAN_S)
        rows[ref] = {
            (r["metric"]["scenario"], r["metric"]["phase"], r["metric"]["repeat"]): float(
                r["value"][1]
            )
            for r in prom.query(expr, at=end_s)
        }
    windows_seen = {
        ("x264-fast-720p", "transcode", "0"),
        ("x264-fast-720p", "transcode", "1"),
        ("x264-veryfast-720p", "transcode", "0"),
    }
    assert set(rows["A"]) == set(rows["B"]) == windows_seen
    for share in rows["A"].values():
        assert share == pytest.approx(1 - FFMPEG_CPU_RATE / BUSY_CPU_RATE)
    # 180 s windows, busy: package + dram = 1.12 * (12 + 38) W.
    for joules in rows["B"].values():
        assert joules == pytest.approx(1.12 * 50 * 180, rel=0.1)


@pytest.mark.integration
def test_energy_vs_quality_pairs_each_window_with_its_quality(
    filled_prometheus: tuple[Any, int],
) -> None:
    """The scatter's two queries line up by (scenario, repeat): y = CPU J per output frame
    inside the window, x = the window's mean score of the chosen metric."""
    prom, end_s = filled_prometheus
    dash = load(GRAFANA / "dashboards/scenario-comparison.json")
    targets = {
        t["refId"]: t for p, t in iter_targets(dash) if p["title"] == "Energy vs quality per window"
    }
    assert [t["refId"] for t in targets.values()] == ["A", "B"]
    assert all(t["instant"] and t["format"] == "table" for t in targets.values())
    rows: dict[str, dict[tuple[str, str], float]] = {}
    for ref, target in targets.items():
        for metric in ("psnr", "vmaf"):
            variables = {"instance": INSTANCE, "run_id": RUN_ID, "quality_metric": metric}
            expr = substitute(target["expr"], variables, SPAN_S)
            rows[f"{ref}-{metric}"] = {
                (r["metric"]["scenario"], r["metric"]["repeat"]): float(r["value"][1])
                for r in prom.query(expr, at=end_s)
            }
    windows_seen = {("x264-fast-720p", "0"), ("x264-fast-720p", "1"), ("x264-veryfast-720p", "0")}
    assert set(rows["A-psnr"]) == set(rows["B-psnr"]) == windows_seen
    assert rows["B-psnr"][("x264-fast-720p", "1")] == pytest.approx(QUALITY["fast"][0])
    assert rows["B-vmaf"][("x264-veryfast-720p", "0")] == pytest.approx(QUALITY["veryfast"][2])
    # Busy windows: package + dram = 1.12 * (12 + 38) W over 2 streams x 2 rungs x 30 frames/s.
    for joules_per_frame in rows["A-psnr"].values():
        assert joules_per_frame == pytest.approx(1.12 * 50 / 120, rel=0.1)
