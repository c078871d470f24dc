"""Fixtures of the cpu-rapl-client tests: fake powercap trees and a controllable clock."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from wattpush_testing import FakeClock
from wattpush_testing.rapl import FakePowercap


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def powercap(tmp_path: Path) -> FakePowercap:
    return FakePowercap(tmp_path / "sys")


@pytest.fixture
def rapl_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="cpu_rapl_client")
    return caplog
