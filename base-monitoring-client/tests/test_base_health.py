"""/healthz and /metrics over real HTTP, JSON logs, the synthetic collector."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest
import requests
from base_monitoring_client.cli import run_client_main
from base_monitoring_client.config import ClientConfig
from base_monitoring_client.errors import ConfigError
from base_monitoring_client.health import HealthServer
from base_monitoring_client.logutil import JsonFormatter
from base_monitoring_client.pipeline import Pipeline
from base_monitoring_client.synthetic import SyntheticClient
from wattpush_testing import collected, free_port, wait_until
from wattpush_testing.base import PushOnlyClient, ScriptedTransport, series


def test_health_reports_ok_then_degraded_with_reason_and_serves_metrics() -> None:
    port = free_port()
    transport = ScriptedTransport([None] * 1_000_000)
    config = ClientConfig(
        push_interval_s=0.1,
        health_port=port,
        health_address="127.0.0.1",
        instance="box",
        min_backoff_s=0.01,
        max_backoff_s=0.02,
        shutdown_timeout_s=0.1,
    )
    pipeline = Pipeline(PushOnlyClient(), config, transport=transport)
    pipeline.start()
    try:
        url = f"http://127.0.0.1:{port}"
        first = requests.get(url + "/healthz", timeout=5).json()
        assert first["status"] == "ok"
        pipeline.push(series(3, int(time.time() * 1000)))
        degraded = wait_until(
            lambda: (
                (body := requests.get(url + "/healthz", timeout=5).json())["status"] == "degraded"
                and body
            ),
            timeout=5,
        )
        assert degraded
        assert any("send attempts failed" in r for r in degraded["reasons"])
        text = requests.get(url + "/metrics", timeout=5).text
        assert "# TYPE monitoring_client_samples_collected_total counter" in text
        assert (
            'monitoring_client_samples_collected_total{instance="box",job="test-client"} 3.0'
            in text
        )
        assert (
            'monitoring_client_info{instance="box",job="test-client",version="0.1.0"} 1.0' in text
        )
        assert requests.get(url + "/nope", timeout=5).status_code == 404
    finally:
        pipeline.stop()


def test_busy_health_port_is_a_config_error() -> None:
    port = free_port()
    blocker = Pipeline(
        PushOnlyClient(),
        ClientConfig(health_port=port, health_address="127.0.0.1"),
        transport=ScriptedTransport(),
    )
    blocker.start()
    try:
        second = Pipeline(
            PushOnlyClient(),
            ClientConfig(health_port=port, health_address="127.0.0.1"),
            transport=ScriptedTransport(),
        )
        with pytest.raises(ConfigError, match=f"HEALTH_PORT={port}"):
            second.start()
    finally:
        blocker.stop()


class _Source:
    def health(self) -> tuple[str, list[str]]:
        return "ok", []

    def pending_samples(self) -> int:
        return 0

    def exposition(self) -> str:
        return "up 1\n"


def test_health_server_stop_ends_its_thread_and_closes_the_port() -> None:
    before = set(threading.enumerate())
    server = HealthServer("127.0.0.1", 0, _Source())
    server.start()
    url = f"http://127.0.0.1:{server.port}"
    assert requests.get(url + "/metrics", timeout=5).text == "up 1\n"
    threads = [t for t in threading.enumerate() if t.name == "health" and t not in before]
    server.stop()
    assert threads and not any(t.is_alive() for t in threads)
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/healthz", timeout=5)
    HealthServer("127.0.0.1", 0, _Source()).stop()  # never started: stops all the same


def test_json_log_lines() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "hello %s", ("you",), None)
    payload = json.loads(JsonFormatter().format(record))
    assert payload["msg"] == "hello you"
    assert payload["level"] == "warning"


def test_synthetic_values_are_a_function_of_time() -> None:
    client = SyntheticClient(series=3)
    samples = collected(client, 1_795_000_000_123_456_789)
    assert [s.labels["series"] for s in samples] == ["0", "1", "2"]
    assert all(s.timestamp_ms == 1_795_000_000_123 for s in samples)
    assert samples[2].value == SyntheticClient.value_at(2, 1_795_000_000_123)


def test_run_client_main_runs_until_stopped_and_exits_zero() -> None:
    stop = threading.Event()
    seen: list[Pipeline] = []

    def ready(p: Pipeline) -> None:
        seen.append(p)
        p.transport = ScriptedTransport()
        stop.set()

    rc = run_client_main(
        lambda config, values: SyntheticClient(2),
        prog="t",
        argv=["--remote-write-url", "http://127.0.0.1:9/api/v1/write", "--shutdown-timeout-s", "0"],
        env={},
        install_signal_handlers=False,
        ready=ready,
        stop_event=stop,
    )
    assert rc == 0
    assert seen and seen[0].config.shutdown_timeout_s == 0


def test_repeated_sigterm_still_exits_zero(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Shutdown is idempotent: signals keep coming until the process is gone, exit stays 0."""
    import os
    import signal
    import subprocess
    import sys

    env = {
        **os.environ,
        "REMOTE_WRITE_URL": "http://127.0.0.1:9/api/v1/write",  # nothing listens: fails fast
        "SHUTDOWN_TIMEOUT_S": "0.3",
        "MAX_BACKOFF_S": "0.05",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "base_monitoring_client", "--series", "2"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # wait until it runs
            if "pushing to" in line:
                break
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.005)
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
