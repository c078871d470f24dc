"""The client's own health figures: counted once, pushed with the data and served on /metrics."""

from __future__ import annotations

import logging
import math
import os
import resource
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from .hostinfo import HOST_INFO_LABELS, HOST_INFO_METRIC, HostInfo
from .sample import Sample

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class MetricFamily:
    name: str
    kind: str  # "counter" | "gauge"
    help: str
    label_names: tuple[str, ...] = ()


class Cell:
    """One thread's share of an unlabelled counter: that thread adds to ``value`` with no lock
    and no lookup (a 10 Hz sampler pays for every call); readers see the last whole value."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0


_problem_log = logging.getLogger("base_monitoring_client.pipeline")


class Problems:
    """What the stages report about what went wrong, in one place: samples dropped (counted by
    reason), errors logged once per kind, errors a stage thread survived, spool files set
    aside. Every stage reaches it through its ``SelfMetrics`` (``metrics.problems``)."""

    def __init__(self, metrics: SelfMetrics) -> None:
        self._metrics = metrics
        self._logged: set[str] = set()

    def drop(self, reason: str, count: int) -> None:
        if count:
            self._metrics.inc("monitoring_client_samples_dropped_total", count, reason=reason)

    def log_once(self, key: str, msg: str, *args: object, exc: bool = False) -> None:
        if key not in self._logged:
            if len(self._logged) < 1000:  # bounded: keys can hold receiver text
                self._logged.add(key)
            _problem_log.error(msg, *args, exc_info=exc)

    def stage_error(self, stage: str) -> None:
        """An error a stage thread survived (call it while handling the exception)."""
        self._metrics.inc("monitoring_client_stage_errors_total", stage=stage)
        self.log_once(
            f"{stage}:error", "%s: unexpected error; the stage goes on (logged once)", stage,
            exc=True,
        )  # fmt: skip

    def quarantined(self, reason: str) -> None:
        self._metrics.inc("monitoring_client_spool_quarantined_total", reason=reason)


class SelfMetrics:
    """Thread-safe counters and gauges keyed by (family, label values).

    A counter may also have cells (``cell()``), each written by one thread only; every read
    (``get``, ``total``, snapshots) adds the cells to the locked value.
    """

    FAMILIES = (
        MetricFamily("monitoring_client_samples_collected_total", "counter",
                     "Samples produced by collect() or push()."),
        MetricFamily("monitoring_client_samples_sent_total", "counter",
                     "Samples accepted by the receiver."),
        MetricFamily("monitoring_client_samples_dropped_total", "counter",
                     "Samples given up, by reason.", ("reason",)),
        MetricFamily("monitoring_client_samples_retried_total", "counter",
                     "Samples sent again after a failed attempt."),
        MetricFamily("monitoring_client_requests_total", "counter",
                     "Remote-write requests by HTTP status (or 'error' when none came).",
                     ("code",)),
        MetricFamily("monitoring_client_pending_samples", "gauge",
                     "Samples waiting in memory to be sent."),
        MetricFamily("monitoring_client_spool_bytes", "gauge", "Bytes held in the disk spool."),
        MetricFamily("monitoring_client_spool_samples", "gauge", "Samples held in the disk spool."),
        MetricFamily("monitoring_client_spool_quarantined_total", "counter",
                     "Entries moved out of the spool directory, by reason (foreign, damaged).",
                     ("reason",)),
        MetricFamily("monitoring_client_stage_errors_total", "counter",
                     "Unexpected errors a pipeline thread caught and survived, by stage.",
                     ("stage",)),
        MetricFamily("monitoring_client_send_duration_seconds_sum", "counter",
                     "Total time spent in remote-write requests."),
        MetricFamily("monitoring_client_send_duration_seconds_count", "counter",
                     "Remote-write requests timed."),
        MetricFamily("monitoring_client_collect_duration_seconds_sum", "counter",
                     "Total time spent in collect()."),
        MetricFamily("monitoring_client_collect_duration_seconds_count", "counter",
                     "collect() calls timed."),
        MetricFamily("monitoring_client_skipped_ticks_total", "counter",
                     "Sampling ticks skipped because collect() overran its period."),
        MetricFamily("monitoring_client_sampling_lag_seconds", "gauge",
                     "Largest delay of a tick behind its deadline since the last report."),
        MetricFamily("process_cpu_seconds_total", "counter", "CPU time of this process."),
        MetricFamily("process_resident_memory_bytes", "gauge", "Resident memory of this process."),
        MetricFamily("monitoring_client_info", "gauge", "Always 1; labels say the version.",
                     ("version",)),
        MetricFamily(HOST_INFO_METRIC, "gauge",
                     "Always 1; labels say what machine this is (set once the client is set up).",
                     HOST_INFO_LABELS),
    )  # fmt: skip

    def __init__(self, version: str) -> None:
        #: where the stages report what went wrong (drops, errors logged once)
        self.problems = Problems(self)
        self._lock = threading.Lock()
        self._values: dict[tuple[str, tuple[str, ...]], float] = {}
        self._families = {f.name: f for f in self.FAMILIES}
        #: largest sampling lag since the last report; read without the lock, set by observe_lag
        self.max_lag = 0.0
        self._cells: dict[tuple[str, tuple[str, ...]], list[Cell]] = {}
        # One label dict per series, reused at every report: the series table then finds its
        # handle by the dict's identity instead of validating the labels again.
        self._label_dicts: dict[tuple[str, tuple[str, ...]], dict[str, str]] = {}
        self.set("monitoring_client_info", 1.0, version=version)
        for fam in self.FAMILIES:
            if not fam.label_names:
                self._values.setdefault((fam.name, ()), 0.0)

    def set_host(self, host: HostInfo) -> None:
        """``wattpush_host_info``: one series, replaced if the host facts change."""
        with self._lock:
            for key in [k for k in self._values if k[0] == HOST_INFO_METRIC]:
                del self._values[key]
                self._label_dicts.pop(key, None)
        self.set(HOST_INFO_METRIC, 1.0, **host.labels())

    def _key(self, name: str, labels: dict[str, str]) -> tuple[str, tuple[str, ...]]:
        fam = self._families[name]
        return name, tuple(labels.get(n, "") for n in fam.label_names)

    def cell(self, name: str) -> Cell:
        """A new share of the unlabelled counter ``name`` for the calling thread to add to."""
        fam = self._families[name]
        if fam.kind != "counter" or fam.label_names:
            raise ValueError(f"{name}: cells are for unlabelled counters")
        cell = Cell()
        with self._lock:
            self._cells.setdefault((name, ()), []).append(cell)
        return cell

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = self._key(name, labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        key = self._key(name, labels)
        with self._lock:
            self._values[key] = value

    def get(self, name: str, **labels: str) -> float:
        key = self._key(name, labels)
        with self._lock:
            return self._values.get(key, 0.0) + sum(c.value for c in self._cells.get(key, ()))

    def total(self, name: str) -> float:
        """Sum over every label combination of a family."""
        with self._lock:
            locked = sum(v for (n, _), v in self._values.items() if n == name)
            return locked + sum(c.value for c in self._cells.get((name, ()), ()))

    def observe_lag(self, lag_s: float) -> None:
        # Only a new maximum takes the lock (a few per report): the sampler calls this per tick.
        if lag_s > self.max_lag:
            with self._lock:
                self.max_lag = max(self.max_lag, lag_s)

    def _refresh_process(self) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.set("process_cpu_seconds_total", usage.ru_utime + usage.ru_stime)
        self.set("process_resident_memory_bytes", float(_rss_bytes()))

    def snapshot(self, *, reset_lag: bool = False) -> dict[tuple[str, tuple[str, ...]], float]:
        self._refresh_process()
        with self._lock:
            self._values[("monitoring_client_sampling_lag_seconds", ())] = self.max_lag
            if reset_lag:
                self.max_lag = 0.0
            values = dict(self._values)
            for key, cells in self._cells.items():
                values[key] = values.get(key, 0.0) + sum(c.value for c in cells)
            return values

    def iter_series(
        self, *, reset_lag: bool = False
    ) -> Iterator[tuple[MetricFamily, dict[str, str], float]]:
        label_dicts = self._label_dicts
        for key, value in sorted(self.snapshot(reset_lag=reset_lag).items()):
            name, label_values = key
            fam = self._families[name]
            labels = label_dicts.get(key)
            if labels is None:
                labels = dict(zip(fam.label_names, label_values, strict=True))
                label_dicts[key] = labels
            yield fam, labels, value

    def to_samples(self, timestamp_ms: int) -> list[Sample]:
        return [
            Sample(fam.name, labels, value, timestamp_ms)
            for fam, labels, value in self.iter_series(reset_lag=True)
        ]

    def exposition(self, default_labels: dict[str, str]) -> str:
        """Prometheus text format 0.0.4."""
        lines: list[str] = []
        seen: set[str] = set()
        for fam, labels, value in self.iter_series():
            if fam.name not in seen:
                seen.add(fam.name)
                lines.append(f"# HELP {fam.name} {fam.help}")
                lines.append(f"# TYPE {fam.name} {fam.kind}")
            merged = {**default_labels, **labels}
            rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(merged.items()) if v)
            lines.append(f"{fam.name}{{{rendered}}} {_format_value(value)}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _rss_bytes() -> int:
    try:  # os-level calls: a buffered file object costs six more system calls
        fd = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
        try:
            return int(os.read(fd, 256).split()[1]) * _PAGE_SIZE
        finally:
            os.close(fd)
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
