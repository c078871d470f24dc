"""The built-in synthetic collector: load generator, benchmark subject and smoke test."""

from __future__ import annotations

import math
from collections.abc import Iterable

from .client import MonitoringClient
from .sample import Sample


class SyntheticClient(MonitoringClient):
    """N series: a sine 'power' gauge per series and a counter integrating it.

    Values are a pure function of the tick time, so tests can predict them.
    """

    name = "base-monitoring-client"

    def __init__(self, series: int = 10, metric: str = "synthetic_power_watts") -> None:
        if series < 1:
            raise ValueError("series must be >= 1")
        self.series = series
        self.metric = metric
        self._labels = [{"series": str(i)} for i in range(series)]

    @staticmethod
    def value_at(index: int, timestamp_ms: int) -> float:
        return 50.0 + 10.0 * math.sin(timestamp_ms / 1000.0 + index)

    def collect(self, now_ns: int) -> Iterable[Sample]:
        ts = now_ns // 1_000_000
        return [
            Sample(self.metric, labels, self.value_at(i, ts), ts)
            for i, labels in enumerate(self._labels)
        ]
