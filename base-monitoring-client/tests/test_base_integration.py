"""The pipeline against real receivers: Prometheus 2.42 and VictoriaMetrics.

Samples go in through ``Pipeline`` (collect() and push()) and come back through the HTTP query
API (a range selector returns every stored sample), compared value by value and millisecond by
millisecond. Where a receiver itself changes a value, the test states what it returns.
"""

from __future__ import annotations

import math
import struct
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from base_monitoring_client import __version__
from base_monitoring_client.client import MonitoringClient
from base_monitoring_client.config import ClientConfig, load_config
from base_monitoring_client.hostinfo import read_host_info
from base_monitoring_client.pipeline import Pipeline
from base_monitoring_client.sample import Sample
from wattpush_testing import (
    PrometheusProcess,
    ReceiverProcess,
    VictoriaMetricsProcess,
    wait_until,
)

pytestmark = pytest.mark.integration

RECEIVERS = ["prometheus", "victoria-metrics"]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusProcess]:
    with PrometheusProcess(tmp_path_factory.mktemp("prom")) as prom:
        yield prom


@pytest.fixture(scope="module")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetricsProcess]:
    with VictoriaMetricsProcess(tmp_path_factory.mktemp("vm")) as vm:
        yield vm


@pytest.fixture(params=RECEIVERS)
def receiver(request: pytest.FixtureRequest) -> ReceiverProcess:
    name = "prometheus" if request.param == "prometheus" else "victoria"
    rcv: ReceiverProcess = request.getfixturevalue(name)
    return rcv


class PushOnly(MonitoringClient):
    name = "it-push"


def bits(value: float) -> int:
    return int(struct.unpack("<Q", struct.pack("<d", value))[0])


Stored = dict[tuple[tuple[str, str], ...], list[tuple[int, str]]]


def stored(
    receiver: ReceiverProcess, selector: str, first_ms: int, last_ms: int, series: int = 1
) -> Stored:
    """Every stored sample per series: {sorted labels: [(timestamp ms, value text)]}.

    Waits (bounded) until ``series`` series are visible: VictoriaMetrics registers new series
    in its index about a second after accepting them.
    """

    def fetch() -> Stored:
        result = receiver.raw_samples(selector, (first_ms - 1) / 1000, (last_ms + 1) / 1000)
        out: Stored = {}
        for found in result:
            key = tuple(sorted(found["metric"].items()))
            out[key] = [(round(float(t) * 1000), v) for t, v in found["values"]]
        return out

    def enough() -> Stored | None:
        found = fetch()
        return found if len(found) >= series else None

    got: Stored | None = wait_until(enough, timeout=10.0)
    return got or fetch()


def run_push(receiver: ReceiverProcess, samples: list[Sample], **config: Any) -> Pipeline:
    values: dict[str, Any] = {
        "remote_write_url": receiver.write_url,
        "push_interval_s": 0.2,
        "instance": "it-host",
        "min_backoff_s": 0.01,
        "max_backoff_s": 0.2,
    }
    values.update(config)
    pipeline = Pipeline(PushOnly(), ClientConfig(**values))
    pipeline.start()
    try:
        pipeline.push(samples)
        assert pipeline.flush(timeout=10)
    finally:
        pipeline.stop()
    assert pipeline.metrics.total("monitoring_client_samples_dropped_total") == 0
    return pipeline


# What each receiver gives back for awkward float64 values. "exact" = the same bits;
# "absent" = not stored; "same" = equal as a number but the sign of zero is lost;
# a float = relative error bound (VictoriaMetrics stores values as decimals, ~12-15 digits).
SPECIAL_VALUES: list[tuple[str, float, str, Any]] = [
    # case, value, Prometheus' text, VictoriaMetrics
    ("zero", 0.0, "0", "exact"),
    ("negzero", -0.0, "-0", "same"),
    ("tiny", 1e-300, "1e-300", "exact"),
    ("denormal", 5e-324, "5e-324", 0.0),  # VictoriaMetrics flushes it to 0
    ("huge", 1.7976931348623157e308, "1.7976931348623157e+308", 1e-15),
    ("neghuge", -1e300, "-1e+300", "exact"),
    ("nan", math.nan, "NaN", "absent"),
    ("posinf", math.inf, "+Inf", "exact"),
    ("neginf", -math.inf, "-Inf", "exact"),
    ("third", 1 / 3, "0.3333333333333333", 1e-12),
    ("long", 123456789.12345679, "123456789.12345679", 1e-15),
    ("int53", 2.0**53, "9007199254740992", "exact"),
    ("tenth", 0.1, "0.1", "exact"),
    ("e21", 1e21, "1e+21", "exact"),
    ("e-7", 1e-7, "1e-07", "exact"),
]


