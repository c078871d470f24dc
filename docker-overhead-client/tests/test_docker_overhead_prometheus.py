"""The console script against a real Prometheus, fed by the fake engine and host trees."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from wattpush_testing import PrometheusProcess, stop_process, wait_until
from wattpush_testing.docker import PROM_ID, TRANSCODE_ID, FakeEngine, FakeHost, client_env

pytestmark = pytest.mark.integration


def _value(prom: PrometheusProcess, promql: str) -> float | None:
    result = prom.query(promql)
    return float(result[0]["value"][1]) if result else None


def test_pushes_containers_engine_and_host_then_stale_markers(
    fake_engine: FakeEngine, tmp_path: Path
) -> None:
    host = FakeHost(tmp_path / "host", 2)
    host.add_golden_containers()
    host.add_process(900, "dockerd", ["/usr/bin/dockerd"], cpu_ticks=5000)
    with PrometheusProcess(tmp_path / "prom") as prom:
        env = client_env(
            REMOTE_WRITE_URL=prom.write_url,
            DOCKER_HOST=fake_engine.docker_host,
            HOST_PROC=str(host.proc),
            HOST_CGROUP=str(host.cgroup),
            SAMPLE_INTERVAL_S="0.1",
            PUSH_INTERVAL_S="0.3",
            CONTAINER_REFRESH_S="0.3",
            INSTANCE="test-host",
        )
        log = (tmp_path / "client.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "docker_overhead_client"], env=env, stdout=log, stderr=log
        )
        try:
            cpu = 'container_cpu_seconds_total{container="wattpush-prometheus-1"}'
            assert wait_until(lambda: _value(prom, cpu) == 5.0, timeout=20)
            for step in range(1, 6):  # each step stored before the next: the counter follows
                cpu_ns = 5_000_000_000 + step * 400_000_000
                host.set_cpu(PROM_ID, cpu_ns)
                assert wait_until(lambda n=cpu_ns: _value(prom, cpu) == n / 1e9, timeout=20), step
            assert _value(prom, cpu) == 7.0
            series = prom.query(cpu)[0]["metric"]
            assert series["service"] == "prometheus"
            assert series["image"] == "prom/prometheus:v2.42.0"
            assert series["job"] == "docker-overhead-client"
            assert series["instance"] == "test-host"
            assert _value(prom, 'docker_engine_cpu_seconds_total{process="dockerd"}') == 50.0
            assert _value(prom, 'host_cpu_seconds_total{mode="user"}') is not None
            # Stop a container: its series must end now, not linger for 5 minutes of lookback.
            gone = 'container_cpu_seconds_total{container="transcode-1"}'
            assert _value(prom, gone) == 5.0
            host.remove_container(TRANSCODE_ID, 4303)
            fake_engine.stop(TRANSCODE_ID)
            assert wait_until(lambda: _value(prom, gone) is None, timeout=20)
            assert _value(prom, cpu) == 7.0
        finally:
            rc = stop_process(proc)
            log.close()
        assert rc == 0, (tmp_path / "client.log").read_text()
