"""Fixtures of the GPU client's tests, and the skip rule for tests that need a real GPU.

Tests marked ``gpu`` run only where the real NVML initialises and sees at least one GPU;
elsewhere they are skipped with NVML's own reason (library missing, driver not loaded, ...).
"""

from __future__ import annotations

import logging

import pytest
from wattpush_testing import FakeClock
from wattpush_testing.gpu import real_nvml_problem
from wattpush_testing.nvml import FakeNvml, fake_gpus


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("gpu") is not None:
        problem = real_nvml_problem()
        if problem is not None:
            pytest.skip(f"needs a real NVIDIA GPU: {problem}")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def two_gpus() -> FakeNvml:
    return FakeNvml(fake_gpus(2))


@pytest.fixture
def gpu_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="gpu_nvml_client")
    return caplog
