"""Helpers for the GPU client's tests."""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Mapping

from base_monitoring_client import Sample
from gpu_nvml_client.client import GpuNvmlClient
from gpu_nvml_client.errors import NvmlCallError
from gpu_nvml_client.nvml import PynvmlBackend

from wattpush_testing import FakeClock, collected

NOW_NS = 1_795_000_000_000_000_000


class Ticker:
    """Drives a client like the sampler would: each tick moves wall and monotonic time."""

    def __init__(self, client: GpuNvmlClient, clock: FakeClock, interval_s: float = 0.1) -> None:
        self.client = client
        self.clock = clock
        self.interval_s = interval_s
        self.now_ns = NOW_NS

    @property
    def now_ms(self) -> int:
        return self.now_ns // 1_000_000

    def tick(self) -> list[Sample]:
        samples = collected(self.client, self.now_ns)
        self.now_ns += round(self.interval_s * 1e9)
        self.clock.advance(self.interval_s)
        return samples


def by_series(samples: list[Sample]) -> dict[tuple[str, str], Sample]:
    """Live samples keyed by (metric, gpu index); stale markers left out."""
    return {(s.name, s.labels.get("gpu", "")): s for s in samples if not s.is_stale}


def stale(samples: list[Sample]) -> list[Sample]:
    return [s for s in samples if s.is_stale]


def value(samples: list[Sample], name: str, gpu: str = "0", **labels: str) -> float | None:
    for s in samples:
        wanted = s.name == name and s.labels.get("gpu", "") == gpu and not s.is_stale
        if wanted and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


def same(a: float | None, b: float) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def labels_of(samples: list[Sample], name: str, gpu: str = "0") -> Mapping[str, str]:
    for s in samples:
        if s.name == name and s.labels.get("gpu", "") == gpu:
            return s.labels
    raise AssertionError(f"no {name} for gpu {gpu}")


@functools.cache
def real_nvml_problem() -> str | None:
    """Why the real NVML cannot be used here, or None when it can (checked once)."""
    try:
        backend = PynvmlBackend()
        backend.init()
    except NvmlCallError as exc:
        return f"NVML unavailable: {exc}"
    try:
        count = backend.device_count()
    except NvmlCallError as exc:
        return f"NVML cannot count GPUs: {exc}"
    finally:
        with contextlib.suppress(NvmlCallError):
            backend.shutdown()
    return None if count > 0 else "NVML sees no GPU"
