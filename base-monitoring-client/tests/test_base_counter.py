"""ResettableCounter on a RAPL-like energy counter in uJ: wraps via the counter's range, resets
told from wraps by an implausible rate, and power from the elapsed time."""

from __future__ import annotations

from base_monitoring_client.counter import CounterUpdate, ResettableCounter, Step
from hypothesis import given, settings
from hypothesis import strategies as st

S = 1_000_000_000  # ns
MAX = 999_999  # the counter takes the values 0..MAX, i.e. wraps modulo 1_000_000


def EnergyCounter(max_range: int | None, max_watts: float) -> ResettableCounter:
    return ResettableCounter(max_range, max_watts * 1e6)  # uJ per second


def watts(up: CounterUpdate) -> float | None:
    """What cpu-rapl-client reports: uJ per ns * 1000."""
    return up.delta * 1000.0 / up.elapsed_ns if up.has_rate else None


def test_first_reading_starts_at_the_hardware_value_without_power() -> None:
    c = EnergyCounter(MAX, 1000.0)
    first = c.update(123_456, 5 * S)
    assert (first.total, watts(first), first.step) == (123_456, None, Step.FIRST)
    second = c.update(173_456, 5 * S + S // 10)  # 50 mJ in 0.1 s
    assert second.total == 173_456 and second.step is Step.NORMAL
    assert watts(second) == 0.5


def test_wrap_adds_the_distance_to_the_top_plus_the_new_value() -> None:
    c = EnergyCounter(MAX, 1000.0)
    c.update(999_900, 0)
    up = c.update(50, S // 10)  # 100 uJ to the top (999_999 -> 0 is one step) + 50
    assert up.step is Step.WRAP
    assert up.delta == 150 and up.total == 999_900 + 150
    assert watts(up) == 150 * 1000.0 / (S // 10)
    assert c.wraps == 1 and c.resets == 0


def test_backwards_step_too_big_for_the_elapsed_time_is_a_reset() -> None:
    c = EnergyCounter(262_143_328_850, 1000.0)
    c.update(100_000_000_000, 0)  # 100 kJ
    up = c.update(2_000_000, S // 10)  # a wrap would mean ~162 kJ in 0.1 s
    assert up.step is Step.RESET
    assert up.delta == 2_000_000 and up.total == 100_002_000_000
    assert watts(up) is None
    assert c.resets == 1
    again = c.update(3_000_000, 2 * S // 10)
    assert again.step is Step.NORMAL and watts(again) == 10.0


def test_without_a_known_range_every_decrease_is_a_reset() -> None:
    c = EnergyCounter(None, 1000.0)
    c.update(500, 0)
    up = c.update(20, S)
    assert up.step is Step.RESET and up.total == 520 and watts(up) is None


def test_no_time_elapsed_counts_energy_but_reports_no_power() -> None:
    c = EnergyCounter(MAX, 1000.0)
    c.update(10, S)
    up = c.update(30, S)
    assert up.total == 30 and watts(up) is None


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(0, MAX),
    steps=st.lists(st.tuples(st.integers(0, 90_000), st.integers(1, 10**8)), max_size=60),
)
def test_total_is_exact_over_any_schedule_with_wraps(
    start: int, steps: list[tuple[int, int]]
) -> None:
    """Increments below one range per reading are recovered exactly, whatever the wraps."""
    c = EnergyCounter(MAX, 1e9)
    now, total = 0, start
    c.update(start, now)
    for inc, dt in steps:
        now += dt
        total += inc
        up = c.update(total % (MAX + 1), now)
        assert up.total == total
        assert watts(up) is not None and watts(up) >= 0
