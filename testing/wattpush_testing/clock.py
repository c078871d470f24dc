"""The one fake clock of the tests."""

from __future__ import annotations

import threading


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
