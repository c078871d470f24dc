"""SelfMetrics: lock-free cells add into every read; the lag gauge keeps its maximum."""

from __future__ import annotations

import threading

import pytest
from base_monitoring_client.selfmetrics import SelfMetrics

COLLECTED = "monitoring_client_samples_collected_total"
LAG = "monitoring_client_sampling_lag_seconds"


def test_cells_add_to_the_locked_counter_in_every_read() -> None:
    metrics = SelfMetrics("1.0")
    metrics.inc(COLLECTED, 5)  # push() from any thread
    mine, other = metrics.cell(COLLECTED), metrics.cell(COLLECTED)
    mine.value += 3
    other.value += 2
    assert metrics.get(COLLECTED) == 10
    assert metrics.total(COLLECTED) == 10
    assert metrics.snapshot()[(COLLECTED, ())] == 10
    assert f'{COLLECTED}{{job="j"}} 10.0' in metrics.exposition({"job": "j"})
    [sample] = [s for s in metrics.to_samples(1000) if s.name == COLLECTED]
    assert sample.value == 10


def test_cells_are_only_for_unlabelled_counters() -> None:
    metrics = SelfMetrics("1.0")
    with pytest.raises(ValueError, match="unlabelled counters"):
        metrics.cell("monitoring_client_samples_dropped_total")
    with pytest.raises(ValueError, match="unlabelled counters"):
        metrics.cell("monitoring_client_pending_samples")


def test_one_writer_per_cell_loses_nothing_under_concurrent_reads() -> None:
    metrics = SelfMetrics("1.0")
    cells = [metrics.cell(COLLECTED) for _ in range(4)]
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            metrics.snapshot()

    reader = threading.Thread(target=read, name="reader")
    reader.start()

    def write(cell_index: int) -> None:
        for _ in range(20_000):
            cells[cell_index].value += 1

    writers = [threading.Thread(target=write, args=(i,), name=f"w{i}") for i in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    reader.join()
    assert metrics.get(COLLECTED) == 80_000


def test_lag_gauge_reports_the_maximum_since_the_last_report() -> None:
    metrics = SelfMetrics("1.0")
    for lag in (0.002, 0.010, 0.004):
        metrics.observe_lag(lag)
    assert metrics.snapshot()[(LAG, ())] == 0.010
    [first] = [s for s in metrics.to_samples(1000) if s.name == LAG]
    assert first.value == 0.010
    metrics.observe_lag(0.001)  # a new report period starts from zero
    [second] = [s for s in metrics.to_samples(2000) if s.name == LAG]
    assert second.value == 0.001


def test_reports_reuse_one_label_dict_per_series() -> None:
    metrics = SelfMetrics("1.0")
    metrics.inc("monitoring_client_samples_dropped_total", 2, reason="queue_full")
    first = {(s.name, tuple(s.labels.items())): s.labels for s in metrics.to_samples(1000)}
    again = {(s.name, tuple(s.labels.items())): s.labels for s in metrics.to_samples(2000)}
    assert first.keys() == again.keys()
    assert all(first[k] is again[k] for k in first)  # the series table's identity cache hits
