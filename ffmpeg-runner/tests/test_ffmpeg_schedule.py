"""Order and repeats on fake measurements: which window runs next, when a scenario stops
repeating and what the manifest says about it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence

import pytest
from base_monitoring_client import InvalidValue
from ffmpeg_runner.contract import Accounting, WindowRecord
from ffmpeg_runner.policy import (
    CI_TARGET,
    Order,
    RepeatPolicy,
    parse_order,
    parse_repeats,
    relative_ci_half_width,
    t_quantile_975,
)
from ffmpeg_runner.scenario import Scenario
from ffmpeg_runner.schedule import INTERRUPTED_REASON, Schedule, Step

FPS = 25.0
FRAMES = 1500  # one output minute at 25 fps


def window(step: Step, cpu_s: float, status: str = "ok") -> WindowRecord:
    """A finished window of ``step``: one output minute that took ``cpu_s`` CPU seconds."""
    scenario = step.scenario
    return WindowRecord(
        scenario=scenario.name,
        phase=step.phase,
        repeat=step.repeat,
        start_ms=1,
        end_ms=2,
        status=status,
        rungs=scenario.rungs,
        fps=FPS,
        frames_total=FRAMES if step.phase == "transcode" else 0,
        accounting=Accounting(cpu_s if step.phase == "transcode" else 0.0, 60.0, 120.0),
    )


def run(schedule: Schedule, cpu: Callable[[Step], float]) -> list[tuple[str, str, int]]:
    """Drive a schedule as the runner does: record each window before asking for the next."""
    done = []
    for step in schedule.steps():
        schedule.record(window(step, cpu(step)))
        done.append((step.scenario.name, step.phase, step.repeat))
    return done


def noisy(values: Sequence[float]) -> Callable[[Step], float]:
    """CPU seconds per repeat, cycling through ``values``."""
    return lambda step: values[step.repeat % len(values)]


@pytest.fixture
def three(make_scenario: Callable[..., Scenario]) -> list[Scenario]:
    return [
        make_scenario(name="a", repeat=2, with_baseline=True),
        make_scenario(name="b", repeat=3),
        make_scenario(name="c", repeat=1, with_baseline=True),
    ]


def names(steps: Iterator[Step] | list[tuple[str, str, int]]) -> list[str]:
    out = []
    for step in steps:
        name, phase, repeat = (
            (step.scenario.name, step.phase, step.repeat) if isinstance(step, Step) else step
        )
        out.append(f"{name}{'B' if phase == 'baseline' else repeat}")
    return out


def test_sequential_runs_every_repeat_of_a_scenario_first(three: list[Scenario]) -> None:
    steps = Schedule(three, Order("sequential")).steps()
    assert names(steps) == ["aB", "a0", "a1", "b0", "b1", "b2", "cB", "c0"]


def test_interleaved_runs_rounds_with_each_baseline_before_its_first_window(
    three: list[Scenario],
) -> None:
    schedule = Schedule(three)  # the default
    assert schedule.kind == "interleaved" and schedule.seed is None
    assert names(schedule.steps()) == ["aB", "a0", "b0", "cB", "c0", "a1", "b1", "b2"]


def test_shuffled_rounds_follow_the_seed(three: list[Scenario]) -> None:
    first = names(Schedule(three, Order("shuffled", 7)).steps())
    assert first == names(Schedule(three, Order("shuffled", 7)).steps())  # reproducible
    assert sorted(first) == sorted(["aB", "a0", "b0", "cB", "c0", "a1", "b1", "b2"])
    # Rounds stay rounds: every repeat r comes before any repeat r + 1.
    rounds = [int(n[1]) if n[1] != "B" else 0 for n in first]
    assert rounds == sorted(rounds)
    for name in "ac":  # a baseline just before its scenario's first window
        assert first.index(f"{name}B") + 1 == first.index(f"{name}0")
    orders = {tuple(names(Schedule(three, Order("shuffled", s)).steps())) for s in range(20)}
    assert len(orders) > 1  # the seed matters
    drawn = Schedule(three, Order("shuffled"))
    assert drawn.seed is not None  # a random seed, recorded


def test_fixed_counts_are_recorded_with_their_reason(three: list[Scenario]) -> None:
    schedule = Schedule(three)
    run(schedule, noisy([10.0, 30.0]))
    records = {r.scenario: r for r in schedule.records(finished=True)}
    assert [(r.policy, r.repeats, r.reason) for r in records.values()] == [
        ("fixed", 2, "fixed count"),
        ("fixed", 3, "fixed count"),
        ("fixed", 1, "fixed count"),
    ]


def test_auto_stops_a_stable_scenario_at_min_and_a_noisy_one_at_max(
    make_scenario: Callable[..., Scenario],
) -> None:
    stable = make_scenario(name="stable", repeat="auto")  # 3:8
    noisy_one = make_scenario(name="noisy", repeat="auto:2:5")
    cpu = {"stable": noisy([30.0, 30.3, 29.8, 30.1]), "noisy": noisy([20.0, 35.0, 25.0])}
    schedule = Schedule([stable, noisy_one])
    done = run(schedule, lambda step: cpu[step.scenario.name](step))
    # Rounds in which the stable scenario has dropped out hold only the noisy one.
    assert names(done) == [
        "stable0", "noisy0", "stable1", "noisy1", "stable2", "noisy2", "noisy3", "noisy4",
    ]  # fmt: skip
    records = {r.scenario: r for r in schedule.records(finished=True)}
    assert (records["stable"].policy, records["stable"].repeats) == ("auto:3:8", 3)
    assert records["stable"].reason.startswith("CI half-width ")
    assert "<= 3 %" in records["stable"].reason
    assert (records["noisy"].policy, records["noisy"].repeats) == ("auto:2:5", 5)
    assert records["noisy"].reason.startswith("MAX (5) reached: CI half-width ")


def test_auto_keeps_repeating_until_the_ci_is_narrow_enough(
    make_scenario: Callable[..., Scenario],
) -> None:
    # 30, 31, 30, 31, ...: the CI narrows as repeats add up; it takes 5 to get within 3 %.
    values = [30.0, 31.0]
    spreads = [relative_ci_half_width([values[i % 2] for i in range(n)]) for n in range(2, 9)]
    first_ok = next(n for n, s in zip(range(2, 9), spreads, strict=True) if s <= CI_TARGET)
    scenario = make_scenario(name="s", repeat="auto:3:8")
    schedule = Schedule([scenario], Order("sequential"))
    done = run(schedule, noisy(values))
    assert len(done) == first_ok == 5


def test_failed_windows_count_towards_max_but_are_no_measurement(
    make_scenario: Callable[..., Scenario],
) -> None:
    scenario = make_scenario(name="s", repeat="auto:3:6")
    schedule = Schedule([scenario])
    count = 0
    for step in schedule.steps():
        count += 1
        schedule.record(window(step, 30.0, status="failed"))
    assert count == 3  # nothing to judge stability by: stop at MIN, and say so
    (record,) = schedule.records(finished=True)
    assert record.repeats == 3 and "stopped at MIN (3)" in record.reason


def test_a_run_cut_short_says_so(three: list[Scenario]) -> None:
    schedule = Schedule(three)
    steps = schedule.steps()
    for _ in range(2):  # aB, a0
        schedule.record(window(next(steps), 10.0))
    assert [r.scenario for r in schedule.records()] == ["a"]  # b, c have not started
    final = {r.scenario: r for r in schedule.records(finished=True)}
    assert (final["a"].repeats, final["a"].reason) == (1, INTERRUPTED_REASON)
    assert (final["b"].repeats, final["b"].reason) == (0, INTERRUPTED_REASON)


def test_parse_order_and_repeats() -> None:
    assert parse_order("sequential") == Order("sequential")
    assert parse_order(" shuffled:42 ") == Order("shuffled", 42)
    assert parse_order("shuffled").seed is None
    for bad, needle in (
        ("random", re.escape("expected sequential, interleaved or shuffled[:SEED]")),
        ("interleaved:3", "only shuffled takes a seed"),
        ("shuffled:x", "expected"),
        (3, "expected"),
    ):
        with pytest.raises(InvalidValue, match=needle):
            parse_order(bad)
    assert parse_repeats(4) == RepeatPolicy(4, 4, False)
    assert parse_repeats("4").text == "fixed"
    assert parse_repeats("auto") == RepeatPolicy(3, 8, True)
    assert parse_repeats("auto:2:10").text == "auto:2:10"
    for bad, needle in (
        ("auto:1:5", "MIN must be at least 2"),
        ("auto:5:3", r"MAX must be from MIN \(5\) to 1000, e.g. auto:5:10"),
        ("auto:3", "auto\\[:MIN:MAX\\]"),
        (0, "from 1 to 1000"),
        (True, "expected"),
        ("often", "expected"),
    ):
        with pytest.raises(InvalidValue, match=needle):
            parse_repeats(bad)


def test_t_quantile_matches_students_distribution() -> None:
    assert t_quantile_975(1) == pytest.approx(12.706, abs=1e-3)
    assert t_quantile_975(30) == pytest.approx(2.0423, abs=1e-4)
    assert t_quantile_975(31) == pytest.approx(2.0395, abs=1e-4)
    assert t_quantile_975(100_000) == pytest.approx(1.95996, abs=1e-4)
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 5, 9, 29, 30, 31, 45, 120, 999):
        assert t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), rel=2e-5)
    with pytest.raises(ValueError):
        t_quantile_975(0)


def test_relative_ci_half_width() -> None:
    assert relative_ci_half_width([5.0]) is None
    assert relative_ci_half_width([0.0, 0.0]) is None
    assert relative_ci_half_width([10.0, 10.0, 10.0]) == 0.0
    # n = 2: t(1) x sd / sqrt(2) / mean; sd of (9, 11) = sqrt(2).
    assert relative_ci_half_width([9.0, 11.0]) == pytest.approx(12.7062 / 10.0)
