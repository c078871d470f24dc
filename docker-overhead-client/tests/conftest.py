"""Fixtures of the docker-overhead-client tests; the fakes live in wattpush_testing.docker."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from wattpush_testing.docker import FakeEngine, FakeHost


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short directory for unix sockets (paths are limited to 107 bytes)."""
    d = Path(tempfile.mkdtemp(prefix="dk-", dir="/tmp"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fake_engine(short_tmp: Path) -> Iterator[FakeEngine]:
    engine = FakeEngine(short_tmp / "docker.sock").load_golden().start()
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture(params=[2, 1], ids=["cgroup-v2", "cgroup-v1"])
def fake_host(request: pytest.FixtureRequest, tmp_path: Path) -> FakeHost:
    host = FakeHost(tmp_path / "host", int(request.param))
    host.add_golden_containers()
    host.add_process(900, "dockerd", ["/usr/bin/dockerd", "-H", "fd://"], cpu_ticks=5000)
    host.add_process(800, "containerd", ["/usr/bin/containerd"], cpu_ticks=3000, rss_pages=2000)
    for i, pid in enumerate((4100, 4200, 4300)):
        host.add_process(
            pid,
            "containerd-shim",
            ["/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-id", f"x{i}"],
            cpu_ticks=10 + i,
            rss_pages=500,
        )
    host.add_process(1, "systemd", ["/sbin/init"], cpu_ticks=999)
    host.add_process(2, "kthreadd", [], cpu_ticks=1)
    return host
