"""The order a run measures its windows in (``--order``) and when each scenario stops
repeating (``repeats``).

- ``sequential``: every repeat of a scenario, then the next scenario.
- ``interleaved`` (the default): rounds; round r runs repeat r of every scenario that still
  repeats, in the batch's order. Slow drift (temperature, background load) then spreads over
  every scenario instead of biasing the one that ran while it lasted.
- ``shuffled[:SEED]``: rounds as interleaved, each round in a random order drawn from the seed
  (a random one when not given; the manifest records it), so a scenario is not always measured
  right after the same neighbour.

A scenario's baseline window (``with_baseline``) runs just before its first transcode window,
so its idle power is measured next to its own encodes. With ``auto`` repeats a scenario drops
out of the rounds once it is stable (``repeats.stop_reason``): the decision is taken before
each of its windows from the windows recorded so far.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from .contract import RepeatRecord, WindowRecord
from .policy import DEFAULT_ORDER, SEQUENTIAL, SHUFFLED, Order, cpu_per_output_minute, stop_reason
from .scenario import Scenario

INTERRUPTED_REASON = "the run ended before this scenario was done (stopped or --fail-fast)"


@dataclass(frozen=True)
class Step:
    scenario: Scenario
    phase: str  # "baseline" or "transcode"
    repeat: int


@dataclass
class _Progress:
    done: int = 0  # transcode windows started
    measurements: list[float] = field(default_factory=list)
    reason: str | None = None  # why it stopped; None while it repeats


class Schedule:
    """The steps of a run, decided as it goes: ``steps()`` yields the next window to run and
    ``record()`` takes each finished transcode window before the next step is asked for."""

    def __init__(self, scenarios: Sequence[Scenario], order: Order = DEFAULT_ORDER) -> None:
        self.scenarios = list(scenarios)
        self.kind = order.kind
        self.seed = order.seed
        if self.kind == SHUFFLED and self.seed is None:
            self.seed = secrets.randbits(32)
        self._rng = random.Random(self.seed)
        self._progress = {s.name: _Progress() for s in self.scenarios}

    def steps(self) -> Iterator[Step]:
        if self.kind == SEQUENTIAL:
            for scenario in self.scenarios:
                while self._wants_more(scenario):
                    yield from self._next(scenario)
            return
        while True:
            active = [s for s in self.scenarios if self._wants_more(s)]
            if not active:
                return
            if self.kind == SHUFFLED:
                self._rng.shuffle(active)
            for scenario in active:
                yield from self._next(scenario)

    def record(self, window: WindowRecord) -> None:
        """A finished transcode window (baselines are ignored)."""
        progress = self._progress.get(window.scenario)
        if progress is None or window.phase != "transcode":
            return
        value = cpu_per_output_minute(window)
        if value is not None:
            progress.measurements.append(value)

    def records(self, *, finished: bool = False) -> list[RepeatRecord]:
        """One ``RepeatRecord`` per scenario that started; ``finished``: the run is over, so
        a scenario without a stop reason was cut short."""
        out = []
        for scenario in self.scenarios:
            progress = self._progress[scenario.name]
            if progress.done == 0 and not finished:
                continue
            reason = progress.reason or self._reason(scenario, progress)
            if reason is None:
                reason = INTERRUPTED_REASON if finished else "running"
            out.append(
                RepeatRecord(scenario.name, scenario.repeat_policy.text, progress.done, reason)
            )
        return out

    def _next(self, scenario: Scenario) -> Iterator[Step]:
        progress = self._progress[scenario.name]
        if progress.done == 0 and scenario.with_baseline:
            yield Step(scenario, "baseline", 0)
        repeat = progress.done
        progress.done += 1
        yield Step(scenario, "transcode", repeat)

    def _wants_more(self, scenario: Scenario) -> bool:
        progress = self._progress[scenario.name]
        if progress.reason is None:
            progress.reason = self._reason(scenario, progress)
        return progress.reason is None

    @staticmethod
    def _reason(scenario: Scenario, progress: _Progress) -> str | None:
        return stop_reason(scenario.repeat_policy, progress.done, progress.measurements)