def test_special_values_round_trip_through_push(receiver: ReceiverProcess) -> None:
    start_ms = int(time.time() * 1000) - 60_000
    samples = [
        Sample("it_special_value", {"case": case}, value, start_ms + 10 * i + k)
        for i, (case, value, _, _) in enumerate(SPECIAL_VALUES)
        for k in range(3)  # three samples per series, 1 ms apart
    ]
    run_push(receiver, samples)
    expected = sum(
        1 for *_, vm in SPECIAL_VALUES if receiver.kind == "prometheus" or vm != "absent"
    )
    sel = '{__name__="it_special_value",job="it-push"}'
    got = stored(receiver, sel, start_ms, start_ms + 500, expected)
    assert len(got) == expected
    by_case = {dict(key)["case"]: points for key, points in got.items()}
    for i, (case, value, prom_text, vm_expect) in enumerate(SPECIAL_VALUES):
        stamps = [start_ms + 10 * i + k for k in range(3)]
        if receiver.kind == "victoria-metrics" and vm_expect == "absent":
            assert case not in by_case, f"{case}: VictoriaMetrics 1.79 drops NaN samples"
            continue
        points = by_case[case]
        assert [t for t, _ in points] == stamps, case  # timestamps exact, each once
        for _, text in points:
            back = float(text)
            if receiver.kind == "prometheus":
                assert text == prom_text, case
                assert math.isnan(back) if math.isnan(value) else bits(back) == bits(value), case
            elif vm_expect == "exact":
                assert bits(back) == bits(value), (case, text)
            elif vm_expect == "same":
                assert back == value, (case, text)
            elif vm_expect == 0.0:
                assert back == 0.0, (case, text)
            else:
                assert math.isclose(back, value, rel_tol=vm_expect, abs_tol=0.0), (case, text)


class ManySeries(MonitoringClient):
    """N series with awkward label values; values are decimal-exact so every receiver keeps
    them bit for bit."""

    name = "it-many"
    DEV = 'gpu "{i}" ünï ✓ \\ back\\slash, comma=eq {{braces}} 日本'

    def __init__(self, series: int, ticks: int) -> None:
        self.series = series
        self.max_ticks = ticks
        self.ticks: list[int] = []
        self.done = threading.Event()

    def labels(self, i: int) -> dict[str, str]:
        return {"dev": self.DEV.format(i=i), "quote": 'it\'s "quoted"', "idx": str(i)}

    @staticmethod
    def value(i: int, tick: int) -> float:
        return i * 1000.0 + tick * 0.25 - 7.5

    def collect(self, now_ns: int) -> Iterable[Sample]:
        if len(self.ticks) >= self.max_ticks:
            self.done.set()
            return []
        ts = now_ns // 1_000_000
        tick = len(self.ticks)
        self.ticks.append(ts)
        return [
            Sample("it_many_value", self.labels(i), self.value(i, tick), ts)
            for i in range(self.series)
        ]


def test_many_series_extra_labels_and_unicode_labels_through_collect(
    receiver: ReceiverProcess,
) -> None:
    env = {
        "REMOTE_WRITE_URL": receiver.write_url,
        "SAMPLE_INTERVAL_S": "0.05",
        "PUSH_INTERVAL_S": "0.2",
        "MAX_SAMPLES_PER_SEND": "700",
        "EXTRA_LABELS": "site=lab-1, rack=r 7",
        "INSTANCE": "it-host",
    }
    config, _ = load_config(env=env)
    client = ManySeries(series=400, ticks=12)
    # Every series stops at once: auto_stale would add markers the comparison doesn't want.
    client.auto_stale = False
    with Pipeline(client, config) as pipeline:
        assert client.done.wait(10)
        assert pipeline.flush(timeout=15)
    assert pipeline.metrics.total("monitoring_client_samples_dropped_total") == 0
    assert pipeline.metrics.get("monitoring_client_requests_total", code="204") >= 7

    got = stored(receiver, '{__name__="it_many_value",job="it-many"}', client.ticks[0],
                 client.ticks[-1], client.series)  # fmt: skip
    assert len(got) == client.series
    for i in range(client.series):
        labels = {
            "__name__": "it_many_value",
            "job": "it-many",
            "instance": "it-host",
            "site": "lab-1",
            "rack": "r 7",
            **client.labels(i),
        }
        key = tuple(sorted(labels.items()))
        assert key in got, f"series {i} missing or its labels changed"
        want = [(ts, client.value(i, tick)) for tick, ts in enumerate(client.ticks)]
        assert [(t, float(v)) for t, v in got[key]] == want, i


