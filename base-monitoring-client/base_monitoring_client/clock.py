"""Time sources, injectable so tests control sampling, backoff and deadlines."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """The one clock every stage and client is given: monotonic time for intervals (seconds,
    or integer nanoseconds where sums must be exact), wall time for sample timestamps."""

    def monotonic(self) -> float: ...
    def monotonic_ns(self) -> int: ...
    def time_ns(self) -> int: ...
    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Wait until ``event`` is set or ``timeout`` seconds pass; True when the event is set."""
        ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    def time_ns(self) -> int:
        return time.time_ns()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(max(0.0, timeout))


SYSTEM_CLOCK = SystemClock()


class FakeClock:
    """Virtual time for tests, in integer nanoseconds: it moves only by ``advance()``, or by
    ``wait()``, which jumps straight to its deadline (single-threaded use)."""

    def __init__(self, start_s: float = 1000.0, epoch_s: float = 1_795_000_000.0) -> None:
        self.now_ns = round(start_s * 1e9)
        self._epoch_offset_ns = round(epoch_s * 1e9) - self.now_ns

    def monotonic(self) -> float:
        return self.now_ns / 1e9

    def monotonic_ns(self) -> int:
        return self.now_ns

    def time_ns(self) -> int:
        return self.now_ns + self._epoch_offset_ns

    def advance(self, seconds: float) -> int:
        self.now_ns += round(seconds * 1e9)
        return self.now_ns

    def wait(self, event: threading.Event, timeout: float) -> bool:
        if event.is_set():
            return True
        self.advance(max(0.0, timeout))
        return event.is_set()
