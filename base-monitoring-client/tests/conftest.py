"""Fixtures of the base client's tests."""

from collections.abc import Iterator

import pytest
from base_monitoring_client.pipeline import Pipeline
from wattpush_testing.faults import FaultReceiver
from wattpush_testing.fixtures import processes, restore_root_logging

__all__ = ["pipelines", "processes", "restore_root_logging", "rx"]


@pytest.fixture
def rx() -> Iterator[FaultReceiver]:
    """A misbehaving remote-write receiver on loopback, stopped at the end."""
    receiver = FaultReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def pipelines() -> Iterator[list[Pipeline]]:
    """Pipelines a test starts; stopped at the end whatever happened (stop is idempotent)."""
    started: list[Pipeline] = []
    try:
        yield started
    finally:
        for pipeline in started:
            pipeline.stop(timeout=1.0)
