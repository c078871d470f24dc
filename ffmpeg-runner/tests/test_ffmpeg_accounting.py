"""Process accounting on fake /proc and cgroup trees: what a window's edges read, the cgroup
found inside a container and only there, processes reaped inside the window, and the errors
that name what could not be read."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from ffmpeg_runner.accounting import (
    AccountingError,
    CgroupCpuFile,
    CpuAccountant,
    container_evidence,
    own_cgroup_cpu_file,
)
from ffmpeg_runner.process import FfmpegProcess
from wattpush_testing.ffmpeg import cgroup_v1, cgroup_v2, fake_proc, write_pid_stat
from wattpush_testing.rapl import write_proc_stat


@dataclass
class FakeProcess:
    """An Accountable: a running child (pid), or one reaped with its CPU time at exit."""

    pid: int | None
    exit_cpu_s: float | None = None
    reaped: bool = False


def test_a_window_counts_its_processes_the_host_and_the_cgroup(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, busy=1000, idle=3000)
    write_pid_stat(proc, 41, utime=100, stime=20)
    write_pid_stat(proc, 42, utime=7, stime=3)
    cgroup = CgroupCpuFile(cgroup_v2(tmp_path, "", usage_usec=5_000_000) / "cpu.stat", 2)
    accountant = CpuAccountant(proc, cgroup=cgroup, clk_tck=100)
    processes = [FakeProcess(41), FakeProcess(42)]
    start = accountant.read(processes)
    # 2 s later on 2 CPUs: 400 ticks of which 250 busy; ffmpeg used 150 + 50 of them.
    write_proc_stat(proc, busy=1250, idle=3150, cpus=2)
    write_pid_stat(proc, 41, utime=230, stime=40)
    write_pid_stat(proc, 42, utime=40, stime=20)
    cgroup_v2(tmp_path, "", usage_usec=7_600_000)
    accounting = accountant.between(start, accountant.read(processes))
    assert accounting.transcode_cpu_s == pytest.approx(2.0)
    assert accounting.host_busy_cpu_s == pytest.approx(2.5)
    assert accounting.host_total_cpu_s == pytest.approx(4.0)
    assert accounting.cgroup_cpu_s == pytest.approx(2.6)
    assert accounting.processes == 2
    assert accounting.background_cpu_share == pytest.approx(0.2)
    accountant.close()


def test_a_baseline_has_no_process_and_zero_transcode_time(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, busy=10, idle=10)
    accountant = CpuAccountant(proc, clk_tck=100)
    start = accountant.read(())
    write_proc_stat(proc, busy=60, idle=160, cpus=2)
    accounting = accountant.between(start, accountant.read(()))
    assert (accounting.transcode_cpu_s, accounting.processes) == (0.0, 0)
    assert (accounting.host_busy_cpu_s, accounting.host_total_cpu_s) == (0.5, 2.0)
    assert accounting.cgroup_cpu_s is None  # no cgroup file: outside a container


def test_a_process_reaped_inside_the_window_counts_its_cpu_time_at_exit(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, busy=0, idle=0)
    write_pid_stat(proc, 77, utime=50, stime=10)
    accountant = CpuAccountant(proc, clk_tck=100)
    process = FakeProcess(77)
    start = accountant.read([process])
    # Reaped: /proc/77 now belongs to somebody else, which must not be read.
    write_pid_stat(proc, 77, utime=99_999, stime=0, comm="other")
    process.reaped, process.exit_cpu_s = True, 1.35
    write_proc_stat(proc, busy=100, idle=100, cpus=2)
    accounting = accountant.between(start, accountant.read([process]))
    assert accounting.transcode_cpu_s == pytest.approx(0.75)


def test_what_cannot_be_read_is_named(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, busy=0, idle=0)
    accountant = CpuAccountant(proc, clk_tck=100)
    start = accountant.read([FakeProcess(5)])
    with pytest.raises(AccountingError, match=r"proc/5/stat: unreadable"):
        accountant.between(start, start)
    never = accountant.read([FakeProcess(None)])
    with pytest.raises(AccountingError, match="never started"):
        accountant.between(never, never)
    lost = accountant.read([FakeProcess(6, reaped=True)])
    with pytest.raises(AccountingError, match="reaped without its CPU time"):
        accountant.between(lost, lost)
    (proc / "stat").write_text("garbage\n")
    broken = CpuAccountant(proc, clk_tck=100).read(())
    with pytest.raises(AccountingError, match="aggregate 'cpu' line"):
        accountant.between(broken, broken)


def test_the_cgroup_is_found_in_v2_v1_and_namespaced_layouts(tmp_path: Path) -> None:
    # v2, the path from /proc/self/cgroup below the root (no cgroup namespace).
    proc = fake_proc(tmp_path / "a", 0, 0, cgroup="0::/system.slice/docker-abc.scope\n")
    root = cgroup_v2(tmp_path / "a", "system.slice/docker-abc.scope", usage_usec=10)
    found = own_cgroup_cpu_file(proc, root)
    assert found == CgroupCpuFile(root / "system.slice/docker-abc.scope/cpu.stat", 2)
    # v2 with a cgroup namespace: "0::/" and the container's cgroup is the mount's root.
    proc = fake_proc(tmp_path / "b", 0, 0, cgroup="0::/\n")
    root = cgroup_v2(tmp_path / "b", "", usage_usec=10)
    assert own_cgroup_cpu_file(proc, root) == CgroupCpuFile(root / "cpu.stat", 2)
    # v1 (docker): /proc/self/cgroup names /docker/<id>, but the runtime mounted that cgroup
    # at the controller's root.
    text = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n"
    proc = fake_proc(tmp_path / "c", 0, 0, cgroup=text)
    root = cgroup_v1(tmp_path / "c", "cpu,cpuacct", "", usage_ns=42)
    assert own_cgroup_cpu_file(proc, root) == CgroupCpuFile(root / "cpu,cpuacct/cpuacct.usage", 1)
    # Nothing readable: None.
    proc = fake_proc(tmp_path / "d", 0, 0, cgroup="0::/x\n")
    assert own_cgroup_cpu_file(proc, tmp_path / "d" / "nothing") is None


def test_the_cgroup_is_read_only_inside_a_container(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, 0, 0, cgroup="0::/\n")
    cgroup = cgroup_v2(tmp_path, "", usage_usec=10)
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    outside = CpuAccountant.detect(proc, cgroup, root=rootfs, env={})
    assert outside.cgroup is None and "not in a container" in outside.describe()
    (rootfs / ".dockerenv").touch()
    assert container_evidence(rootfs, proc, {}) == f"{rootfs / '.dockerenv'} exists"
    inside = CpuAccountant.detect(proc, cgroup, root=rootfs, env={})
    assert inside.cgroup == CgroupCpuFile(cgroup / "cpu.stat", 2)
    (rootfs / ".dockerenv").unlink()
    assert container_evidence(rootfs, proc, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert container_evidence(rootfs, proc, {"container": "podman"})
    (proc / "self" / "cgroup").write_text("0::/kubepods/burstable/pod1/abc\n")
    assert container_evidence(rootfs, proc, {}) == f"{proc / 'self' / 'cgroup'} names kubepods"


def test_a_child_reaped_inside_the_window_leaves_its_cpu_time_at_exit() -> None:
    # A real child that burns about 0.3 s of CPU and exits; the runner reaps it with wait4.
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    process = FfmpegProcess([sys.executable, "-c", burn], name="burn").start()
    accountant = CpuAccountant(clk_tck=None)
    start = accountant.read([process])  # from /proc/<pid>/stat: it is running
    assert start.problems == () and start.processes_s[0] is not None
    assert process.wait(30) == 0
    assert process.reaped
    assert process.exit_cpu_s is not None and 0.3 <= process.exit_cpu_s <= 5
    assert process.poll() == 0  # the status stays; nothing is reaped twice
    accounting = accountant.between(start, accountant.read([process]))
    assert 0.1 <= accounting.transcode_cpu_s <= process.exit_cpu_s + 1e-6  # kept to 1 µs
    with pytest.raises(AccountingError, match="different processes"):
        accountant.between(start, accountant.read(()))
    accountant.close()


def test_exit_status_of_a_signalled_child_is_kept() -> None:
    process = FfmpegProcess(
        [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"],
        name="killed",
    ).start()
    assert process.wait(30) == -15
    assert process.exit_cpu_s is not None
