"""Monotonic counters across resets, replaced containers and dying processes."""

from __future__ import annotations

from base_monitoring_client.counter import SummedCounter
from hypothesis import given
from hypothesis import strategies as st


def test_first_value_is_taken_whole_then_increments() -> None:
    c = SummedCounter()
    assert c.update_one("a", 100) == 100
    assert c.update_one("a", 150) == 150


def test_reset_within_an_epoch_carries_the_offset() -> None:
    c = SummedCounter()
    c.update_one("a", 500)
    assert c.update_one("a", 20) == 520  # restarted from 0, used 20 since
    assert c.update_one("a", 30) == 530


def test_new_epoch_adds_its_whole_count() -> None:
    c = SummedCounter()
    c.update_one("old-id", 500)
    assert c.update_one("new-id", 600) == 1100  # bigger than before, still a new container


def test_parts_add_independently_and_a_dead_part_keeps_its_share() -> None:
    c = SummedCounter()
    assert c.update("x", {1: 100, 2: 50}, forget_missing=True) == 150
    assert c.update("x", {1: 110}, forget_missing=True) == 160  # pid 2 exited
    assert c.update("x", {1: 120, 3: 5}, forget_missing=True) == 175  # a new pid


def test_interface_vanishing_does_not_double_count() -> None:
    c = SummedCounter()
    c.update("id", {"eth0": 1000, "eth1": 300})
    assert c.update("id", {"eth0": 1100}) == 1400
    assert c.update("id", {"eth0": 1200, "eth1": 350}) == 1550  # it came back, continued


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.integers(min_value=0, max_value=10**15)),
        min_size=1,
        max_size=60,
    )
)
def test_never_decreases(updates: list[tuple[str, int]]) -> None:
    c = SummedCounter()
    previous = 0
    for epoch, raw in updates:
        value = c.update_one(epoch, raw)
        assert value >= previous
        assert value >= raw
        previous = value
