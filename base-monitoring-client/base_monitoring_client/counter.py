"""Counters that stay monotonic when the raw counter they follow wraps, resets or is replaced.

``ResettableCounter`` follows one raw integer counter. A reading below the previous one is a
*wrap* when the counter has a known range (``max_range``: it counts 0..max_range and starts
again at 0) and the amount it implies (``max_range - prev + 1 + cur``) fits in the elapsed
time at no more than ``max_rate_per_s``; otherwise the counter was *reset* (driver reload,
device reset, process restart) and only ``cur`` (counted since it restarted at 0) is added.
Mistaking a wrap for a reset loses at most what lay between ``prev`` and the top of the
range; mistaking a reset for a wrap would invent up to a whole range, so the bound leans low.
The total is an integer in the raw unit, so adding deltas never loses precision.

``SummedCounter`` is the same reset rule over several raw counters summed into one series
(network interfaces, the pids of a process name), where the thing counted can also be
replaced as a whole (a new container under the same series: a new ``epoch``).
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any


class Step(enum.Enum):
    FIRST = "first"
    NORMAL = "normal"
    WRAP = "wrap"
    RESET = "reset"


@dataclass(frozen=True, slots=True)
class CounterUpdate:
    total: int
    delta: int
    elapsed_ns: int
    step: Step

    @property
    def has_rate(self) -> bool:
        """A rate over this step means something (not the first reading, not a reset)."""
        return self.step is not Step.FIRST and self.step is not Step.RESET and self.elapsed_ns > 0

    def rate_per_s(self) -> float | None:
        return self.delta * 1e9 / self.elapsed_ns if self.has_rate else None


class ResettableCounter:
    """A monotonic total of one raw counter. The first reading starts the total at the raw
    value, so until a wrap or reset the total equals the device's own count."""

    __slots__ = ("_last_ns", "_last_raw", "max_range", "max_rate_per_s", "resets", "total", "wraps")

    def __init__(self, max_range: int | None = None, max_rate_per_s: float | None = None) -> None:
        self.max_range = max_range
        self.max_rate_per_s = max_rate_per_s
        self.total: int | None = None
        self._last_raw = 0
        self._last_ns = 0
        self.wraps = 0
        self.resets = 0

    @property
    def last_raw(self) -> int | None:
        return None if self.total is None else self._last_raw

    def update(self, raw: int, monotonic_ns: int = 0) -> CounterUpdate:
        if self.total is None:
            self.total = raw
            self._last_raw, self._last_ns = raw, monotonic_ns
            return CounterUpdate(raw, 0, 0, Step.FIRST)
        elapsed_ns = monotonic_ns - self._last_ns
        step = Step.NORMAL
        if raw >= self._last_raw:
            delta = raw - self._last_raw
        else:
            delta, step = raw, Step.RESET
            top = self.max_range
            if top is not None and self._last_raw <= top and elapsed_ns > 0:
                wrapped = top - self._last_raw + 1 + raw
                limit = self.max_rate_per_s
                if limit is None or wrapped * 1e9 <= limit * elapsed_ns:
                    delta, step = wrapped, Step.WRAP
        if step is Step.WRAP:
            self.wraps += 1
        elif step is Step.RESET:
            self.resets += 1
        self.total += delta
        self._last_raw, self._last_ns = raw, monotonic_ns
        return CounterUpdate(self.total, delta, elapsed_ns, step)


class SummedCounter:
    """One output counter fed by several raw counters (parts) that may reset or be replaced.

    ``epoch`` identifies the thing being counted (a container id): a new epoch means a new
    thing under the same series, whose whole count is added. Within an epoch each part adds
    its increase; a part that went back was reset, so its whole new value is added, and a new
    part adds its whole value. The carried total keeps the series monotonic.
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
        """Single-part fast path of ``update``."""
        if epoch != self._epoch:
            self._epoch = epoch
            self._last = {}
        prev = self._last.get(None)
        self.total += raw if prev is None or raw < prev else raw - prev
        self._last[None] = raw
        return self.total
