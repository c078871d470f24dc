"""Process accounting: the CPU time a window's ffmpeg processes, the host and (in a container)
the runner's own cgroup used inside the window, read at its two edges.

A reading is a handful of reads of files the kernel regenerates on each read: ``/proc/stat``
(kept open, ``pread``), ``/proc/<pid>/stat`` of every ffmpeg process of the window, and the
cgroup's ``cpu.stat`` (v2) or ``cpuacct.usage`` (v1). No process is started and nothing
sleeps, so reading does not disturb the window (``bench/accounting_bench.py`` measures it).
Busy and total host time are counted by ``base_monitoring_client.cputime``, the parser
cpu-rapl-client's estimate uses. An ffmpeg that has already been reaped (it exited inside the
window) is not read from /proc, whose entry is gone or, worse, may belong to a new process by
now: its CPU time at exit comes from the rusage ``wait4`` returned when it was reaped
(``FfmpegProcess.exit_cpu_s``).

Readings happen on the runner thread, the only thread that reaps ffmpeg children, so a
process seen unreaped stays ours (a zombie at worst) while its /proc entry is read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from base_monitoring_client.cputime import (
    clock_ticks_per_second,
    parse_cgroup_cpu_usage_ns,
    parse_proc_pid_stat,
    proc_stat_times,
)
from base_monitoring_client.openfiles import OpenFiles, read_once

from .contract import Accounting
from .errors import RunnerError

log = logging.getLogger(__name__)

_STAT_BYTES = 4096  # the aggregate line and the first cpuN lines: all a reading needs
_PID_STAT_BYTES = 1024
_CGROUP_BYTES = 4096
# Files a container runtime leaves in the root of a container's filesystem.
_CONTAINER_FILES = (".dockerenv", "run/.containerenv")
# Cgroup paths of containers (docker, containerd/kubernetes, podman, LXC, CRI-O).
_CONTAINER_CGROUP_WORDS = ("docker", "kubepods", "containerd", "libpod", "lxc", "crio")
_V1_CPUACCT_DIRS = ("cpuacct", "cpu,cpuacct", "cpuacct,cpu")


class AccountingError(RunnerError):
    """A window's CPU time could not be read; the window is kept without accounting."""


