"""cgroup layout detection, container cgroup resolution and the v1/v2 readers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from base_monitoring_client import ConfigError
from docker_overhead_client.cgroups import CgroupLayout, resolve_container_files
from docker_overhead_client.errors import HostLayoutError
from wattpush_testing.docker import PROM_ID, FakeHost


def test_detects_v2(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, 2)
    layout = CgroupLayout.detect(host.cgroup)
    assert layout.version == 2
    assert layout.cpu_root == layout.memory_root == str(host.cgroup)


def test_detects_v1_and_hybrid(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, 1)
    (host.cgroup / "unified").mkdir()  # hybrid: v2 mounted beside the v1 controllers
    (host.cgroup / "unified" / "cgroup.controllers").write_text("")
    layout = CgroupLayout.detect(host.cgroup)
    assert layout.version == 1
    assert layout.memory_root.endswith("/memory")


def test_wrong_root_names_host_cgroup_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(HostLayoutError) as info:
        CgroupLayout.detect(tmp_path)
    text = str(info.value)
    assert f"HOST_CGROUP={tmp_path}" in text and "/sys/fs/cgroup:/host/sys/fs/cgroup:ro" in text
    assert isinstance(info.value, ConfigError) and info.value.exit_code == 2


def test_resolves_through_proc_cgroup(fake_host: FakeHost) -> None:
    layout = CgroupLayout.detect(fake_host.cgroup)
    files = resolve_container_files(layout, str(fake_host.proc), PROM_ID, 4101)
    assert files is not None
    assert files.cpu_ns() == 5_000_000_000
    assert files.memory_bytes() == 40_000_000  # 50 MB usage minus 10 MB inactive page cache


def test_resolves_by_driver_naming_without_proc(fake_host: FakeHost) -> None:
    (fake_host.proc / "4101" / "cgroup").unlink()
    layout = CgroupLayout.detect(fake_host.cgroup)
    files = resolve_container_files(layout, str(fake_host.proc), PROM_ID, 4101)
    assert files is not None and files.cpu_ns() == 5_000_000_000


def test_proc_paths_from_another_cgroup_namespace_are_not_trusted(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, 2)
    cid = "ab" * 32
    # Nested somewhere unusual (e.g. under a custom slice); /proc shows a /.. relative path.
    target = host.cgroup / "custom.slice" / "deeper" / f"docker-{cid}.scope"
    target.mkdir(parents=True)
    (target / "cpu.stat").write_text("usage_usec 1500\n")
    (target / "memory.current").write_text("4096\n")
    (target / "memory.stat").write_text("inactive_file 0\n")
    (host.proc / "77").mkdir()
    (host.proc / "77" / "cgroup").write_text(f"0::/../../custom.slice/deeper/docker-{cid}.scope\n")
    layout = CgroupLayout.detect(host.cgroup)
    files = resolve_container_files(layout, str(host.proc), cid, 77)
    assert files is not None  # found by the bounded walk
    assert files.cpu == f"{target}/cpu.stat"
    assert files.cpu_ns() == 1_500_000


def test_cgroup_parent_is_honoured(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, 1)
    cid = "cd" * 32
    for ctl, name in (("cpu,cpuacct", "cpuacct.usage"), ("memory", "memory.usage_in_bytes")):
        d = host.cgroup / ctl / "ci-jobs" / cid
        d.mkdir(parents=True)
        (d / name).write_text("42\n")
    layout = CgroupLayout.detect(host.cgroup)
    files = resolve_container_files(layout, str(host.proc), cid, 0, cgroup_parent="/ci-jobs")
    assert files is not None and files.cpu_ns() == 42
    assert files.memory_bytes() == 42  # no memory.stat: usage as is


def test_gone_container_reads_none(fake_host: FakeHost) -> None:
    layout = CgroupLayout.detect(fake_host.cgroup)
    files = resolve_container_files(layout, str(fake_host.proc), PROM_ID, 4101)
    assert files is not None
    fake_host.remove_container(PROM_ID, 4101)
    assert files.cpu_ns() is None and files.memory_bytes() is None
    assert resolve_container_files(layout, str(fake_host.proc), PROM_ID, 4101) is None


def test_v2_cpu_stat_key_found_anywhere(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, 2)
    cid = "ef" * 32
    host.add_container(cid, 99, cpu_ns=0)
    d = host.cgroup / "system.slice" / f"docker-{cid}.scope"
    (d / "cpu.stat").write_text("user_usec 3\nusage_usec 7\n")
    layout = CgroupLayout.detect(host.cgroup)
    files = resolve_container_files(layout, str(host.proc), cid, 99)
    assert files is not None and files.cpu_ns() == 7000
    shutil.rmtree(d)
    assert files.cpu_ns() is None
