"""Pipeline behaviour with injected clocks and a scripted transport (no network)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from base_monitoring_client.client import MonitoringClient
from base_monitoring_client.config import ClientConfig
from base_monitoring_client.errors import DeviceUnavailableError
from base_monitoring_client.pipeline import Pipeline
from base_monitoring_client.sample import Sample
from base_monitoring_client.sender import Backoff, Verdict, classify
from base_monitoring_client.transport import Outcome, parse_retry_after
from wattpush_testing import FakeClock, wait_until
from wattpush_testing.base import (
    InstantWaitClock,
    PushOnlyClient,
    ScriptedTransport,
    series,
)

NOW_MS = int(time.time() * 1000)


def data_points(
    transport: ScriptedTransport, metric: str = "test_value"
) -> list[tuple[str, float, int]]:
    return [p for batch in transport.accepted for p in batch if p[0].startswith(metric + ",")]


# -- sampler ------------------------------------------------------------------------------------


class TimedClient(MonitoringClient):
    """collect() takes a scripted amount of (virtual) time."""

    def __init__(self, clock: FakeClock, durations: list[float]) -> None:
        self.clock = clock
        self.durations = durations
        self.ticks: list[float] = []
        self.pipeline: Pipeline | None = None

    def collect(self, now_ns: int) -> Iterable[Sample]:
        self.ticks.append(self.clock.monotonic())
        self.clock.advance(self.durations[len(self.ticks) - 1])
        if len(self.ticks) == len(self.durations):
            assert self.pipeline is not None
            self.pipeline.lifecycle.stop_sampling.set()
        return [Sample("x", {}, 1.0, now_ns // 1_000_000)]


def test_sampler_is_drift_free_and_skips_ticks_after_a_slow_collect() -> None:
    clock = FakeClock()
    durations = [0.01, 0.099, 0.02, 0.35, 0.01, 0.0, 0.01]
    client = TimedClient(clock, durations)
    pipeline = Pipeline(client, ClientConfig(sample_interval_s=0.1), clock=clock,
                        transport=ScriptedTransport())  # fmt: skip
    client.pipeline = pipeline
    start = clock.monotonic()
    pipeline.sampler.run()
    offsets = [round((t - start) / 0.1, 9) for t in client.ticks]
    # Ticks stay on the 100 ms grid; the 350 ms collect at tick 3 ends at 0.65 s, so ticks
    # 4, 5, 6 are skipped (counted) and sampling resumes at 0.7 s, not bunched.
    assert offsets == [0, 1, 2, 3, 7, 8, 9]
    assert pipeline.metrics.get("monitoring_client_skipped_ticks_total") == 3
    assert pipeline.metrics.get("monitoring_client_collect_duration_seconds_count") == 7
    assert pipeline.metrics.get("monitoring_client_samples_collected_total") == 7


class FailingClient(MonitoringClient):
    """collect() fails now and then: a client error, a bug, a generator that breaks."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls = 0
        self.pipeline: Pipeline | None = None

    def collect(self, now_ns: int) -> Iterable[Sample]:
        self.calls += 1
        n = self.calls
        if n == 8:
            assert self.pipeline is not None
            self.pipeline.lifecycle.stop_sampling.set()
        if n in (2, 3):
            raise DeviceUnavailableError("sensor gone")
        if n in (4, 5):
            raise ZeroDivisionError("a bug")
        if n == 6:
            return (Sample("x", {}, 1.0, now_ns // 1_000_000) for _ in [1, 2] if 1 / 0)
        return [Sample("x", {}, float(n), now_ns // 1_000_000)]


def test_a_failing_collect_skips_its_tick_is_logged_once_per_kind_and_sampling_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    client = FailingClient(clock)
    pipeline = Pipeline(client, ClientConfig(sample_interval_s=0.1), clock=clock,
                        transport=ScriptedTransport())  # fmt: skip
    client.pipeline = pipeline
    with caplog.at_level(logging.ERROR, logger="base_monitoring_client"):
        pipeline.sampler.run()
    assert client.calls == 8
    assert pipeline.metrics.get("monitoring_client_collect_duration_seconds_count") == 8
    assert pipeline.metrics.get("monitoring_client_samples_collected_total") == 3  # 1, 7, 8
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("collect() failed: sensor gone") == 1
    raised = [r for r in caplog.records if "collect() raised" in r.getMessage()]
    assert len(raised) == 1 and raised[0].exc_info is not None  # with its traceback


# -- batching -----------------------------------------------------------------------------------


def test_batches_are_capped_at_max_samples_per_send() -> None:
    transport = ScriptedTransport()
    config = ClientConfig(max_samples_per_send=100, push_interval_s=60, instance="h")
    with Pipeline(PushOnlyClient(), config, transport=transport) as pipeline:
        pipeline.push(series(250, NOW_MS))
        assert wait_until(lambda: len(transport.accepted) >= 2, timeout=5)
        assert [len(b) for b in transport.accepted[:2]] == [100, 100]
        assert len(transport.accepted) == 2  # the last 50 wait for the deadline or a flush
    got = sorted(data_points(transport), key=lambda p: p[2])  # grouped by series on the wire
    assert [v for _, v, _ in got] == [float(i) for i in range(250)]


def test_push_interval_deadline_flushes_a_partial_batch() -> None:
    transport = ScriptedTransport()
    config = ClientConfig(max_samples_per_send=10_000, push_interval_s=0.3, instance="h")
    with Pipeline(PushOnlyClient(), config, transport=transport) as pipeline:
        pipeline.push(series(5, NOW_MS))
        assert wait_until(lambda: len(data_points(transport)) == 5, timeout=5)
        assert pipeline.pending_samples() == 0


def test_flush_waits_for_delivery() -> None:
    transport = ScriptedTransport()
    config = ClientConfig(push_interval_s=60, instance="h")
    with Pipeline(PushOnlyClient(), config, transport=transport) as pipeline:
        pipeline.push(series(7, NOW_MS))
        assert pipeline.flush(timeout=5)
        assert len(data_points(transport)) == 7


def test_out_of_order_and_invalid_samples_are_dropped_and_counted() -> None:
    transport = ScriptedTransport()
    config = ClientConfig(push_interval_s=60, instance="h")
    with Pipeline(PushOnlyClient(), config, transport=transport) as pipeline:
        pipeline.push([Sample("m", {}, 1.0, NOW_MS), Sample("m", {}, 2.0, NOW_MS)])
        pipeline.push([Sample("m", {}, 3.0, NOW_MS - 5), Sample("m", {}, 4.0, NOW_MS + 1)])
        pipeline.push([Sample("bad-name", {}, 1.0, NOW_MS), Sample("m2", {"a": "b"}, 1.0, 0)])
        assert pipeline.flush(timeout=5)
        m = pipeline.metrics
        assert m.get("monitoring_client_samples_dropped_total", reason="out_of_order") == 2
        assert m.get("monitoring_client_samples_dropped_total", reason="invalid_series") == 1
        assert m.get("monitoring_client_samples_dropped_total", reason="invalid_timestamp") == 1
    assert [(v, t) for _, v, t in data_points(transport, "m")] == [(1.0, NOW_MS), (4.0, NOW_MS + 1)]


def test_default_labels_job_instance_and_extra_labels() -> None:
    transport = ScriptedTransport()
    config = ClientConfig(push_interval_s=60, instance="box1", extra_labels={"site": "lab"})
    with Pipeline(PushOnlyClient(), config, transport=transport) as pipeline:
        pipeline.push([Sample("m", {"zone": "pkg"}, 1.0, NOW_MS)])
        assert pipeline.flush(timeout=5)
    keys = {k for k, _, _ in data_points(transport, "m")}
    assert keys == {"m,instance=box1,job=test-client,site=lab,zone=pkg"}


class VanishingClient(MonitoringClient):
    name = "vanishing"

    def __init__(self) -> None:
        self.tick = 0

    def collect(self, now_ns: int) -> Iterable[Sample]:
        self.tick += 1
        ts = now_ns // 1_000_000
        out = [Sample("kept", {}, 1.0, ts)]
        if self.tick <= 3:
            out.append(Sample("gone", {"gpu": "0"}, 5.0, ts))
        return out


def test_auto_stale_marker_sent_once_when_a_series_disappears() -> None:
    transport = ScriptedTransport()
    config = ClientConfig(sample_interval_s=0.02, push_interval_s=60, instance="h")
    with Pipeline(VanishingClient(), config, transport=transport) as pipeline:
        assert wait_until(lambda: pipeline.client.tick >= 8, timeout=5)  # type: ignore[attr-defined]
        assert pipeline.flush(timeout=5)
    gone = data_points(transport, "gone")
    values = [v for _, v, _ in gone]
    assert values[:3] == [5.0, 5.0, 5.0]
    assert len(values) == 4
    from base_monitoring_client.sample import is_stale_marker

    assert is_stale_marker(values[3])
    assert gone[3][2] > gone[2][2]


# -- retries ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retry_429", "verdict"),
    [
        (200, True, Verdict.SENT),
        (204, True, Verdict.SENT),
        (None, True, Verdict.RETRY),
        (500, True, Verdict.RETRY),
        (503, True, Verdict.RETRY),
        (429, True, Verdict.RETRY),
        (429, False, Verdict.DROP),
        (400, True, Verdict.DROP),
        (409, True, Verdict.DROP),
        (422, True, Verdict.DROP),
        # A configuration fix lets these through: held, not dropped.
        (401, True, Verdict.HOLD),
        (403, True, Verdict.HOLD),
        (404, True, Verdict.HOLD),
        (413, True, Verdict.SPLIT),
    ],
)
def test_classification(status: int | None, retry_429: bool, verdict: Verdict) -> None:
    assert classify(Outcome(status, None if status else "refused"), retry_429) is verdict


def test_backoff_is_exponential_with_jitter_and_bounded() -> None:
    backoff = Backoff(0.03, 5.0, random.Random(42))
    delays = [backoff.delay(n) for n in range(1, 40)]
    assert all(0.03 <= d <= 5.0 for d in delays)
    assert max(delays[:3]) <= 0.12
    assert min(delays[15:]) >= 2.5  # capped region: jitter within [max/2, max]
    assert len(set(delays)) > 30  # jittered


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None
    now = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(header, now=now.timestamp()) == pytest.approx(30.0)
    assert parse_retry_after("99999") == 600.0  # capped


def test_5xx_and_connection_errors_are_retried_in_order_with_bounded_backoff() -> None:
    clock = InstantWaitClock()
    transport = ScriptedTransport([503, None, 500])
    config = ClientConfig(push_interval_s=60, min_backoff_s=0.03, max_backoff_s=5, instance="h")
    with Pipeline(PushOnlyClient(), config, clock=clock, transport=transport) as pipeline:
        pipeline.push(series(10, NOW_MS))
        assert pipeline.flush(timeout=5)
        pipeline.push(series(10, NOW_MS + 100))
        assert pipeline.flush(timeout=5)
        assert pipeline.metrics.get("monitoring_client_samples_retried_total") == 30
        assert pipeline.metrics.get("monitoring_client_requests_total", code="503") == 1
        assert pipeline.metrics.get("monitoring_client_requests_total", code="error") == 1
    got = data_points(transport)
    assert sorted(v for _, v, _ in got) == sorted([float(i) for i in range(10)] * 2)
    assert [t for _, _, t in got[:10]] != [t for _, _, t in got[10:]]  # first batch first
    assert max(t for _, _, t in got[:10]) < min(t for _, _, t in got[10:])
    assert len(clock.waits) == 3
    assert all(0.03 <= w <= 5 for w in clock.waits)


def test_429_waits_retry_after_then_retries() -> None:
    clock = InstantWaitClock()
    transport = ScriptedTransport([(429, 7.0, "slow down")])
    config = ClientConfig(push_interval_s=60, instance="h")
    with Pipeline(PushOnlyClient(), config, clock=clock, transport=transport) as pipeline:
        pipeline.push(series(4, NOW_MS))
        assert pipeline.flush(timeout=5)
    assert clock.waits == [7.0]
    assert len(data_points(transport)) == 4


def test_4xx_is_dropped_counted_and_never_retried(caplog: pytest.LogCaptureFixture) -> None:
    transport = ScriptedTransport([(400, None, "out of bounds"), (400, None, "out of bounds")])
    config = ClientConfig(push_interval_s=60, instance="h")
    with Pipeline(PushOnlyClient(), config, transport=transport) as pipeline:
        for k in range(3):
            pipeline.push(series(5, NOW_MS + 10 * k))
            assert pipeline.flush(timeout=5)
        dropped = pipeline.metrics.get("monitoring_client_samples_dropped_total", reason="rejected")
        assert dropped == 10
        assert pipeline.metrics.get("monitoring_client_samples_retried_total") == 0
        assert len(transport.requests) == 3  # one per batch (stop() sends self-metrics later)
    assert len(data_points(transport)) == 5
    assert sum("out of bounds" in r.getMessage() for r in caplog.records) == 1  # once per reason


def test_429_dropped_when_retry_disabled() -> None:
    transport = ScriptedTransport([(429, 1.0, "")])
    config = ClientConfig(push_interval_s=60, retry_on_429=False, instance="h")
    with Pipeline(PushOnlyClient(), config, transport=transport) as pipeline:
        pipeline.push(series(3, NOW_MS))
        assert pipeline.flush(timeout=5)
        m = pipeline.metrics
        assert m.get("monitoring_client_samples_dropped_total", reason="rate_limited") == 3
        assert len(transport.requests) == 1


def test_queue_overflow_spills_to_spool_and_keeps_order(tmp_path) -> None:  # type: ignore[no-untyped-def]
    transport = ScriptedTransport([None] * 5)
    clock = InstantWaitClock()
    config = ClientConfig(push_interval_s=60, max_samples_per_send=10, queue_capacity=20,
                          spool_dir=tmp_path, instance="h")  # fmt: skip
    with Pipeline(PushOnlyClient(), config, clock=clock, transport=transport) as pipeline:
        for k in range(8):
            pipeline.push(series(10, NOW_MS + 100 * k))
        assert pipeline.flush(timeout=10)
        assert pipeline.metrics.total("monitoring_client_samples_dropped_total") == 0
    got = data_points(transport)
    assert len(got) == 80
    per_series: dict[str, list[int]] = {}
    for key, _, t in got:
        per_series.setdefault(key, []).append(t)
    for stamps in per_series.values():
        assert stamps == sorted(stamps)
    assert sorted(t for _, _, t in got) == sorted(
        NOW_MS + 100 * k + i for k in range(8) for i in range(10)
    )


def test_shutdown_without_spool_counts_undelivered_as_dropped() -> None:
    transport = ScriptedTransport([None] * 10_000)
    config = ClientConfig(push_interval_s=60, shutdown_timeout_s=0.2, max_backoff_s=0.05,
                          min_backoff_s=0.01, instance="h")  # fmt: skip
    pipeline = Pipeline(PushOnlyClient(), config, transport=transport)
    pipeline.start()
    pipeline.push(series(6, NOW_MS))
    pipeline.stop()
    pipeline.stop()  # idempotent
    assert pipeline.metrics.get("monitoring_client_samples_dropped_total", reason="shutdown") >= 6


def _in_backoff(transport: ScriptedTransport, spool_dir: Path) -> Pipeline:
    """A pipeline whose first send failed and now sleeps a long backoff, with a long budget:
    waiting either out would hold a restart for a minute."""
    config = ClientConfig(push_interval_s=60, shutdown_timeout_s=60, min_backoff_s=30,
                          max_backoff_s=60, spool_dir=spool_dir, instance="h")  # fmt: skip
    pipeline = Pipeline(PushOnlyClient(), config, transport=transport)
    pipeline.start()
    pipeline.push(series(6, NOW_MS))
    assert pipeline.flush(timeout=0.5) is False
    assert transport.requests
    return pipeline


def test_stop_while_the_receiver_fails_tries_once_more_then_spools_without_the_backoff(
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    down = ScriptedTransport([None] * 10_000)
    pipeline = _in_backoff(down, tmp_path)
    attempts = len(down.requests)
    began = time.monotonic()
    pipeline.stop()
    took = time.monotonic() - began
    assert len(down.requests) == attempts + 1  # exactly one more try, at once
    assert took < 10, f"stop() waited {took:.1f}s of backoff/budget"
    assert list(tmp_path.glob("*.seg"))
    assert pipeline.metrics.total("monitoring_client_samples_dropped_total") == 0


def test_stop_while_the_receiver_fails_still_sends_when_that_last_try_succeeds(
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    recovering = ScriptedTransport([None])  # the first POST fails, every later one succeeds
    _in_backoff(recovering, tmp_path).stop()
    assert sorted(t for _, _, t in data_points(recovering)) == [NOW_MS + i for i in range(6)]
    assert not list(tmp_path.glob("*.seg"))


def test_shutdown_spools_what_was_not_sent_and_next_run_sends_it_first(tmp_path) -> None:  # type: ignore[no-untyped-def]
    down = ScriptedTransport([None] * 10_000)
    config = ClientConfig(push_interval_s=60, shutdown_timeout_s=0.2, max_backoff_s=0.05,
                          min_backoff_s=0.01, spool_dir=tmp_path, instance="h")  # fmt: skip
    first = Pipeline(PushOnlyClient(), config, transport=down)
    first.start()
    first.push(series(6, NOW_MS))
    first.stop()
    assert list(tmp_path.glob("*.seg"))
    up = ScriptedTransport()
    with Pipeline(PushOnlyClient(), config, transport=up) as second:
        second.push(series(6, NOW_MS + 1000))
        assert second.flush(timeout=5)
    got = data_points(up)
    assert sorted(t for _, _, t in got[:6]) == [NOW_MS + i for i in range(6)]  # spooled first
    assert sorted(t for _, _, t in got[6:]) == [NOW_MS + 1000 + i for i in range(6)]
    assert not list(tmp_path.glob("*.seg"))
