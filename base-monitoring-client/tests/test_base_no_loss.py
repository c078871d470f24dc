"""Fault injection: no silent loss, no leaked secret (the numbered cases of the issue that asked
for it, over real HTTP, real files, real signals and real processes).

Every sample is either delivered once, in order, or counted under a reason; what a
configuration fix lets through is held, not dropped; nothing the client prints carries a
secret. The synthetic collector's values are a function of series and timestamp, so what
arrived is checked sample by sample.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests
from base_monitoring_client.cli import main, run_client, run_client_main
from base_monitoring_client.client import MonitoringClient
from base_monitoring_client.config import ClientConfig
from base_monitoring_client.pipeline import Pipeline
from base_monitoring_client.sample import Sample
from base_monitoring_client.synthetic import SyntheticClient
from base_monitoring_client.transport import Outcome
from wattpush_testing import free_port, wait_until
from wattpush_testing.faults import ClientProcess, FaultReceiver, Point
from wattpush_testing.files import read_only_dir

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("restore_root_logging")]

METRIC = "synthetic_power_watts"
DROPPED = "monitoring_client_samples_dropped_total"
COLLECTED = "monitoring_client_samples_collected_total"
SECRET_MARK = "S3CRET"
TOKEN = f"tok-{SECRET_MARK}-9f2c"
PASSWORD = f"pw-{SECRET_MARK}-4c1e"
USER = "alice"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
#: every secret this suite hands a client, and the forms they travel in
SECRETS = (SECRET_MARK, TOKEN, PASSWORD, BASIC.split()[1])


class Transcript:
    """Everything the suite saw a component print or serve: logs, /healthz, /metrics, errors.
    Each piece is checked for the suite's secrets as it comes in, and all of it again at
    the end (``test_no_secret_in_anything_the_suite_produced``)."""

    def __init__(self) -> None:
        self.pieces: list[tuple[str, str]] = []

    def add(self, kind: str, text: str) -> str:
        self.pieces.append((kind, text))
        assert_no_secret(kind, text)
        return text

    @property
    def kinds(self) -> set[str]:
        return {kind for kind, _ in self.pieces}


def assert_no_secret(kind: str, text: str) -> None:
    for secret in SECRETS:
        at = text.find(secret)
        assert at < 0, f"{kind} shows a secret: ...{text[max(0, at - 80) : at + 40]}..."


@pytest.fixture(scope="module")
def transcript() -> Transcript:
    return Transcript()


# -- helpers -----------------------------------------------------------------------------------


def client_env(url: str, **extra: str) -> dict[str, str]:
    env = {
        "REMOTE_WRITE_URL": url,
        "SAMPLE_INTERVAL_S": "0.1",
        "PUSH_INTERVAL_S": "0.3",
        "MIN_BACKOFF_S": "0.01",
        "MAX_BACKOFF_S": "0.3",
        "SHUTDOWN_TIMEOUT_S": "3",
        "REMOTE_WRITE_TIMEOUT_S": "3",
        "INSTANCE": "no-loss",
        "HEALTH_PORT": "0",
        "LOG_LEVEL": "info",
    }
    env.update(extra)
    return env


def fast_config(url: str, **overrides: Any) -> ClientConfig:
    values: dict[str, Any] = {
        "remote_write_url": url,
        "sample_interval_s": 0.05,
        "push_interval_s": 0.2,
        "min_backoff_s": 0.01,
        "max_backoff_s": 0.2,
        "remote_write_timeout_s": 2.0,
        "shutdown_timeout_s": 3.0,
        "instance": "no-loss",
    }
    values.update(overrides)
    return ClientConfig(**values)


def by_series(points: Iterable[Point]) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for p in points:
        if p.name == METRIC:
            out[p.label("series")].append((p.timestamp_ms, p.value))
    return out


def assert_once_in_order(points: Iterable[Point], series: int) -> dict[str, list[int]]:
    """Every series arrived in strictly increasing time (no duplicate, no reordering), with
    the values the synthetic formula gives, and all series carry the same ticks."""
    got = by_series(points)
    assert set(got) == {str(i) for i in range(series)}, sorted(got)
    stamps: dict[str, list[int]] = {}
    for key, pairs in got.items():
        ts = [t for t, _ in pairs]
        dupes = len(ts) - len(set(ts))
        disorder = sum(1 for a, b in itertools.pairwise(ts) if b <= a)
        assert not dupes and not disorder, f"series {key}: {dupes} duplicates, {disorder} out"
        for t, v in pairs:
            assert v == SyntheticClient.value_at(int(key), t), (key, t, v)
        stamps[key] = ts
    first = stamps["0"]
    assert all(s == first for s in stamps.values()), "series carry different ticks"
    return stamps


def last_value(points: Iterable[Point], name: str, **labels: str) -> float:
    hits = [p for p in points if p.name == name and all(p.label(k) == v for k, v in labels.items())]
    assert hits, f"no {name}{labels} received"
    return max(hits, key=lambda p: p.timestamp_ms).value


def get_health(port: int) -> tuple[int, dict[str, Any]]:
    resp = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    return resp.status_code, resp.json()


def assert_no_traceback(text: str) -> None:
    assert "Traceback" not in text, text[-3000:]


def run_main(
    env: dict[str, str], argv: Sequence[str] = (), capsys: pytest.CaptureFixture[str] | None = None
) -> tuple[int, str]:
    """The console script in this process; returns its exit code and what it printed. A
    client that starts after all stops at once (the stop event is set): a test expecting a
    refusal fails instead of hanging."""
    stop = threading.Event()
    stop.set()
    rc = run_client(
        SyntheticClient, list(argv), env, install_signal_handlers=False, stop_event=stop
    )
    assert capsys is not None
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


# -- 1, 4: the spool directory: undeletable, foreign and damaged entries -----------------------


@pytest.mark.slow
def test_undeletable_spool_is_sent_once_and_no_restart_sends_it_again(
    processes: list[ClientProcess], tmp_path: Path, transcript: Transcript
) -> None:
    spool = tmp_path / "spool"
    rx = FaultReceiver()  # not listening yet: connections refused
    env = client_env(rx.url, SPOOL_DIR=str(spool), SPOOL_AFTER_S="0.2")
    try:
        first = ClientProcess(env, tmp_path / "first.log")
        processes.append(first)
        first.wait_running()
        assert wait_until(lambda: len(list(spool.glob("*.seg"))) >= 5, timeout=20), first.log()
        with read_only_dir(spool):
            rx.come_up()  # segments are sent but cannot be deleted
            assert rx.wait_for(lambda rs: sum(r.accepted for r in rs) >= 8, timeout=20)
            threading.Event().wait(1.0)  # new batches meanwhile cannot be spooled either
            assert first.terminate() == 0, first.log()
        log = transcript.add("log", first.log())
        assert_no_traceback(log)
        assert "marked as sent" in log
        points = rx.accepted_points()
        stamps = assert_once_in_order(points, 5)
        # Everything it collected arrived, once; nothing was dropped.
        assert last_value(points, COLLECTED) == 5 * len(stamps["0"])
        assert not [p for p in points if p.name == DROPPED and p.value]

        seen = len(rx.records)
        second = ClientProcess(env, tmp_path / "second.log")  # the directory is writable again
        processes.append(second)
        second.wait_running()
        assert rx.wait_for(lambda rs: sum(r.accepted for r in rs[seen:]) >= 3, timeout=20)
        assert second.terminate() == 0, second.log()
        assert_no_traceback(transcript.add("log", second.log()))
    finally:
        rx.stop()
    # The second run sent nothing of the first again: its marked segments were deleted.
    assert_once_in_order(rx.accepted_points(), 5)
    assert not list(spool.glob("*.seg"))


def test_foreign_and_damaged_spool_entries_are_quarantined_counted_and_never_sent(
    processes: list[ClientProcess], tmp_path: Path, transcript: Transcript
) -> None:
    spool = tmp_path / "spool"
    rx = FaultReceiver()
    env = client_env(rx.url, SPOOL_DIR=str(spool), SPOOL_AFTER_S="0")
    try:
        first = ClientProcess(env, tmp_path / "first.log")
        processes.append(first)
        first.wait_running()
        assert wait_until(lambda: len(list(spool.glob("*.seg"))) >= 6, timeout=20), first.log()
        assert first.terminate() == 0, first.log()
        transcript.add("log", first.log())
        segments = sorted(spool.glob("*.seg"), key=lambda p: int(p.name.split(".")[0]))
        lost = 0
        for segment, damage in zip(segments[1:4], ("empty", "header", "truncated"), strict=True):
            data = segment.read_bytes()
            lost += int(segment.name.split(".")[1])  # <seq>.<samples>.seg
            if damage == "empty":
                segment.write_bytes(b"")
            elif damage == "header":
                segment.write_bytes(b"garbage!" + data[8:])
            else:
                segment.write_bytes(data[: len(data) // 2])
        (spool / "00000001099511627700.seg").mkdir()  # a directory named like the oldest
        (spool / "notes.txt").write_text("not ours")

        rx.come_up()
        second = ClientProcess(env, tmp_path / "second.log")
        processes.append(second)
        second.wait_running()
        assert wait_until(lambda: not list(spool.glob("*.seg")), timeout=20), second.log()
        seen = len(rx.records)
        assert rx.wait_for(lambda rs: sum(r.accepted for r in rs[seen:]) >= 3, timeout=20)
        assert second.terminate() == 0, second.log()
    finally:
        rx.stop()
    log = transcript.add("log", second.log())
    assert_no_traceback(log)
    quarantined = sorted(p.name for p in (spool / "quarantine").iterdir())
    assert len(quarantined) == 5, quarantined
    assert "00000001099511627700.seg" in quarantined and "notes.txt" in quarantined
    # Each damaged segment's line says how many samples it took with it.
    for segment in segments[1:4]:
        samples = segment.name.split(".")[1]
        assert any(segment.name in line and f"{samples} samples lost" in line
                   for line in log.splitlines()), segment.name  # fmt: skip
    points = rx.accepted_points()
    assert last_value(points, DROPPED, reason="spool_corrupt") == lost
    quarantine_counts = "monitoring_client_spool_quarantined_total"
    assert last_value(points, quarantine_counts, reason="damaged") == 3
    assert last_value(points, quarantine_counts, reason="foreign") == 2
    # What was not damaged arrived once, in order: the first run's ticks minus the damaged.
    got = by_series(points)
    for key, pairs in got.items():
        ts = [t for t, _ in pairs]
        assert ts == sorted(set(ts)), f"series {key} duplicated or reordered"


# -- 2: a header that cannot be sent -----------------------------------------------------------


def test_a_header_with_a_line_break_is_refused_at_start_without_its_value(
    capsys: pytest.CaptureFixture[str], transcript: Transcript
) -> None:
    env = client_env("http://127.0.0.1:9/api/v1/write")
    env["REMOTE_WRITE_HEADERS"] = f"X-A=b\nX-I: {TOKEN}"
    rc, out = run_main(env, capsys=capsys)
    transcript.add("error", out)
    assert rc == 2
    assert "REMOTE_WRITE_HEADERS" in out and "'X-A'" in out and "line break" in out
    assert_no_traceback(out)


class FlakyTransport:
    """Raises (a bug, a library surprise) for the first ``failures`` posts, then delivers to
    the real receiver."""

    def __init__(self, inner: Any, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    def post(self, body: bytes, timeout_s: float | None = None) -> Outcome:
        if self.failures > 0:
            self.failures -= 1
            raise ValueError(f"Invalid header value b'Bearer {TOKEN}\\nX: y'")
        outcome: Outcome = self.inner.post(body, timeout_s)
        return outcome

    def close(self) -> None:
        self.inner.close()


def test_a_transport_that_raises_does_not_stop_the_sender(
    rx: FaultReceiver, pipelines: list[Pipeline], caplog: pytest.LogCaptureFixture,
    transcript: Transcript,
) -> None:  # fmt: skip
    from base_monitoring_client.transport import make_transport

    config = fast_config(rx.url)
    transport = FlakyTransport(make_transport(config, "wattpush/test"), failures=4)
    client = SyntheticClient(5)
    pipeline = Pipeline(client, config, transport=transport)
    pipelines.append(pipeline)
    pipeline.start()
    assert rx.wait_for(lambda rs: sum(r.accepted for r in rs) >= 3, timeout=20)
    pipeline.stop()
    transcript.add("log", caplog.text)
    assert pipeline.dead == {}
    m = pipeline.metrics
    assert m.get("monitoring_client_requests_total", code="error") == 4
    assert m.total(DROPPED) == 0
    stamps = assert_once_in_order(rx.accepted_points(), 5)
    assert 5 * len(stamps["0"]) == m.get(COLLECTED)


# -- 3: 401, 403, 404 held; 413 split; 400 dropped ---------------------------------------------


@pytest.mark.slow
def test_401_for_5s_then_accepted_delivers_everything_and_healthz_fails_meanwhile(
    processes: list[ClientProcess], tmp_path: Path, transcript: Transcript
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    port = free_port()
    with FaultReceiver() as rx:
        rx.respond(401, times=100_000, body="no such token")
        env = client_env(
            rx.url,
            REMOTE_WRITE_BEARER_TOKEN_FILE=str(token_file),
            SPOOL_DIR=str(tmp_path / "spool"),
            HEALTH_PORT=str(port),
        )
        client = ClientProcess(env, tmp_path / "client.log")
        processes.append(client)
        client.wait_running()
        refused_until = time.monotonic() + 5.0
        assert rx.wait_for(lambda rs: len(rs) >= 1, timeout=10)
        during: list[int] = []
        while time.monotonic() < refused_until:
            code, body = get_health(port)
            transcript.add("healthz", json.dumps(body))
            during.append(code)
            if code == 503:
                assert body["status"] == "unhealthy"
                assert any("REMOTE_WRITE_BEARER_TOKEN" in r for r in body["reasons"]), body
            threading.Event().wait(0.25)
        rx.clear_script()  # the receiver takes the token from now on
        assert wait_until(lambda: get_health(port)[0] == 200, timeout=15)
        seen = len(rx.records)
        assert rx.wait_for(lambda rs: sum(r.accepted for r in rs[seen:]) >= 3, timeout=15)
        transcript.add("metrics", requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
        assert client.terminate() == 0, client.log()
    log = transcript.add("log", client.log())
    assert_no_traceback(log)
    assert during and set(during) == {503}, during  # never 200 while refused
    assert "401" in log and "REMOTE_WRITE_BEARER_TOKEN" in log
    points = rx.accepted_points()
    stamps = assert_once_in_order(points, 5)
    # 100 % delivered: the final self-report counts every sample collected, each arrived once.
    assert last_value(points, COLLECTED) == 5 * len(stamps["0"])
    assert not [p for p in points if p.name == DROPPED and p.value]


@pytest.mark.slow
def test_refused_credentials_hold_on_disk_and_a_restart_with_the_right_ones_replays(
    processes: list[ClientProcess], tmp_path: Path, transcript: Transcript
) -> None:
    spool = tmp_path / "spool"
    port = free_port()
    with FaultReceiver() as rx:
        rx.require_authorization(f"Bearer {TOKEN}")
        wrong = client_env(
            rx.url,
            REMOTE_WRITE_BEARER_TOKEN=f"{TOKEN}-expired",
            SPOOL_DIR=str(spool),
            HEALTH_PORT=str(port),
        )
        first = ClientProcess(wrong, tmp_path / "first.log")
        processes.append(first)
        first.wait_running()
        assert rx.wait_for(lambda rs: len(rs) >= 2, timeout=10)
        code, body = get_health(port)
        transcript.add("healthz", json.dumps(body))
        assert code == 503 and any("401" in r for r in body["reasons"]), body
        threading.Event().wait(1.5)
        assert first.terminate() == 0, first.log()
        first_end_ms = time.time() * 1000
        assert list(spool.glob("*.seg")), "nothing held on disk"
        assert not [r for r in rx.records if r.accepted]

        right = {**wrong, "REMOTE_WRITE_BEARER_TOKEN": TOKEN}
        second = ClientProcess(right, tmp_path / "second.log")
        processes.append(second)
        second.wait_running()
        assert wait_until(lambda: not list(spool.glob("*.seg")), timeout=20), second.log()
        seen = len(rx.records)
        assert rx.wait_for(lambda rs: sum(r.accepted for r in rs[seen:]) >= 2, timeout=15)
        assert second.terminate() == 0, second.log()
    for proc in (first, second):
        assert_no_traceback(transcript.add("log", proc.log()))
    # Every 401 echoed the token that came: none of it reached the log.
    assert "invalid credentials" in first.log()
    points = rx.accepted_points()
    stamps = assert_once_in_order(points, 5)["0"]
    firsts = [t for t in stamps if t < first_end_ms]
    assert firsts and len(firsts) < len(stamps)
    # All the first run collected arrived: held, then replayed first.
    collected = [p for p in points if p.name == COLLECTED and p.timestamp_ms < first_end_ms]
    assert max(p.value for p in collected) == 5 * len(firsts)
    assert not [p for p in points if p.name == DROPPED and p.value]


HOLD_CASES = [(403, "REMOTE_WRITE_HEADERS"), (404, "REMOTE_WRITE_URL")]


@pytest.mark.parametrize("case", HOLD_CASES, ids=["403", "404"])
def test_403_and_404_hold_the_data_and_name_the_setting_to_fix(
    case: tuple[int, str],
    rx: FaultReceiver,
    pipelines: list[Pipeline],
    caplog: pytest.LogCaptureFixture,
    transcript: Transcript,
) -> None:
    status, setting = case
    rx.respond(status, times=100_000, body="nope")
    client = SyntheticClient(5)
    pipeline = Pipeline(client, fast_config(rx.url))
    pipelines.append(pipeline)
    pipeline.start()
    assert rx.wait_for(lambda rs: len(rs) >= 3, timeout=10)
    health, reasons = pipeline.health()
    transcript.add("healthz", json.dumps(reasons))
    assert health == "unhealthy" and any(setting in r for r in reasons), reasons
    rx.clear_script()  # fixed
    assert wait_until(lambda: pipeline.health()[0] != "unhealthy", timeout=10)
    seen = len(rx.records)
    assert rx.wait_for(lambda rs: sum(r.accepted for r in rs[seen:]) >= 2, timeout=10)
    pipeline.stop()
    transcript.add("log", caplog.text)
    assert setting in caplog.text
    m = pipeline.metrics
    assert m.total(DROPPED) == 0
    stamps = assert_once_in_order(rx.accepted_points(), 5)
    assert 5 * len(stamps["0"]) == m.get(COLLECTED)


def test_413_splits_until_accepted_and_suggests_max_samples_per_send(
    rx: FaultReceiver, pipelines: list[Pipeline], caplog: pytest.LogCaptureFixture,
    transcript: Transcript,
) -> None:  # fmt: skip
    rx.max_samples = 7  # below a tick of 5 series plus the self-report
    pipeline = Pipeline(SyntheticClient(5), fast_config(rx.url, push_interval_s=0.5))
    pipelines.append(pipeline)
    pipeline.start()
    assert rx.wait_for(lambda rs: sum(r.accepted for r in rs) >= 20, timeout=20)
    pipeline.stop()
    transcript.add("log", caplog.text)
    assert "413" in caplog.text and "MAX_SAMPLES_PER_SEND" in caplog.text
    m = pipeline.metrics
    assert m.get("monitoring_client_requests_total", code="413") >= 1
    assert m.total(DROPPED) == 0
    assert all(len(r.points) <= 7 for r in rx.records if r.accepted)
    stamps = assert_once_in_order(rx.accepted_points(), 5)
    assert 5 * len(stamps["0"]) == m.get(COLLECTED)


class OneBigSample(MonitoringClient):
    name = "big"


def test_413_for_a_single_sample_drops_and_counts_it(
    rx: FaultReceiver, pipelines: list[Pipeline], caplog: pytest.LogCaptureFixture
) -> None:
    rx.max_samples = 0
    pipeline = Pipeline(OneBigSample(), fast_config(rx.url))
    pipelines.append(pipeline)
    pipeline.start()
    now_ms = int(time.time() * 1000)
    pipeline.push([Sample("big_value", {}, float(i), now_ms + i) for i in range(4)])
    assert pipeline.flush(timeout=10)
    pipeline.stop()
    m = pipeline.metrics
    assert m.get(DROPPED, reason="too_large") >= 4  # the self-report's samples too
    assert m.get("monitoring_client_samples_sent_total") == 0
    assert "cannot be split further" in caplog.text


# -- 5: a crash during an outage --------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_kill_9_after_30s_of_outage_loses_seconds_not_minutes(
    processes: list[ClientProcess], tmp_path: Path, transcript: Transcript
) -> None:
    spool = tmp_path / "spool"
    rx = FaultReceiver()  # down from the start
    # The defaults a deployment runs with (PUSH_INTERVAL_S 4, SPOOL_AFTER_S 2), 50 series.
    env = client_env(rx.url, SPOOL_DIR=str(spool), PUSH_INTERVAL_S="4", MAX_BACKOFF_S="5")
    del env["SHUTDOWN_TIMEOUT_S"]
    try:
        first = ClientProcess(env, tmp_path / "first.log", series=50)
        processes.append(first)
        first.wait_running()
        threading.Event().wait(30.0)
        first.proc.send_signal(signal.SIGKILL)
        assert first.proc.wait(10) == -signal.SIGKILL
        killed_ms = time.time() * 1000
        transcript.add("log", first.log())

        rx.come_up()
        second = ClientProcess(env, tmp_path / "second.log", series=50)
        processes.append(second)
        second.wait_running()
        assert wait_until(lambda: not list(spool.glob("*.seg")), timeout=30), second.log()
        seen = len(rx.records)
        assert rx.wait_for(lambda rs: sum(r.accepted for r in rs[seen:]) >= 2, timeout=20)
        assert second.terminate() == 0, second.log()
        assert_no_traceback(transcript.add("log", second.log()))
    finally:
        rx.stop()
    stamps = assert_once_in_order(rx.accepted_points(), 50)["0"]
    firsts = [t for t in stamps if t < killed_ms]
    # The first run sampled from its start to the kill: what of it arrived.
    expected = (killed_ms - first.started_wall * 1000) / 100
    delivered = len(firsts) / expected
    print(f"kill -9 after 30 s of outage: {len(firsts)} of ~{expected:.0f} ticks delivered "
          f"({delivered:.1%})")  # fmt: skip
    assert delivered >= 0.8


# -- a stage thread that dies ---------------------------------------------------------------------


class Doomed(BaseException):
    """Not an Exception: what no stage catches (as a real bug in the framework would be)."""


class DiesAfterATick(SyntheticClient):
    def collect(self, now_ns: int) -> None:
        super().collect(now_ns)
        raise Doomed("sampler killed by the test")


def test_a_stage_thread_that_dies_fails_healthz_and_exits_non_zero(rx: FaultReceiver) -> None:
    port = free_port()
    seen: list[Pipeline] = []
    rc = run_client_main(
        lambda config, values: DiesAfterATick(2),
        prog="t",
        argv=["--remote-write-url", rx.url, "--health-port", str(port)],
        env={},
        install_signal_handlers=False,
        ready=seen.append,
    )
    assert rc == 1
    pipeline = seen[0]
    assert "sampler" in pipeline.dead
    status, reasons = pipeline.health()
    assert status == "unhealthy" and any("sampler thread died" in r for r in reasons)


def test_healthz_answers_503_while_a_stage_is_dead(pipelines: list[Pipeline]) -> None:
    port = free_port()
    pipeline = Pipeline(DiesAfterATick(2), ClientConfig(health_port=port, instance="h"))
    pipelines.append(pipeline)
    pipeline.start()
    assert wait_until(lambda: pipeline.dead, timeout=5)
    code, body = get_health(port)
    assert code == 503 and body["status"] == "unhealthy", body


# -- 7: secrets ---------------------------------------------------------------------------------


def test_credentials_in_the_url_never_printed_in_logs_healthz_or_metrics(
    processes: list[ClientProcess], tmp_path: Path, transcript: Transcript
) -> None:
    port = free_port()
    with FaultReceiver() as rx:
        rx.require_authorization(BASIC)
        rx.respond(400, body=f"bad sample; request had Authorization: {BASIC}")
        rx.respond(503, times=3, body=f'{{"error": "busy", "token": "{TOKEN}"}}')
        url = rx.url.replace("http://", f"http://{USER}:{PASSWORD}@")
        client = ClientProcess(client_env(url, HEALTH_PORT=str(port)), tmp_path / "c.log")
        processes.append(client)
        client.wait_running()
        assert rx.wait_for(lambda rs: sum(r.accepted for r in rs) >= 3, timeout=15)
        transcript.add("healthz", requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).text)
        transcript.add("metrics", requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
        rx.go_down()  # failure warnings name the URL
        assert wait_until(lambda: "failed" in client.log(), timeout=10)
        _, body = get_health(port)
        transcript.add("healthz", json.dumps(body))
        assert client.terminate() == 0
    log = transcript.add("log", client.log())
    assert f"http://***@127.0.0.1:{rx.port}" not in log  # not even redacted: it has none now
    assert f"pushing to http://127.0.0.1:{rx.port}/api/v1/write" in log
    assert "bad sample; request had Authorization: Basic ***" in log  # the body, scrubbed


def test_a_mistyped_secret_flag_is_named_not_echoed(
    capsys: pytest.CaptureFixture[str], transcript: Transcript
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--remote-write-basic-auth-pasword", PASSWORD], {})
    err = transcript.add("error", capsys.readouterr().err)
    assert info.value.code == 2
    assert "--remote-write-basic-auth-pasword" in err
    assert "did you mean --remote-write-basic-auth-password?" in err


def test_a_secret_file_others_can_read_is_warned_about(
    processes: list[ClientProcess], tmp_path: Path, transcript: Transcript, rx: FaultReceiver
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o644)
    env = client_env(rx.url, REMOTE_WRITE_BEARER_TOKEN_FILE=str(token_file))
    client = ClientProcess(env, tmp_path / "c.log")
    processes.append(client)
    client.wait_running()
    assert client.terminate() == 0
    log = transcript.add("log", client.log())
    assert "readable by everyone" in log and "chmod 600" in log
    assert rx.records and rx.records[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_health_endpoint_listens_on_loopback_unless_told(pipelines: list[Pipeline]) -> None:
    config = ClientConfig(health_port=free_port(), instance="h")
    assert config.health_address == "127.0.0.1"
    pipeline = Pipeline(SyntheticClient(1), config)
    pipelines.append(pipeline)
    pipeline.start()
    assert pipeline._health is not None
    assert pipeline._health.server.server_address[0] == "127.0.0.1"


# -- 8, 9: refused at start, with a message ---------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"REMOTE_WRITE_URL": f"http://u:{PASSWORD}@127.0.0.1:99999/api/v1/write"},
         "REMOTE_WRITE_URL='http://***@127.0.0.1:99999/api/v1/write': Port out of range"),
        ({"REMOTE_WRITE_URL": "http://127.0.0.1:abc/api/v1/write"}, "Port could not be cast"),
        ({"PUSH_INTERVALS": "2"}, "did you mean PUSH_INTERVAL_S?"),
        ({"SPOOL_DIRECTORY": "/tmp/x"}, "did you mean SPOOL_DIR?"),
        ({"REMOTE_WRITE_BEARER_TOKN": TOKEN}, "did you mean REMOTE_WRITE_BEARER_TOKEN?"),
        ({"SPOOL_DIR": "/tmp/x", "SPOOL_MAX_BYTES": "0"}, "SPOOL_MAX_BYTES=0 is below one batch"),
        ({"EXTRA_LABELS": "job=mine"}, "EXTRA_LABELS: 'job' is set by the client"),
        ({"EXTRA_LABELS": "instance=x"}, "set INSTANCE instead"),
        ({"HEALTH_ADDRESS": "not an address"}, "HEALTH_ADDRESS='not an address'"),
        ({"REMOTE_WRITE_HEADERS": f"X-Key={TOKEN}\rX-Other: 1"}, "line break"),
    ],
    ids=["port-99999", "port-abc", "push-intervals", "spool-directory", "bearer-tokn",
         "spool-max-bytes-0", "extra-job", "extra-instance", "health-address", "header-cr"],
)  # fmt: skip
def test_refused_at_start_with_a_message_not_a_traceback(
    env: dict[str, str], expected: str, capsys: pytest.CaptureFixture[str],
    transcript: Transcript,
) -> None:  # fmt: skip
    rc, out = run_main(env, capsys=capsys)
    transcript.add("error", out)
    assert rc == 2
    assert expected in out
    assert_no_traceback(out)


def test_a_ca_file_that_is_not_a_bundle_is_refused_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], transcript: Transcript
) -> None:
    garbage = tmp_path / "ca.pem"
    garbage.write_text(
        "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"
    )
    env = {"REMOTE_WRITE_URL": "https://127.0.0.1:9/api/v1/write",
           "REMOTE_WRITE_CA_FILE": str(garbage)}  # fmt: skip
    rc, out = run_main(env, capsys=capsys)
    transcript.add("error", out)
    assert rc == 2 and f"REMOTE_WRITE_CA_FILE={garbage}: not a usable CA bundle" in out
    assert_no_traceback(out)


def test_a_health_address_of_another_host_names_health_address(
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {"REMOTE_WRITE_URL": "http://127.0.0.1:9/api/v1/write",
           "HEALTH_PORT": str(free_port()), "HEALTH_ADDRESS": "192.0.2.1"}  # fmt: skip
    rc, out = run_main(env, capsys=capsys)
    assert rc == 2
    assert "HEALTH_ADDRESS=192.0.2.1: cannot listen there" in out
    assert "HEALTH_PORT" not in out.split("HEALTH_ADDRESS", 1)[0]


def test_a_real_process_refused_at_start_exits_2(tmp_path: Path) -> None:
    env = {**os.environ, "REMOTE_WRITE_URL": "http://127.0.0.1:99999/api/v1/write"}
    done = subprocess.run(
        [sys.executable, "-m", "base_monitoring_client"], env=env, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "REMOTE_WRITE_URL" in done.stderr
    assert_no_traceback(done.stderr)


def test_shutdown_never_says_spooled_for_what_it_dropped(
    rx: FaultReceiver, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rx.go_down()
    # Built directly (the settings refuse it): a spool that cannot hold one batch.
    config = fast_config(rx.url, spool_dir=tmp_path / "spool", spool_max_bytes=30,
                         shutdown_timeout_s=0.2)  # fmt: skip
    pipeline = Pipeline(SyntheticClient(5), config)
    pipeline.start()
    threading.Event().wait(0.6)
    pipeline.stop()
    m = pipeline.metrics
    assert m.get("monitoring_client_samples_sent_total") == 0
    assert m.get(DROPPED, reason="spool_full") >= m.get(COLLECTED) > 0
    assert m.total(DROPPED) == m.get(DROPPED, reason="spool_full")
    assert "were dropped (counted)" in caplog.text
    assert "were spooled" not in caplog.text


# -- every output of the suite -------------------------------------------------------------------


def test_no_secret_in_anything_the_suite_produced(
    transcript: Transcript, rx: FaultReceiver, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Its own hostile run (credentials in the URL, a receiver that echoes them, a
    mistyped flag), then everything the suite collected."""
    rx.require_authorization(BASIC)
    url = rx.url.replace("http://", f"http://{USER}:{PASSWORD}@")
    rc, out = run_main({"REMOTE_WRITE_URL": url.replace(str(rx.port), "99999")}, capsys=capsys)
    assert rc == 2
    transcript.add("error", out)
    pipeline = Pipeline(SyntheticClient(2), fast_config(url, health_port=free_port()))
    pipeline.start()
    try:
        assert rx.wait_for(lambda rs: sum(r.accepted for r in rs) >= 1, timeout=10)
        rx.require_authorization("Bearer something-else")  # now every answer echoes ours
        assert rx.wait_for(lambda rs: any(r.status == 401 for r in rs), timeout=10)
        assert wait_until(lambda: pipeline.health()[0] == "unhealthy", timeout=10)
        transcript.add("healthz", json.dumps(pipeline.health()))
        transcript.add("metrics", pipeline.exposition())
    finally:
        pipeline.stop()
    everything = "\n".join(text for _, text in transcript.pieces)
    assert_no_secret("the suite's outputs", everything)
    assert {"healthz", "metrics", "error"} <= transcript.kinds
