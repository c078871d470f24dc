"""Counters that stay monotonic when what they sum restarts (containers, runtime processes)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any


class MonotonicCounter:
    """One output counter fed by cumulative integer sources that may reset or be replaced.

    ``epoch`` identifies the thing being counted (a container id): a new epoch means a new
    container under the same series, whose whole count is added. Within an epoch, each part
    (a network interface, a pid) adds its increase; a part that went back restarted from zero,
    so its whole new value is added. The carried total is what keeps the series monotonic.
    """

    __slots__ = ("_epoch", "_last", "total")

    def __init__(self) -> None:
        self.total = 0
        self._last: dict[Hashable, int] = {}
        self._epoch: Hashable = None

    def update(
        self, epoch: Hashable, parts: Mapping[Any, int], *, forget_missing: bool = False
    ) -> int:
        """Feed the current raw values; ``forget_missing`` drops parts not seen now (dead pids)."""
        if epoch != self._epoch:
            self._epoch = epoch
            self._last = {}
        last = self._last
        total = self.total
        for key, raw in parts.items():
            prev = last.get(key)
            total += raw if prev is None or raw < prev else raw - prev
        self.total = total
        if forget_missing:
            self._last = dict(parts)
        else:
            last.update(parts)
        return total

    def update_one(self, epoch: Hashable, raw: int) -> int:
        """Single-source fast path of ``update``."""
        if epoch != self._epoch:
            self._epoch = epoch
            self._last = {}
        prev = self._last.get(None)
        self.total += raw if prev is None or raw < prev else raw - prev
        self._last[None] = raw
        return self.total
