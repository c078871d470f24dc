"""The built-in synthetic collector: load generator, benchmark subject and smoke test."""

from __future__ import annotations

import math

from .client import MonitoringClient


class SyntheticClient(MonitoringClient):
    """N series: a sine 'power' gauge per series, set through one handle set per tick.

    Values are a pure function of the tick time, so tests can predict them.
    """

    name = "base-monitoring-client"

    def __init__(self, series: int = 10, metric: str = "synthetic_power_watts") -> None:
        if series < 1:
            raise ValueError("series must be >= 1")
        self.series = series
        self.metric = metric
        self._set = self.handle_set(metric, [{"series": str(i)} for i in range(series)])
        self._index = range(series)

    @staticmethod
    def value_at(index: int, timestamp_ms: int) -> float:
        return 50.0 + 10.0 * math.sin(timestamp_ms / 1000.0 + index)

    def collect(self, now_ns: int) -> None:
        base = now_ns // 1_000_000 / 1000.0
        sin = math.sin
        self._set.set([50.0 + 10.0 * sin(base + i) for i in self._index])
