"""The sources' kept-open readers: fresh values, vanished and recreated files, released fds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cpu_rapl_client.estimate import CpuPowerModel, EstimatedEnergy
from cpu_rapl_client.sources import EstimatedSource, SysfsSource, read_now
from cpu_rapl_client.zones import describe_os_error, discover_zones
from wattpush_testing.rapl import FakePowercap, write_proc_stat


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def readings(source: SysfsSource) -> dict[str, int | str]:
    """zone id -> raw value, or the exception's class name."""
    return {
        zone.sysfs_id: value if isinstance(value, int) else type(value).__name__
        for zone, value in read_now(source, 0)
    }


def test_sysfs_source_reads_fresh_values_through_kept_descriptors(
    powercap: FakePowercap,
) -> None:
    powercap.add_zone("intel-rapl:0", "package-0", 1_000, 9_999)
    powercap.add_zone("intel-rapl:1", "package-1", 5_000, 9_999)
    before = open_fds()
    source = SysfsSource(discover_zones(powercap.root()).zones)
    assert readings(source) == {"intel-rapl:0": 1_000, "intel-rapl:1": 5_000}
    assert open_fds() == before + 3  # kept open for the next tick, and the inotify watching them
    powercap.set_energy("intel-rapl:0", 9_000)  # written by rename: a new inode
    (powercap.zone_dir("intel-rapl:1") / "energy_uj").write_text("6000\n")  # in place
    assert readings(source) == {"intel-rapl:0": 9_000, "intel-rapl:1": 6_000}
    powercap.set_energy("intel-rapl:0", 200)  # wrapped: the raw value goes back, as read
    assert readings(source)["intel-rapl:0"] == 200
    assert open_fds() == before + 3
    source.close()
    assert open_fds() == before


def test_a_vanished_zone_reads_as_gone_not_as_its_last_value(powercap: FakePowercap) -> None:
    powercap.add_zone("intel-rapl:0", "package-0", 1_000)
    source = SysfsSource(discover_zones(powercap.root()).zones)
    assert readings(source) == {"intel-rapl:0": 1_000}
    path = powercap.zone_dir("intel-rapl:0") / "energy_uj"
    path.unlink()
    assert readings(source) == {"intel-rapl:0": "FileNotFoundError"}  # the client: "vanished"
    path.write_text("1500\n")  # back (a driver reload recreates the attribute)
    assert readings(source) == {"intel-rapl:0": 1_500}
    path.write_text("not a number\n")
    assert readings(source) == {"intel-rapl:0": "ValueError"}
    source.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_zone_says_permission_denied(powercap: FakePowercap) -> None:
    powercap.add_zone("intel-rapl:0", "package-0", 1_000)
    source = SysfsSource(discover_zones(powercap.root()).zones)
    path = powercap.zone_dir("intel-rapl:0") / "energy_uj"
    path.chmod(0)
    try:
        [(_, error)] = read_now(source, 0)
    finally:
        path.chmod(0o644)
        source.close()
    assert isinstance(error, PermissionError)
    assert "permission denied" in describe_os_error(error)


def test_estimate_rereads_proc_stat_and_notices_it_gone(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    write_proc_stat(proc, busy=100, idle=100, cpus=2)
    before = open_fds()
    source = EstimatedSource(proc, CpuPowerModel(1.0, 2.0))
    [(_, first)] = read_now(source, 0)
    assert first == 0  # the first reading only starts the integral
    write_proc_stat(proc, busy=150, idle=150, cpus=2)  # half busy: 2 x 1 W + 1 CPU x 2 W
    [(_, second)] = read_now(source, 1_000_000_000)
    assert second == 4_000_000
    assert open_fds() == before + 1
    (proc / "stat").unlink()
    [(_, gone)] = read_now(source, 2_000_000_000)
    assert isinstance(gone, FileNotFoundError)
    source.close()
    assert open_fds() == before


def test_injected_reader_is_used_for_every_read(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    write_proc_stat(proc, busy=10, idle=10, cpus=4)
    seen: list[Path] = []

    def reader(path: Path) -> str:
        seen.append(path)
        return path.read_text()

    energy = EstimatedEnergy(proc, CpuPowerModel(), reader)
    energy.read(0)
    energy.read(1)
    assert seen == [proc / "stat", proc / "stat"]


def test_estimate_counts_every_cpu_of_a_large_host(tmp_path: Path) -> None:
    # 300 cpuN lines fill ~8 KiB: a first-4-KiB read would count about 150 CPUs.
    proc = tmp_path / "proc"
    write_proc_stat(proc, busy=0, idle=1000, cpus=300)
    assert (proc / "stat").stat().st_size > 7000
    energy = EstimatedEnergy(proc, CpuPowerModel(idle_watts_per_core=1.0))
    energy.read(0)
    write_proc_stat(proc, busy=0, idle=2000, cpus=300)
    # Idle for 1 s: 300 CPUs x 1 W idle = 300 J.
    assert energy.read(1_000_000_000) == 300_000_000
    energy.close()
