"""Shared fixtures for the deployment tests (compose, helper, Prometheus rules, Grafana)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def tool() -> Callable[[str], str]:
    """``tool("promtool")``: path of an installed binary, or skip saying how to install it."""

    def find(name: str) -> str:
        path = shutil.which(name)
        if path is None:
            pytest.skip(
                f"{name} is not installed (Debian: apt-get install {name}, or `make setup`)"
            )
        return path

    return find
