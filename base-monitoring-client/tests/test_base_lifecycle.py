"""Latch: the sampler's stop event, set once, waited on with one lock acquire."""

from __future__ import annotations

import threading

import pytest
from base_monitoring_client.lifecycle import Latch, Lifecycle, State


def test_latch_times_out_until_set_then_stays_open() -> None:
    latch = Latch()
    assert not latch.wait(0.01)
    assert not latch.wait(-1.0)  # a deadline already past: no wait at all
    assert not latch.is_set()
    latch.set()
    latch.set()  # idempotent, like Event.set
    assert latch.is_set()
    assert all(latch.wait(0) for _ in range(3))
    assert latch.wait()
    with pytest.raises(RuntimeError, match="cannot be cleared"):
        latch.clear()


def test_set_wakes_every_blocked_waiter() -> None:
    latch = Latch()
    woke: list[bool] = []
    waiters = [
        threading.Thread(target=lambda: woke.append(latch.wait(30)), name=f"waiter-{i}")
        for i in range(3)
    ]
    for w in waiters:
        w.start()
    latch.set()
    for w in waiters:
        w.join(10)
    assert woke == [True, True, True]


def test_stopping_sets_the_sampling_latch_once_for_all_later_states() -> None:
    life = Lifecycle()
    life.advance(State.RUNNING)
    assert not life.stop_sampling.is_set()
    for state in (State.STOPPING, State.DRAINING, State.GIVING_UP, State.STOPPED):
        life.advance(state)
        assert life.stop_sampling.wait(0)
