"""Delivery under a misbehaving receiver (the delivery promises), over real HTTP.

The client is the built-in synthetic collector: its values are a pure function of series and
timestamp, so "exactly once, in order" is checked per series against the ticks it collected.
"""

from __future__ import annotations

import itertools
import logging
import math
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Container, Iterable, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from base_monitoring_client.client import MonitoringClient
from base_monitoring_client.config import ClientConfig
from base_monitoring_client.errors import ConfigError, DeviceUnavailableError, MonitoringClientError
from base_monitoring_client.pipeline import Pipeline
from base_monitoring_client.sample import Sample
from base_monitoring_client.spool import Spool
from base_monitoring_client.synthetic import SyntheticClient
from wattpush_testing import wait_until
from wattpush_testing.faults import ClientProcess, FaultReceiver, Point, RequestRecord

# Each test takes seconds; a hang fails fast with a stack dump instead of stalling the run.
pytestmark = pytest.mark.timeout(90)

METRIC = "synthetic_power_watts"
COLLECTED = "monitoring_client_samples_collected_total"
DROPPED = "monitoring_client_samples_dropped_total"


class RecordingSynthetic(SyntheticClient):
    """The synthetic collector, remembering the timestamp of every tick it produced."""

    def __init__(self, series: int = 5) -> None:
        super().__init__(series)
        self.ticks: list[int] = []
        self._lock = threading.Lock()

    def collect(self, now_ns: int) -> None:
        super().collect(now_ns)
        with self._lock:
            self.ticks.append(now_ns // 1_000_000)


def by_series(points: Iterable[Point], metric: str = METRIC) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for p in points:
        if p.name == metric:
            out[p.label("series")].append((p.timestamp_ms, p.value))
    return out


def describe(got: Sequence[int], want: Sequence[int]) -> str:
    dupes = len(got) - len(set(got))
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    unordered = sum(1 for a, b in itertools.pairwise(got) if b <= a)
    return (
        f"got {len(got)} want {len(want)}: {dupes} duplicates, {len(missing)} missing "
        f"{missing[:5]}, {len(extra)} unexpected {extra[:5]}, {unordered} out of order"
    )


def assert_exactly_once_in_order(
    points: Iterable[Point],
    series: int,
    ticks: Sequence[int],
    missing: Container[tuple[str, int]] = (),
) -> None:
    """Every series carries every tick (except ``missing``) once, in arrival order, with the
    value the synthetic formula gives."""
    got = by_series(points)
    assert set(got) <= {str(i) for i in range(series)}
    for i in range(series):
        key = str(i)
        want = [t for t in ticks if (key, t) not in missing]
        stamps = [t for t, _ in got.get(key, [])]
        assert stamps == want, f"series {key}: " + describe(stamps, want)
        for t, v in got.get(key, []):
            assert v == SyntheticClient.value_at(i, t), (key, t, v)


def fast_config(url: str, **overrides: Any) -> ClientConfig:
    values: dict[str, Any] = {
        "remote_write_url": url,
        "sample_interval_s": 0.05,
        "push_interval_s": 0.2,
        "min_backoff_s": 0.01,
        "max_backoff_s": 0.2,
        "remote_write_timeout_s": 2.0,
        "shutdown_timeout_s": 5.0,
        "instance": "fault-test",
    }
    values.update(overrides)
    return ClientConfig(**values)


def accepted_after(records: Sequence[RequestRecord], index: int, count: int = 1) -> bool:
    return sum(1 for r in records[index:] if r.accepted) >= count


def run_pipeline(
    pipelines: list[Pipeline], config: ClientConfig, series: int = 5
) -> tuple[Pipeline, RecordingSynthetic]:
    client = RecordingSynthetic(series)
    pipeline = Pipeline(client, config)
    pipelines.append(pipeline)
    pipeline.start()
    return pipeline, client


def statuses(records: Sequence[RequestRecord]) -> list[int | None]:
    return [r.status for r in records]


# -- 5xx, 429, 4xx ---------------------------------------------------------------------------


def test_503_burst_is_retried_and_every_sample_arrives_once_in_order(
    rx: FaultReceiver, pipelines: list[Pipeline]
) -> None:
    rx.respond(503, times=6, body="overloaded")
    pipeline, client = run_pipeline(pipelines, fast_config(rx.url))
    assert rx.wait_for(lambda rs: sum(r.accepted for r in rs) >= 3, timeout=15)
    pipeline.stop()

    records = rx.records
    assert statuses(records)[:6] == [503] * 6
    headers = records[0].headers
    assert headers["Content-Encoding"] == "snappy"
    assert headers["Content-Type"] == "application/x-protobuf"
    assert headers["X-Prometheus-Remote-Write-Version"] == "0.1.0"
    assert headers["User-Agent"].startswith("wattpush/")
    # Each 503 is followed by the same batch again: retried, not re-batched or reordered.
    for first, again in itertools.pairwise(records[:7]):
        assert again.points == first.points
    assert_exactly_once_in_order(rx.accepted_points(), 5, client.ticks)
    m = pipeline.metrics
    assert m.get("monitoring_client_requests_total", code="503") == 6
    assert m.get("monitoring_client_samples_retried_total") == sum(
        len(r.points) for r in records[:6]
    )
    assert m.total(DROPPED) == 0


def test_429_waits_retry_after_seconds_then_retries(
    rx: FaultReceiver, pipelines: list[Pipeline]
) -> None:
    rx.respond(429, headers={"Retry-After": "1"}, body="slow down")
    pipeline, client = run_pipeline(pipelines, fast_config(rx.url))
    assert rx.wait_for(lambda rs: len(rs) >= 2, timeout=15)
    pipeline.stop()

    first, retry = rx.records[:2]
    assert first.status == 429 and retry.accepted
    assert retry.points == first.points
    # The client sleeps Retry-After after it got the answer, so even the gap between the two
    # arrivals (which includes the answer's trip) is at least that long.
    assert retry.monotonic - first.monotonic >= 1.0
    assert_exactly_once_in_order(rx.accepted_points(), 5, client.ticks)
    assert pipeline.metrics.get("monitoring_client_requests_total", code="429") == 1
    assert pipeline.metrics.total(DROPPED) == 0


def test_429_waits_until_retry_after_http_date(
    rx: FaultReceiver, pipelines: list[Pipeline]
) -> None:
    # HTTP dates have whole seconds: pick one exactly, 2-3 s ahead.
    when = math.ceil(time.time()) + 2
    rx.respond(
        429, headers={"Retry-After": format_datetime(datetime.fromtimestamp(when, UTC), True)}
    )
    pipeline, client = run_pipeline(pipelines, fast_config(rx.url))
    assert rx.wait_for(lambda rs: len(rs) >= 2, timeout=15)
    pipeline.stop()

    first, retry = rx.records[:2]
    assert first.status == 429 and retry.accepted and retry.points == first.points
    assert retry.wall >= when - 0.001, f"retried {when - retry.wall:.3f}s before the date"
    assert_exactly_once_in_order(rx.accepted_points(), 5, client.ticks)


def test_429_with_retry_disabled_is_dropped_counted_and_not_retried(
    rx: FaultReceiver, pipelines: list[Pipeline]
) -> None:
    rx.respond(429, headers={"Retry-After": "1"})
    pipeline, client = run_pipeline(pipelines, fast_config(rx.url, retry_on_429=False))
    assert rx.wait_for(lambda rs: sum(r.accepted for r in rs) >= 3, timeout=15)
    pipeline.stop()

    refused, *rest = rx.records
    assert refused.status == 429 and all(r.accepted for r in rest)
    gone = set(refused.points)
    assert not gone & {p for r in rest for p in r.points}, "a 429 batch was sent again"
    assert rest[0].monotonic - refused.monotonic < 1.0  # Retry-After not waited for
    assert pipeline.metrics.get(DROPPED, reason="rate_limited") == len(refused.points)
    assert pipeline.metrics.total(DROPPED) == len(refused.points)
    lost = {(p.label("series"), p.timestamp_ms) for p in gone if p.name == METRIC}
    assert lost
    assert_exactly_once_in_order(rx.accepted_points(), 5, client.ticks, missing=lost)


def test_400_is_dropped_counted_never_retried_and_logged_once(
    rx: FaultReceiver, pipelines: list[Pipeline], caplog: pytest.LogCaptureFixture
) -> None:
    reason = "out of bounds: sample timestamp too old"
    rx.respond(400, times=2, body=reason)
    with caplog.at_level(logging.ERROR, logger="base_monitoring_client"):
        pipeline, client = run_pipeline(pipelines, fast_config(rx.url))
        assert rx.wait_for(lambda rs: sum(r.accepted for r in rs) >= 3, timeout=15)
        pipeline.stop()

    records = rx.records
    assert statuses(records)[:2] == [400, 400]
    rejected = [p for r in records[:2] for p in r.points]
    later = {p for r in records[2:] for p in r.points}
    assert not set(rejected) & later, "a rejected batch was sent again"
    assert pipeline.metrics.get(DROPPED, reason="rejected") == len(rejected)
    assert pipeline.metrics.total(DROPPED) == len(rejected)
    assert pipeline.metrics.get("monitoring_client_samples_retried_total") == 0
    assert sum(reason in r.getMessage() for r in caplog.records) == 1  # once per reason
    lost = {(p.label("series"), p.timestamp_ms) for p in rejected if p.name == METRIC}
    assert_exactly_once_in_order(rx.accepted_points(), 5, client.ticks, missing=lost)


# -- receiver gone, slow, or flaky -------------------------------------------------------------


def test_receiver_down_then_back_loses_nothing_and_keeps_order(
    rx: FaultReceiver, pipelines: list[Pipeline]
) -> None:
    pipeline, client = run_pipeline(pipelines, fast_config(rx.url))
    assert rx.wait_for(lambda rs: sum(r.accepted for r in rs) >= 2, timeout=15)
    rx.go_down()
    outage = threading.Event()
    outage.wait(1.5)  # refused connections meanwhile; sampling goes on
    ticks_during_outage = len(client.ticks)
    assert pipeline.metrics.get("monitoring_client_requests_total", code="error") >= 1
    seen = len(rx.records)
    rx.come_up()
    assert rx.wait_for(lambda rs: accepted_after(rs, seen, 3), timeout=15)
    pipeline.stop()

    assert ticks_during_outage >= 20
    assert_exactly_once_in_order(rx.accepted_points(), 5, client.ticks)
    assert pipeline.metrics.total(DROPPED) == 0


def test_receiver_hanging_past_the_timeout_is_retried_without_loss(
    rx: FaultReceiver, pipelines: list[Pipeline]
) -> None:
    rx.hang(5.0, times=2)
    config = fast_config(rx.url, remote_write_timeout_s=0.3)
    pipeline, client = run_pipeline(pipelines, config)
    assert rx.wait_for(lambda rs: sum(r.accepted for r in rs) >= 3, timeout=15)
    pipeline.stop()

    records = rx.records
    assert statuses(records)[:3] == [None, None, 204]
    assert records[1].points == records[0].points == records[2].points  # the same batch again
    assert records[1].monotonic - records[0].monotonic >= 0.3  # it waited for its timeout
    assert pipeline.metrics.get("monitoring_client_requests_total", code="error") == 2
    assert_exactly_once_in_order(rx.accepted_points(), 5, client.ticks)
    assert pipeline.metrics.total(DROPPED) == 0


def test_strict_per_series_order_across_many_small_requests_with_failures(
    rx: FaultReceiver, pipelines: list[Pipeline]
) -> None:
    for _ in range(15):
        rx.respond(204, times=2)
        rx.respond(503)
    # 7 samples per request splits every tick of 5 series across requests.
    config = fast_config(rx.url, max_samples_per_send=7, sample_interval_s=0.02)
    pipeline, client = run_pipeline(pipelines, config)
    assert rx.wait_for(lambda rs: len(rs) >= 45, timeout=20)
    pipeline.stop()

    assert statuses(rx.records).count(503) == 15
    assert_exactly_once_in_order(rx.accepted_points(), 5, client.ticks)

    def requests_carrying(key: str) -> int:
        return sum(
            1
            for r in rx.records
            if r.accepted and any(p.name == METRIC and p.label("series") == key for p in r.points)
        )

    assert min(requests_carrying(str(i)) for i in range(5)) >= 10  # order spans many requests


def test_memory_queue_overflow_to_spool_keeps_order(
    rx: FaultReceiver, pipelines: list[Pipeline], tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    config = fast_config(rx.url, queue_capacity=30, spool_dir=spool)
    rx.go_down()
    pipeline, client = run_pipeline(pipelines, config)
    # Memory holds 30 samples; the rest of the outage goes to disk behind them.
    assert wait_until(lambda: len(list(spool.glob("*.seg"))) >= 3, timeout=10)
    rx.come_up()
    assert wait_until(lambda: not list(spool.glob("*.seg")), timeout=15)
    seen = len(rx.records)
    assert rx.wait_for(lambda rs: accepted_after(rs, seen, 2), timeout=15)
    pipeline.stop()

    assert_exactly_once_in_order(rx.accepted_points(), 5, client.ticks)
    assert pipeline.metrics.total(DROPPED) == 0


# -- shutdown ------------------------------------------------------------------------------------


def test_shutdown_with_receiver_down_and_no_spool_counts_drops_as_shutdown(
    rx: FaultReceiver, pipelines: list[Pipeline], caplog: pytest.LogCaptureFixture
) -> None:
    rx.go_down()
    config = fast_config(rx.url, shutdown_timeout_s=0.3)
    pipeline = Pipeline(RecordingSynthetic(5), config)
    pipelines.append(pipeline)
    # Count the self-metric samples the pipeline adds, so the drop count can be exact.
    self_samples: list[int] = []
    to_samples = pipeline.metrics.to_samples

    def counting(timestamp_ms: int) -> list[Sample]:
        samples = to_samples(timestamp_ms)
        self_samples.append(len(samples))
        return samples

    pipeline.metrics.to_samples = counting  # type: ignore[method-assign]
    pipeline.start()
    threading.Event().wait(0.8)
    with caplog.at_level(logging.WARNING, logger="base_monitoring_client"):
        began = time.monotonic()
        pipeline.stop()
        took = time.monotonic() - began

    m = pipeline.metrics
    collected = m.get(COLLECTED)
    assert collected >= 50
    assert m.get("monitoring_client_samples_sent_total") == 0
    assert m.get(DROPPED, reason="shutdown") == collected + sum(self_samples)
    assert m.total(DROPPED) == m.get(DROPPED, reason="shutdown")
    assert any("set SPOOL_DIR" in r.getMessage() for r in caplog.records)
    assert took < 0.3 + config.remote_write_timeout_s + 1.5
    assert rx.records == []


# -- whole processes -----------------------------------------------------------------------------


def client_env(url: str, **extra: str) -> dict[str, str]:
    env = {
        "REMOTE_WRITE_URL": url,
        "SAMPLE_INTERVAL_S": "0.1",
        "PUSH_INTERVAL_S": "0.3",
        "MIN_BACKOFF_S": "0.01",
        "MAX_BACKOFF_S": "0.2",
        "SHUTDOWN_TIMEOUT_S": "5",
        "REMOTE_WRITE_TIMEOUT_S": "3",
        "INSTANCE": "fault-proc",
        "HEALTH_PORT": "0",
        "LOG_LEVEL": "info",
    }
    env.update(extra)
    return env


def last_value(points: Iterable[Point], name: str, before_ms: float = math.inf) -> float:
    """Value of the latest sample of a (label-less) self metric before a time."""
    hits = [p for p in points if p.name == name and p.timestamp_ms < before_ms]
    assert hits, f"no {name} received"
    return max(hits, key=lambda p: p.timestamp_ms).value


def assert_regular_ticks(
    points: Iterable[Point], series: int, interval_ms: int
) -> dict[str, list[tuple[int, float]]]:
    """All series carry the same ticks, each once, on the sampling grid, with correct values."""
    got = by_series(points)
    assert set(got) == {str(i) for i in range(series)}
    stamps0 = [t for t, _ in got["0"]]
    for i in range(series):
        pairs = got[str(i)]
        assert [t for t, _ in pairs] == stamps0, f"series {i} differs from series 0"
        for t, v in pairs:
            assert v == SyntheticClient.value_at(i, t)
    gaps = [b - a for a, b in itertools.pairwise(stamps0)]
    assert all(0.5 * interval_ms < g < 1.5 * interval_ms for g in gaps), gaps
    return got


def assert_fills_span(
    stamps: Sequence[int], skipped: float, max_lag_s: float, interval_ms: int = 100
) -> None:
    """Strictly increasing ticks whose count, with the ticks the client reported skipped,
    matches their span: no hole. A tick is stamped when it ran, up to the sampling lag the
    client reported after its deadline, so the first and last may stretch or shrink the span
    by that much (one tick more for rounding); single gaps on a loaded host say nothing."""
    assert all(b > a for a, b in itertools.pairwise(stamps)), "ticks not strictly increasing"
    span_ticks = (stamps[-1] - stamps[0]) / interval_ms + 1
    slack = 1 + max_lag_s * 1000 / interval_ms
    assert abs(len(stamps) + skipped - span_ticks) <= slack, (
        f"{len(stamps)} ticks + {skipped:g} skipped over a span of {span_ticks:.1f} ticks "
        f"(largest sampling lag {max_lag_s:.3f} s)"
    )


def test_sigterm_flushes_everything_and_exits_0(
    rx: FaultReceiver, processes: list[ClientProcess], tmp_path: Path
) -> None:
    # A long push interval: at SIGTERM nearly everything is still pending in memory.
    env = client_env(rx.url, PUSH_INTERVAL_S="30")
    client = ClientProcess(env, tmp_path / "client.log")
    processes.append(client)
    client.wait_running()
    threading.Event().wait(1.5)
    sigterm_ms = time.time() * 1000
    assert client.terminate() == 0, client.log()

    points = rx.accepted_points()
    got = assert_regular_ticks(points, 5, 100)
    stamps = [t for t, _ in got["0"]]
    assert len(stamps) >= 10
    assert stamps[-1] >= sigterm_ms - 250  # sampled until the signal
    # The final self-report counts every sample collected; each one arrived once.
    assert last_value(points, COLLECTED) == 5 * len(stamps)
    assert "signal SIGTERM received" in client.log()


def test_shutdown_with_receiver_down_spools_and_next_process_replays_in_order(
    processes: list[ClientProcess], tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    rx = FaultReceiver()  # port reserved, not listening yet: connections are refused
    env = client_env(rx.url, SPOOL_DIR=str(spool), SHUTDOWN_TIMEOUT_S="0.5")
    try:
        first = ClientProcess(env, tmp_path / "first.log")
        processes.append(first)
        first.wait_running()
        threading.Event().wait(1.5)
        assert first.terminate() == 0, first.log()
        first_end_ms = time.time() * 1000
        segments = list(spool.glob("*.seg"))
        assert segments, f"nothing spooled: {first.log()}"

        rx.start()
        second = ClientProcess(env, tmp_path / "second.log")
        processes.append(second)
        second.wait_running()
        assert wait_until(lambda: not list(spool.glob("*.seg")), timeout=20), second.log()
        seen = len(rx.records)
        assert rx.wait_for(lambda rs: accepted_after(rs, seen, 2), timeout=15)
        assert second.terminate() == 0, second.log()
    finally:
        rx.stop()

    assert "from an earlier run; sending them first" in second.log()
    points = rx.accepted_points()
    mine = [p for p in points if p.name == METRIC]
    # Older first: every sample of the first process arrives before any of the second.
    owners = [p.timestamp_ms < first_end_ms for p in mine]
    assert owners == sorted(owners, reverse=True) and owners[0] and not owners[-1]
    got = by_series(points)
    assert set(got) == {str(i) for i in range(5)}
    firsts = [t for t, _ in got["0"] if t < first_end_ms]
    seconds = [t for t, _ in got["0"] if t >= first_end_ms]
    for i in range(5):
        stamps = [t for t, _ in got[str(i)]]
        assert stamps == firsts + seconds, f"series {i}: " + describe(stamps, firsts + seconds)
        for t, v in got[str(i)]:
            assert v == SyntheticClient.value_at(i, t)
    # No hole but the ticks the client itself skipped (a loaded host delays a tick by tens of
    # ms or skips one, counted): the ticks fill their span.
    skipped, lag = "monitoring_client_skipped_ticks_total", "monitoring_client_sampling_lag_seconds"
    first_lag = max(p.value for p in points if p.name == lag and p.timestamp_ms < first_end_ms)
    second_lag = max(p.value for p in points if p.name == lag and p.timestamp_ms >= first_end_ms)
    assert_fills_span(firsts, last_value(points, skipped, before_ms=first_end_ms), first_lag)
    assert_fills_span(seconds, last_value(points, skipped), second_lag)
    # Each process's final self-report counts what it collected: all of it arrived, once.
    assert last_value(points, COLLECTED, before_ms=first_end_ms) == 5 * len(firsts)
    assert last_value(points, COLLECTED) == 5 * len(seconds)


# -- life-cycle edges (no silent loss, no leaks) -------------------------------------------------


class PushOnly(MonitoringClient):
    name = "fault-push"


def test_push_after_stop_is_refused_or_counted_never_lost_silently(
    rx: FaultReceiver, pipelines: list[Pipeline]
) -> None:
    pipeline = Pipeline(PushOnly(), fast_config(rx.url))
    pipelines.append(pipeline)
    pipeline.start()
    now_ms = int(time.time() * 1000)
    pipeline.push([Sample("late_value", {}, 1.0, now_ms)])
    pipeline.stop()
    refused = False
    try:
        pipeline.push([Sample("late_value", {}, 2.0, now_ms + 1)])
    except MonitoringClientError:
        refused = True
    m = pipeline.metrics
    assert [p.value for p in rx.accepted_points("late_value")] == [1.0]
    assert refused or m.total(DROPPED) == 1, (
        "push() after stop() was accepted, counted as collected, and neither sent nor dropped"
    )


class FailingSetup(MonitoringClient):
    name = "fault-setup"

    def __init__(self) -> None:
        self.closed = 0

    def setup(self) -> None:
        raise DeviceUnavailableError("no such device; plug it in")

    def collect(self, now_ns: int) -> Iterable[Sample]:
        return []

    def close(self) -> None:
        self.closed += 1


def test_stop_after_a_failed_start_is_a_no_op(rx: FaultReceiver) -> None:
    client = FailingSetup()
    pipeline = Pipeline(client, fast_config(rx.url))
    with pytest.raises(DeviceUnavailableError):
        pipeline.start()
    assert client.closed == 1
    pipeline.stop()  # a caller's finally: must not raise
    assert client.closed == 1


class Quiet(MonitoringClient):
    name = "fault-quiet"

    def __init__(self) -> None:
        self.closed = 0

    def collect(self, now_ns: int) -> Iterable[Sample]:
        return []

    def close(self) -> None:
        self.closed += 1


def test_failed_start_on_a_busy_health_port_releases_client_and_spool(
    rx: FaultReceiver, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        client = Quiet()
        config = fast_config(rx.url, spool_dir=spool, health_port=port, health_address="127.0.0.1")
        pipeline = Pipeline(client, config)
        with pytest.raises(ConfigError, match="HEALTH_PORT"):
            pipeline.start()
    assert client.closed == 1, "setup() ran but close() was never called"
    Spool(spool, 1 << 20).close()  # the spool lock was released: a retry can start


def test_stop_with_a_hanging_receiver_keeps_the_shutdown_budget_and_spools_the_rest(
    rx: FaultReceiver, pipelines: list[Pipeline], tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    rx.hang(60.0, times=1000)
    # A generous request timeout, a short shutdown budget: an orchestrator kills the process
    # soon after SHUTDOWN_TIMEOUT_S, so stop() must not wait for the hung request.
    config = fast_config(
        rx.url, spool_dir=spool, remote_write_timeout_s=8.0, shutdown_timeout_s=0.5
    )
    pipeline, client = run_pipeline(pipelines, config)
    assert rx.wait_for(lambda rs: len(rs) >= 1, timeout=10)
    threading.Event().wait(0.5)
    began = time.monotonic()
    pipeline.stop()
    took = time.monotonic() - began
    assert list(spool.glob("*.seg")), "nothing spooled"
    assert took < config.shutdown_timeout_s + 2.0, f"stop() took {took:.1f}s"

    # Nothing was accepted; the next run on the same spool delivers all of it once, in order.
    rx.clear_script()
    again, later = run_pipeline(pipelines, fast_config(rx.url, spool_dir=spool))
    assert wait_until(lambda: not list(spool.glob("*.seg")), timeout=15)
    again.stop()
    assert_exactly_once_in_order(rx.accepted_points(), 5, client.ticks + later.ticks)
