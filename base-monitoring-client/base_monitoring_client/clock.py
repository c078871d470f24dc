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
    # The C functions themselves, not Python wrappers: the sampler reads the clock several
    # times per tick.
    monotonic = staticmethod(time.monotonic)
    monotonic_ns = staticmethod(time.monotonic_ns)
    time_ns = staticmethod(time.time_ns)

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(max(0.0, timeout))


SYSTEM_CLOCK = SystemClock()
