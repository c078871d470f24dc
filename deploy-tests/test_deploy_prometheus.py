"""Prometheus config template, entrypoint and rules: promtool checks, rule unit tests, and a
real Prometheus started through prometheus/entrypoint.sh that takes remote write and the rules."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
import yaml
from base_monitoring_client import encoder
from base_monitoring_client.sample import Sample
from wattpush_testing import free_port, wait_until

PROM_DIR = Path(__file__).resolve().parent.parent / "prometheus"
RULES = sorted((PROM_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROM_DIR / "rules" / "tests").glob("*_test.yml"))


def run(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)


def render(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "PROMETHEUS_RULES_DIR": str(PROM_DIR / "rules"),
        "PROMETHEUS_RENDER_DIR": str(tmp_path / "rendered"),
        **overrides,
    }
    return run([str(PROM_DIR / "entrypoint.sh"), "--render-only"], env=env)


def test_rule_files_exist() -> None:
    assert {p.name for p in RULES} == {"recording.yml", "alerts.yml"}
    assert {p.name for p in RULE_TESTS} == {"recording_test.yml", "alerts_test.yml"}


def test_promtool_check_rules(tool: Callable[[str], str]) -> None:
    promtool = tool("promtool")
    result = run([promtool, "check", "rules", *map(str, RULES)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules(tool: Callable[[str], str]) -> None:
    promtool = tool("promtool")
    result = run([promtool, "test", "rules", *map(str, RULE_TESTS)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_every_alert_has_a_unit_test() -> None:
    alerts = {
        rule["alert"]
        for group in yaml.safe_load((PROM_DIR / "rules" / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    tested = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            tested |= {t["alertname"] for t in case.get("alert_rule_test", []) if t["exp_alerts"]}
    assert alerts == tested
    assert {
        "WattpushClientStoppedPushing",
        "WattpushSamplesDropped",
        "WattpushSpoolGrowing",
        "WattpushPowerAboveThreshold",
        "WattpushGpuHot",
    } <= alerts


def test_every_recording_rule_has_a_unit_test() -> None:
    records = {
        rule["record"]
        for group in yaml.safe_load((PROM_DIR / "rules" / "recording.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    text = (PROM_DIR / "rules" / "tests" / "recording_test.yml").read_text()
    tested = {r for r in records if f"expr: {r}\n" in text}
    assert tested == records


def test_rendered_config_passes_promtool(tmp_path: Path, tool: Callable[[str], str]) -> None:
    promtool = tool("promtool")
    result = render(
        tmp_path,
        ALERTMANAGER_TARGETS="alertmanager:9093",
        PROMETHEUS_RETENTION_TIME="30d",
        ALERT_POWER_WATTS="450",
        ALERT_GPU_TEMPERATURE_CELSIUS="80.5",
    )
    assert result.returncode == 0, result.stderr
    config_path = Path(result.stdout.strip())
    config = yaml.safe_load(config_path.read_text())
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"
    ]
    assert config["rule_files"][0] == f"{PROM_DIR / 'rules'}/*.yml"
    assert config["storage"]["tsdb"]["out_of_order_time_window"] == "30m"
    thresholds = (tmp_path / "rendered" / "thresholds.yml").read_text()
    assert "vector(450)" in thresholds and "vector(80.5)" in thresholds
    checked = run([promtool, "check", "config", str(config_path)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 3 rule files found" in checked.stdout + checked.stderr


def test_render_without_alertmanager_sends_nowhere(
    tmp_path: Path, tool: Callable[[str], str]
) -> None:
    tool("promtool")
    result = render(tmp_path, ALERTMANAGER_TARGETS="")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(Path(result.stdout.strip()).read_text())
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == []


def test_bad_settings_are_all_reported_with_fixes(tmp_path: Path) -> None:
    result = render(
        tmp_path,
        PROMETHEUS_RETENTION_TIME="fortnight",
        ALERT_POWER_WATTS="lots",
        ALERTMANAGER_TARGETS="http://am:9093",
        PROMETHEUS_RETENTION_SIZE="20 gigs",
    )
    assert result.returncode == 2
    for name in (
        "PROMETHEUS_RETENTION_TIME='fortnight'",
        "ALERT_POWER_WATTS='lots'",
        "ALERTMANAGER_TARGETS='http://am:9093'",
        "PROMETHEUS_RETENTION_SIZE='20 gigs'",
    ):
        assert name in result.stderr
    assert result.stderr.count("fix:") == 4
    assert not (tmp_path / "rendered" / "prometheus.yml").exists()


def test_unset_template_variable_is_an_error(tmp_path: Path) -> None:
    template_dir = tmp_path / "tmpl"
    template_dir.mkdir()
    (template_dir / "prometheus.yml.tmpl").write_text(
        "# ${NOT_A_VAR} in a comment is fine\nglobal:\n  scrape_interval: ${NO_SUCH_SETTING}\n"
    )
    (template_dir / "thresholds.yml.tmpl").write_text("groups: []\n")
    result = render(tmp_path, PROMETHEUS_TEMPLATE_DIR=str(template_dir))
    assert result.returncode != 0
    assert "${NO_SUCH_SETTING}" in result.stderr and "NOT_A_VAR" not in result.stderr


@pytest.mark.integration
def test_entrypoint_runs_prometheus_with_receiver_and_rules(
    tmp_path: Path, tool: Callable[[str], str]
) -> None:
    tool("prometheus")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "PATH": os.environ["PATH"],
        "PROMETHEUS_RULES_DIR": str(PROM_DIR / "rules"),
        "PROMETHEUS_RENDER_DIR": str(tmp_path / "rendered"),
        "PROMETHEUS_DATA_DIR": str(tmp_path / "data"),
        "PROMETHEUS_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "PROMETHEUS_RETENTION_TIME": "2d",
        "PROMETHEUS_EVALUATION_INTERVAL": "1s",
        "ALERT_POWER_WATTS": "10",
    }
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen([str(PROM_DIR / "entrypoint.sh")], env=env, stdout=log, stderr=log)
    try:

        def ready() -> bool:
            try:
                return requests.get(base + "/-/ready", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        assert wait_until(ready, timeout=30), (tmp_path / "prometheus.log").read_text()
        flags = requests.get(base + "/api/v1/status/flags", timeout=5).json()["data"]
        assert flags["storage.tsdb.retention.time"] == "2d"
        assert flags["web.enable-remote-write-receiver"] == "true"
        groups = requests.get(base + "/api/v1/rules", timeout=5).json()["data"]["groups"]
        names = {g["name"] for g in groups}
        assert {"wattpush-power", "wattpush-clients", "wattpush-thresholds"} <= names

        # Remote write is accepted and recording rules evaluate over the pushed data.
        now_ms = int(time.time() * 1000)
        enc = encoder.SeriesEncoder({"job": "cpu-rapl-client", "instance": "h1"})
        samples = [
            Sample(
                "cpu_power_watts",
                {"zone": "package", "socket": "0", "source": "rapl"},
                42.0,
                now_ms - 1000 * i,
            )
            for i in range(30, -1, -1)
        ]
        resp = requests.post(
            base + "/api/v1/write",
            data=encoder.compress(enc.encode(samples)),
            headers={
                "Content-Encoding": "snappy",
                "Content-Type": "application/x-protobuf",
                "X-Prometheus-Remote-Write-Version": "0.1.0",
            },
            timeout=10,
        )
        assert resp.status_code == 204, resp.text

        def recorded() -> list[dict[str, object]]:
            body = requests.get(
                base + "/api/v1/query",
                params={"query": "wattpush:cpu_power_watts:sum_by_source"},
                timeout=5,
            ).json()
            return list(body["data"]["result"])

        result = wait_until(recorded, timeout=20)
        assert result and float(result[0]["value"][1]) == 42.0
        # Rule groups evaluate independently: wait for the thresholds group's first round too.
        threshold = wait_until(
            lambda: requests.get(
                base + "/api/v1/query",
                params={"query": "wattpush:threshold:power_watts"},
                timeout=5,
            ).json()["data"]["result"],
            timeout=20,
        )
        assert threshold and float(threshold[0]["value"][1]) == 10.0
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