def test_self_metrics_arrive_with_the_data(prometheus: PrometheusProcess) -> None:
    now_ms = int(time.time() * 1000)
    run_push(prometheus, [Sample("it_self_probe", {}, 1.0, now_ms)], instance="selfm")
    info = prometheus.query('monitoring_client_info{job="it-push",instance="selfm"}')
    assert [(r["metric"]["version"], r["value"][1]) for r in info] == [(__version__, "1")]
    collected = prometheus.query(
        'monitoring_client_samples_collected_total{job="it-push",instance="selfm"}'
    )
    assert [r["value"][1] for r in collected] == ["1"]
    host = prometheus.query('wattpush_host_info{job="it-push",instance="selfm"}')
    facts = read_host_info()
    assert [(r["metric"]["cpu_model"], r["metric"]["cores"]) for r in host] == [
        (facts.cpu_model, str(facts.cores))
    ]


class Vanishing(MonitoringClient):
    """Series "b" is collected for the first ``keep`` ticks only; "a" always."""

    name = "it-stale"

    def __init__(self, keep: int, total: int) -> None:
        self.keep = keep
        self.total = total
        self.ticks: list[int] = []
        self.done = threading.Event()

    def collect(self, now_ns: int) -> Iterable[Sample]:
        if len(self.ticks) >= self.total:
            self.done.set()
            return []
        ts = now_ns // 1_000_000
        self.ticks.append(ts)
        out = [Sample("it_stale_value", {"s": "a"}, 1.0, ts)]
        if len(self.ticks) <= self.keep:
            out.append(Sample("it_stale_value", {"s": "b"}, 2.0, ts))
        return out


def test_auto_stale_marker_ends_a_vanished_series(receiver: ReceiverProcess) -> None:
    client = Vanishing(keep=5, total=12)
    config = ClientConfig(
        remote_write_url=receiver.write_url,
        sample_interval_s=0.05,
        push_interval_s=0.2,
        instance="it-host",
    )
    with Pipeline(client, config) as pipeline:
        assert client.done.wait(10)
        assert pipeline.flush(timeout=10)
    ticks = client.ticks
    last_b, marker = ticks[4], ticks[5]  # the marker carries the first tick without "b"
    b_sel = 'it_stale_value{job="it-stale",s="b"}'
    a_sel = 'it_stale_value{job="it-stale",s="a"}'

    def instant(at_ms: int) -> list[str]:
        found = receiver.query('it_stale_value{job="it-stale"}', at=at_ms / 1000)
        return sorted(r["metric"]["s"] for r in found)

    # VictoriaMetrics answers instant queries for new series after about a second.
    assert wait_until(lambda: instant(last_b) == ["a", "b"], timeout=10)
    # The range selector up to the last sample of "b" has all of it.
    before = stored(receiver, b_sel, ticks[0], last_b)
    assert [[t for t, _ in pts] for pts in before.values()] == [ticks[:5]]
    a_points = stored(receiver, a_sel, ticks[0], ticks[-1])
    assert [[t for t, _ in pts] for pts in a_points.values()] == [ticks]
    assert instant(last_b) == ["a", "b"]
    assert instant(marker - 1) == ["a", "b"]  # within the look-back, before the marker
    if receiver.kind == "prometheus":
        # After the marker the series is gone at once, not after the 5 min look-back.
        assert instant(marker) == ["a"]
        assert instant(ticks[-1]) == ["a"]
        # A range over the marker still shows only the real samples.
        after = stored(receiver, b_sel, ticks[0], ticks[-1])
        assert [[t for t, _ in pts] for pts in after.values()] == [ticks[:5]]
    else:
        # VictoriaMetrics 1.79 predates staleness support (1.84): it stores the marker as a
        # NaN sample at the right time, and instant queries keep using the look-back.
        after = stored(receiver, b_sel, ticks[0], ticks[-1])
        assert list(after.values()) == [[(t, "2") for t in ticks[:5]] + [(marker, "NaN")]]


def test_explicit_stale_marker_through_push(prometheus: PrometheusProcess) -> None:
    start_ms = int(time.time() * 1000) - 30_000
    labels = {"event": "window-1"}
    run_push(
        prometheus,
        [Sample("it_window_active", labels, 1.0, start_ms + k) for k in range(3)]
        + [Sample.stale("it_window_active", labels, start_ms + 3)],
    )
    sel = 'it_window_active{job="it-push"}'
    assert len(prometheus.query(sel, at=(start_ms + 2) / 1000)) == 1
    assert prometheus.query(sel, at=(start_ms + 3) / 1000) == []
    got = stored(prometheus, sel, start_ms, start_ms + 10)
    assert [[t for t, _ in pts] for pts in got.values()] == [[start_ms, start_ms + 1, start_ms + 2]]
