"""The sampler-to-batcher hand-off wakes the batcher only for what cannot wait."""

from __future__ import annotations

import time

from base_monitoring_client.batching import Handoff


def timed_take(handoff: Handoff, timeout: float) -> tuple[list[object], float | None, float]:
    began = time.monotonic()
    items, first_at = handoff.take(timeout)
    return items, first_at, time.monotonic() - began


def test_a_quiet_put_waits_for_the_consumers_deadline() -> None:
    handoff = Handoff(capacity=100, wake_samples=10)
    before = time.monotonic()
    assert handoff.put("tick", 3, wake=False)
    after = time.monotonic()
    items, first_at, took = timed_take(handoff, 0.2)
    assert items == ["tick"] and took >= 0.15
    assert first_at is not None and before <= first_at <= after  # when it was put
    assert handoff.samples == 0


def test_a_full_batch_a_woken_put_or_a_half_full_queue_is_taken_at_once() -> None:
    handoff = Handoff(capacity=100, wake_samples=10)
    handoff.put("a", 4, wake=False)
    handoff.put("b", 6, wake=False)  # together a batch
    items, _, took = timed_take(handoff, 5)
    assert items == ["a", "b"] and took < 1
    handoff.put("marker")
    assert timed_take(handoff, 5)[0] == ["marker"]
    small = Handoff(capacity=4, wake_samples=1000)
    small.put(1, wake=False)
    small.put(2, wake=False)
    items, _, took = timed_take(small, 5)
    assert items == [1, 2] and took < 1


def test_a_full_queue_refuses_after_its_timeout() -> None:
    handoff = Handoff(capacity=1, wake_samples=1000)
    assert handoff.put("x", wake=False)
    assert not handoff.put("y", wake=False, timeout=0.05)
    assert handoff.take(0)[0] == ["x"]
