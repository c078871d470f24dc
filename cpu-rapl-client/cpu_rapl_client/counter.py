"""A monotonic energy total from a raw counter that wraps and can be reset.

RAPL's ``energy_uj`` counts from 0 to ``max_energy_range_uj`` and starts again at 0 (within
minutes on some parts), and it restarts on its own after a driver reload or resume. The total
kept here is an integer in microjoules, so adding deltas never loses precision.

A reading below the previous one is a *wrap* when the energy it implies
(``max - prev + 1 + cur``) fits in the elapsed time at no more than ``max_plausible_watts``;
otherwise the counter was *reset*: only ``cur`` (the energy since it restarted at 0) is added and
no power is reported for that interval. Mistaking a wrap for a reset loses at most the few
joules between ``prev`` and the top of the range; mistaking a reset for a wrap would invent up to
the whole range, so the bound leans low.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Step(Enum):
    FIRST = "first"
    NORMAL = "normal"
    WRAP = "wrap"
    RESET = "reset"


@dataclass(frozen=True, slots=True)
class Update:
    total_uj: int
    delta_uj: int
    power_w: float | None  # None: first reading, a reset, or no time passed
    step: Step


class EnergyCounter:
    def __init__(self, max_energy_range_uj: int | None, max_plausible_watts: float) -> None:
        self.max_energy_range_uj = max_energy_range_uj
        self.max_plausible_watts = max_plausible_watts
        self.total_uj: int | None = None
        self._last_raw = 0
        self._last_ns = 0
        self.wraps = 0
        self.resets = 0

    def update(self, raw_uj: int, monotonic_ns: int) -> Update:
        if self.total_uj is None:
            # Start at the hardware counter's own value: until the first wrap the series equals
            # energy_uj / 1e6, which makes it easy to check against the kernel.
            self.total_uj = raw_uj
            self._last_raw, self._last_ns = raw_uj, monotonic_ns
            return Update(raw_uj, 0, None, Step.FIRST)
        elapsed_ns = monotonic_ns - self._last_ns
        step = Step.NORMAL
        if raw_uj >= self._last_raw:
            delta = raw_uj - self._last_raw
        else:
            delta = raw_uj
            step = Step.RESET
            top = self.max_energy_range_uj
            if top is not None and self._last_raw <= top and elapsed_ns > 0:
                wrapped = top - self._last_raw + 1 + raw_uj
                # uJ per ns * 1000 = W
                if wrapped * 1000 <= self.max_plausible_watts * elapsed_ns:
                    delta, step = wrapped, Step.WRAP
        if step is Step.WRAP:
            self.wraps += 1
        elif step is Step.RESET:
            self.resets += 1
        self.total_uj += delta
        self._last_raw, self._last_ns = raw_uj, monotonic_ns
        power = None
        if step is not Step.RESET and elapsed_ns > 0:
            power = delta * 1000.0 / elapsed_ns
        return Update(self.total_uj, delta, power, step)
