"""Fakes shared by the base client's unit tests: a recording clock and a scripted transport
(virtual time is wattpush_testing.FakeClock)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from base_monitoring_client.client import MonitoringClient
from base_monitoring_client.encoder import decode
from base_monitoring_client.sample import Sample
from base_monitoring_client.transport import Outcome


class InstantWaitClock:
    """Real time, but wait() returns at once and records how long it was asked to wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return time.monotonic()

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    def time_ns(self) -> int:
        return time.time_ns()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        self.waits.append(timeout)
        return event.is_set()


class ScriptedTransport:
    """Answers each POST with the next scripted status (then 204), recording decoded bodies."""

    def __init__(self, script: Iterable[int | tuple[int, float | None, str] | None] = ()) -> None:
        self.script = list(script)
        self.requests: list[bytes] = []
        self.accepted: list[list[tuple[str, float, int]]] = []
        self.lock = threading.Lock()

    def post(self, body: bytes, timeout_s: float | None = None) -> Outcome:
        with self.lock:
            self.requests.append(body)
            step = self.script.pop(0) if self.script else 204
            if step is None:
                return Outcome(None, "connection refused")
            status, retry_after, text = step if isinstance(step, tuple) else (step, None, "")
            if 200 <= status < 300:
                self.accepted.append(points(body))
            return Outcome(status, None, text, retry_after)

    def close(self) -> None:
        self.closed = True


def points(body: bytes) -> list[tuple[str, float, int]]:
    request = decode(body)
    out: list[tuple[str, float, int]] = []
    for ts in request.timeseries:
        labels = {label.name: label.value for label in ts.labels}
        key = labels["__name__"] + "".join(
            f",{k}={v}" for k, v in sorted(labels.items()) if k not in {"__name__"}
        )
        out.extend((key, s.value, s.timestamp) for s in ts.samples)
    return out


class PushOnlyClient(MonitoringClient):
    name = "test-client"


def series(n: int, start_ms: int, metric: str = "test_value") -> list[Sample]:
    return [Sample(metric, {"i": str(i % 3)}, float(i), start_ms + i) for i in range(n)]