class Accountable(Protocol):
    """What the accountant needs of a process: its pid while it is ours, its CPU time once it
    has been reaped."""

    @property
    def pid(self) -> int | None: ...

    @property
    def exit_cpu_s(self) -> float | None: ...

    @property
    def reaped(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class CpuReading:
    """Counters at one window edge. ``processes_s``: CPU seconds so far of each process (None:
    unreadable, with the reason in ``problems``); host ticks from /proc/stat; the cgroup's
    usage in ns (None outside a container)."""

    processes_s: tuple[float | None, ...]
    host_busy_ticks: int | None
    host_total_ticks: int | None
    cgroup_ns: int | None
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CgroupCpuFile:
    """The runner's own cgroup CPU usage file."""

    path: Path
    version: int  # 2: cpu.stat usage_usec, 1: cpuacct.usage (ns)


def container_evidence(
    root: Path = Path("/"), proc_root: Path = Path("/proc"), env: Mapping[str, str] | None = None
) -> str | None:
    """What says this process runs in a container (for the log), or None outside one."""
    for name in _CONTAINER_FILES:
        if (root / name).exists():
            return f"{root / name} exists"
    environ = os.environ if env is None else env
    if environ.get("KUBERNETES_SERVICE_HOST"):
        return "KUBERNETES_SERVICE_HOST is set"
    if environ.get("container"):
        return f"container={environ['container']} is set"
    for path in (proc_root / "self" / "cgroup", proc_root / "1" / "cgroup"):
        text = _read_text(path)
        for word in _CONTAINER_CGROUP_WORDS:
            if f"/{word}" in text or f"{word}-" in text:
                return f"{path} names {word}"
    return None


def own_cgroup_cpu_file(
    proc_root: Path = Path("/proc"), cgroup_root: Path = Path("/sys/fs/cgroup")
) -> CgroupCpuFile | None:
    """The CPU usage file of the cgroup this process is in, None when none is readable.

    The path from ``/proc/self/cgroup`` is tried below ``cgroup_root`` first, then
    ``cgroup_root`` itself: with a cgroup namespace (or a runtime that mounts the container's
    own cgroup at the root, as docker does on cgroup v1) the container's cgroup *is* the root.
    """
    lines = _read_text(proc_root / "self" / "cgroup").splitlines()
    unified = (cgroup_root / "cgroup.controllers").exists()
    candidates: list[CgroupCpuFile] = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        relative = path.strip().lstrip("/")
        if unified and hierarchy == "0" and controllers == "":
            for base in (cgroup_root / relative, cgroup_root):
                candidates.append(CgroupCpuFile(base / "cpu.stat", 2))
        elif not unified and "cpuacct" in controllers.split(","):
            for name in _V1_CPUACCT_DIRS:
                for base in (cgroup_root / name / relative, cgroup_root / name):
                    candidates.append(CgroupCpuFile(base / "cpuacct.usage", 1))
    for candidate in candidates:
        data = read_once(candidate.path, _CGROUP_BYTES)
        if data and parse_cgroup_cpu_usage_ns(data, candidate.version) is not None:
            return candidate
    return None


class CpuAccountant:
    """Reads CPU time at window edges and turns two readings into an ``Accounting``.

    ``cgroup``: the runner's own cgroup usage file, or None (``detect`` finds it, inside a
    container only). Only the runner thread may use an instance.
    """

    def __init__(
        self,
        proc_root: Path = Path("/proc"),
        *,
        cgroup: CgroupCpuFile | None = None,
        clk_tck: int | None = None,
    ) -> None:
        self.proc_root = proc_root
        self.cgroup = cgroup
        self.clk_tck = clk_tck or clock_ticks_per_second()
        self._proc = str(proc_root)
        self._stat_path = str(proc_root / "stat")
        self._cgroup_path = str(cgroup.path) if cgroup else ""
        self._files = OpenFiles(max_open=4)

    @classmethod
    def detect(
        cls,
        proc_root: Path = Path("/proc"),
        cgroup_root: Path = Path("/sys/fs/cgroup"),
        *,
        root: Path = Path("/"),
        env: Mapping[str, str] | None = None,
        clk_tck: int | None = None,
    ) -> CpuAccountant:
        """An accountant for this machine: with the runner's cgroup inside a container; outside
        one the runner's cgroup is a user session or a service, not a unit worth recording."""
        evidence = container_evidence(root, proc_root, env)
        cgroup = own_cgroup_cpu_file(proc_root, cgroup_root) if evidence else None
        if evidence and cgroup is None:
            log.warning(
                "accounting: running in a container (%s) but no readable cgroup CPU usage "
                "under %s; cgroup_cpu_s stays empty (mount the cgroup filesystem to fix)",
                evidence, cgroup_root,
            )  # fmt: skip
        return cls(proc_root, cgroup=cgroup, clk_tck=clk_tck)

    def describe(self) -> str:
        """What a window's accounting reads, for the log."""
        cgroup = (
            f"cgroup CPU {self.cgroup.path} (v{self.cgroup.version})"
            if self.cgroup
            else "no cgroup CPU (not in a container)"
        )
        return f"ffmpeg /proc/<pid>/stat, host {self._stat_path}, {cgroup}"

    def read(self, processes: Sequence[Accountable]) -> CpuReading:
        """Every counter now. Never raises: what cannot be read is None, with its reason."""
        problems: list[str] = []
        processes_s = tuple(self._process_s(p, problems) for p in processes)
        busy = total = None
        try:
            busy, total, _ = proc_stat_times(self._files.pread(self._stat_path, _STAT_BYTES))
        except (OSError, ValueError) as exc:
            problems.append(f"{self._stat_path}: {exc}")
        cgroup_ns = None
        if self.cgroup is not None:
            data = self._files.read(self._cgroup_path, _CGROUP_BYTES)
            cgroup_ns = parse_cgroup_cpu_usage_ns(data, self.cgroup.version) if data else None
            if cgroup_ns is None:
                problems.append(f"{self._cgroup_path}: unreadable")
        return CpuReading(processes_s, busy, total, cgroup_ns, tuple(problems))

    def _process_s(self, process: Accountable, problems: list[str]) -> float | None:
        if process.reaped:
            if process.exit_cpu_s is None:
                problems.append(f"process {process.pid}: reaped without its CPU time")
            return process.exit_cpu_s
        pid = process.pid
        if pid is None:
            problems.append("a process of the window never started")
            return None
        # Opened per read, never kept: a kept descriptor of a pid outlives the process.
        path = f"{self._proc}/{pid}/stat"
        data = read_once(path, _PID_STAT_BYTES)
        stat = parse_proc_pid_stat(data) if data else None
        if stat is None:
            problems.append(f"{path}: unreadable")
            return None
        return stat[0] / self.clk_tck

    def between(self, start: CpuReading, end: CpuReading) -> Accounting:
        """The window's accounting; AccountingError names what is missing."""
        problems = start.problems + end.problems
        if len(start.processes_s) != len(end.processes_s):
            problems += ("the edges read different processes",)
        if problems or start.host_busy_ticks is None or end.host_busy_ticks is None:
            raise AccountingError("; ".join(problems) or "no host CPU time")
        assert start.host_total_ticks is not None and end.host_total_ticks is not None
        transcode_s = 0.0
        for before, after in zip(start.processes_s, end.processes_s, strict=True):
            assert before is not None and after is not None  # else a problem was reported
            transcode_s += max(0.0, after - before)
        cgroup_s = None
        if start.cgroup_ns is not None and end.cgroup_ns is not None:
            cgroup_s = max(0, end.cgroup_ns - start.cgroup_ns) / 1e9
        busy_ticks = max(0, end.host_busy_ticks - start.host_busy_ticks)
        total_ticks = max(0, end.host_total_ticks - start.host_total_ticks)
        # Rounded to 1 µs, far below the counters' resolution (a tick is 10 ms): no float noise.
        return Accounting(
            transcode_cpu_s=round(transcode_s, 6),
            host_busy_cpu_s=round(busy_ticks / self.clk_tck, 6),
            host_total_cpu_s=round(total_ticks / self.clk_tck, 6),
            cgroup_cpu_s=None if cgroup_s is None else round(cgroup_s, 6),
            processes=len(start.processes_s),
        )

    def close(self) -> None:
        self._files.close()


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
