"""pytest fixtures shared by the components' tests (import them into a conftest)."""

from __future__ import annotations

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
