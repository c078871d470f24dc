"""The built-in synthetic collector: load generator, benchmark subject and smoke test."""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from typing import Any, Self

from .client import MonitoringClient
from .config import ClientConfig
from .errors import ConfigError


class SyntheticClient(MonitoringClient):
    """N series: a sine 'power' gauge per series, set through one handle set per tick.

    Values are a pure function of the tick time, so tests can predict them.
    """

    name = "base-monitoring-client"
    description = "wattpush base client with a built-in synthetic collector (load generator)."

    def __init__(self, series: int = 10, metric: str = "synthetic_power_watts") -> None:
        if series < 1:
            raise ValueError("series must be >= 1")
        self.series = series
        self.metric = metric
        self._set = self.handle_set(metric, [{"series": str(i)} for i in range(series)])
        self._index = range(series)

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--collector",
            choices=["synthetic"],
            default="synthetic",
            help="built-in collector to run (default: synthetic)",
        )
        parser.add_argument(
            "--series", type=int, default=10, help="number of synthetic series (default: 10)"
        )
        parser.add_argument(
            "--metric", default="synthetic_power_watts", help="metric name of the synthetic series"
        )

    @classmethod
    def from_settings(cls, config: ClientConfig, values: Mapping[str, Any]) -> Self:
        series = int(values.get("series", 10))
        if series < 1:
            raise ConfigError(f"--series={series}: expected at least 1 series; pass --series 50")
        return cls(series, str(values.get("metric", "synthetic_power_watts")))

    @staticmethod
    def value_at(index: int, timestamp_ms: int) -> float:
        return 50.0 + 10.0 * math.sin(timestamp_ms / 1000.0 + index)

    def collect(self, now_ns: int) -> None:
        base = now_ns // 1_000_000 / 1000.0
        sin = math.sin
        self._set.set([50.0 + 10.0 * sin(base + i) for i in self._index])
