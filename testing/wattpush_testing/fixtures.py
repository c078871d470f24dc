"""pytest fixtures shared by the components' tests (import them into a conftest)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Protocol

import pytest


class Killable(Protocol):
    def kill(self) -> object: ...


@pytest.fixture
def processes() -> Iterator[list[Killable]]:
    """A list the test appends the processes it starts to; each is killed at the end."""
    started: list[Killable] = []
    try:
        yield started
    finally:
        for p in started:
            p.kill()


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    """Console scripts run in-process install a stderr handler on the root logger (on pytest's
    captured stream, closed after the test): take it away again, so that later tests' threads
    do not write to a closed file. Use it as an autouse fixture of such a test module."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
