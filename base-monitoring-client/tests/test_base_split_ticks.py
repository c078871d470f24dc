"""Clients that split their ticks: read() on the sampler thread, decode() where frames are
batched (or processed), in tick order, with the same values and timestamps as collect()."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterable
from typing import Any

import pytest
from base_monitoring_client.client import MonitoringClient
from base_monitoring_client.config import ClientConfig
from base_monitoring_client.errors import DeviceUnavailableError
from base_monitoring_client.pipeline import Pipeline
from base_monitoring_client.sample import Sample, is_stale_marker
from wattpush_testing import wait_until
from wattpush_testing.base import ScriptedTransport


class SplitClient(MonitoringClient):
    """read() captures a counter; decode() turns it into a value (and a now-and-then series)."""

    name = "split"

    def __init__(self, fail_read: tuple[int, ...] = (), fail_decode: tuple[int, ...] = ()) -> None:
        self.fail_read = fail_read
        self.fail_decode = fail_decode
        self.reads = 0
        self.read_threads: set[str] = set()
        self.decode_threads: set[str] = set()
        self.decoded: list[tuple[int, int]] = []  # (now_ns, raw)
        self.stamps: dict[int, int] = {}  # raw -> now_ns given to read()

    def read(self, now_ns: int) -> int:
        self.reads += 1
        self.read_threads.add(threading.current_thread().name)
        if self.reads in self.fail_read:
            raise DeviceUnavailableError("sensor gone")
        self.stamps[self.reads] = now_ns
        return self.reads

    def decode(self, now_ns: int, raw: Any) -> Iterable[Sample] | None:
        self.decode_threads.add(threading.current_thread().name)
        self.decoded.append((now_ns, raw))
        if raw in self.fail_decode:
            raise ValueError("garbled")
        self.handle("split_reads_total").set(float(raw))
        if raw <= 2:  # a series that ends: auto-stale marks it
            return [Sample("split_early", {"phase": "start"}, 1.0, now_ns // 1_000_000)]
        return None


def run_pipeline(
    client: SplitClient, ticks: int, **config: Any
) -> tuple[Pipeline, ScriptedTransport]:
    transport = ScriptedTransport()
    cfg = ClientConfig(sample_interval_s=0.02, push_interval_s=60, instance="h", **config)
    with Pipeline(client, cfg, transport=transport) as pipeline:
        assert wait_until(lambda: client.reads >= ticks, timeout=10)
        assert pipeline.flush(timeout=10)
    return pipeline, transport


def points(transport: ScriptedTransport, metric: str) -> list[tuple[float, int]]:
    return [
        (v, ts) for batch in transport.accepted for k, v, ts in batch if k.startswith(metric + ",")
    ]


def test_read_runs_on_the_sampler_decode_in_the_batcher_in_tick_order() -> None:
    client = SplitClient()
    pipeline, transport = run_pipeline(client, 8)
    assert client.read_threads == {"sampler"}
    assert client.decode_threads == {"batcher"}
    raws = [raw for _, raw in client.decoded]
    assert raws == sorted(raws) and raws[0] == 1
    # Each tick is decoded with the time read() got, and stored at that time.
    assert all(client.stamps[raw] == now_ns for now_ns, raw in client.decoded)
    stored = points(transport, "split_reads_total")
    assert stored[:8] == [(float(r), client.stamps[r] // 1_000_000) for r in range(1, 9)]
    assert pipeline.metrics.get("monitoring_client_samples_collected_total") >= 8


def test_series_missing_from_a_decoded_tick_get_a_stale_marker_once() -> None:
    _, transport = run_pipeline(SplitClient(), 6)
    early = points(transport, "split_early")
    assert [v for v, _ in early[:2]] == [1.0, 1.0]
    assert len(early) == 3 and is_stale_marker(early[2][0])
    assert early[2][1] > early[1][1]


def test_failing_read_or_decode_skips_that_tick_is_logged_once_and_sampling_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = SplitClient(fail_read=(2, 3), fail_decode=(5, 6))
    with caplog.at_level(logging.ERROR, logger="base_monitoring_client"):
        pipeline, transport = run_pipeline(client, 10)
    values = [v for v, _ in points(transport, "split_reads_total")]
    # Ticks 2 and 3 never reached decode(); 5 and 6 did, and were dropped with their frames.
    assert values[:5] == [1.0, 4.0, 7.0, 8.0, 9.0]
    assert [raw for _, raw in client.decoded][:3] == [1, 4, 5]
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("read() failed: sensor gone") == 1
    raised = [r for r in caplog.records if "decode() raised" in r.getMessage()]
    assert len(raised) == 1 and raised[0].exc_info is not None
    assert pipeline.metrics.get("monitoring_client_collect_duration_seconds_count") >= 10


class ProcessingSplitClient(SplitClient):
    def process(self, samples: list[Sample]) -> list[Sample]:
        self.decode_threads.add("process:" + threading.current_thread().name)
        return [dataclasses.replace(s, value=s.value * 10) for s in samples]


def test_with_process_the_batcher_thread_decodes_then_processes() -> None:
    client = ProcessingSplitClient()
    _, transport = run_pipeline(client, 4)
    assert client.decode_threads == {"batcher", "process:batcher"}
    assert [v for v, _ in points(transport, "split_early")][:2] == [10.0, 10.0]
    assert [v for v, _ in points(transport, "split_reads_total")][:4] == [1.0, 2.0, 3.0, 4.0]


def test_ticks_read_before_stop_are_decoded_and_sent() -> None:
    client = SplitClient()
    transport = ScriptedTransport()
    cfg = ClientConfig(sample_interval_s=0.01, push_interval_s=60, instance="h")
    with Pipeline(client, cfg, transport=transport):
        assert wait_until(lambda: client.reads >= 5, timeout=10)
    read = [r for r in client.stamps]
    assert [int(v) for v, _ in points(transport, "split_reads_total")] == read


def test_collect_on_a_split_client_is_decode_of_read() -> None:
    client = SplitClient()
    frame = client.series_table.begin(1000)
    assert client.collect(2_000_000) is not None  # raw 1 returns its Sample
    assert client.decoded == [(2_000_000, 1)]
    assert list(frame.values) == [1.0]


def test_a_client_without_collect_or_read_names_both() -> None:
    with pytest.raises(NotImplementedError, match=r"collect\(\), or read\(\) and decode\(\)"):
        MonitoringClient().collect(0)
