"""CPU time counters of the host, of one process and of one cgroup: the parsers every component
shares (cpu-rapl-client's estimate, docker-overhead-client, ffmpeg-runner's accounting).

- ``/proc/stat``: the aggregate ``cpu`` line, in USER_HZ ticks. **busy** = user + nice + system
  + irq + softirq; **total** = busy + idle + iowait + steal (guest and guest_nice are already
  inside user and nice). ``/proc/stat`` is not namespaced: inside a container it still
  describes the whole host.
- ``/proc/<pid>/stat``: utime + stime of every thread of the process (its children excluded),
  in USER_HZ ticks.
- a cgroup's CPU usage: v2 ``cpu.stat`` ``usage_usec``, v1 ``cpuacct.usage`` (nanoseconds).

Parsers take the bytes a caller read (kept-open files, fake trees); none of them does I/O.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

# Fields of the aggregate "cpu" line, after the label.
_USER, _NICE, _SYSTEM, _IDLE, _IOWAIT, _IRQ, _SOFTIRQ, _STEAL = range(8)
# A "cpuN" line after the first: a literal prefix, which the regex engine finds fast.
_CPU_LINE = re.compile(rb"\ncpu\d")
#: The line after the last cpuN line of /proc/stat: read it until this is in the buffer.
AFTER_CPUS = b"\nintr"
_USAGE_USEC = b"usage_usec "


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """The host's CPU time so far (``/proc/stat``): busy and total ticks, online CPUs."""

    busy: int
    total: int
    cpus: int


def parse_proc_stat(text: str) -> CpuTimes:
    """Aggregate busy/total ticks and the number of online CPUs; ValueError if malformed."""
    return CpuTimes(*proc_stat_times(text.encode("ascii", "replace")))


def proc_stat_times(data: bytes) -> tuple[int, int, int]:
    """``parse_proc_stat`` on bytes, as a plain tuple (busy, total, cpus): the per-tick path."""
    fields = data.partition(b"\n")[0].split()
    if len(fields) < 5 or fields[0] != b"cpu":
        raise ValueError("the first line of /proc/stat is not the aggregate 'cpu' line")
    v = [*map(int, fields[1:9]), 0, 0, 0, 0]  # old kernels lack the last columns: 0
    busy = v[_USER] + v[_NICE] + v[_SYSTEM] + v[_IRQ] + v[_SOFTIRQ]
    total = busy + v[_IDLE] + v[_IOWAIT] + v[_STEAL]
    # One pass in C instead of a Python loop over every line (the first is "cpu ", not "\ncpuN").
    end = data.find(AFTER_CPUS)
    cpus = len(_CPU_LINE.findall(data, 0, len(data) if end < 0 else end))
    if cpus == 0:
        raise ValueError("/proc/stat lists no cpuN lines")
    return busy, total, cpus


def parse_proc_pid_stat(data: bytes) -> tuple[int, int, int] | None:
    """(utime + stime in USER_HZ ticks, start time since boot, RSS pages) of /proc/<pid>/stat;
    None when malformed.

    Children are excluded; (pid, start time) identifies one process lifetime.
    """
    # comm (field 2) may contain spaces and ')', so split after the last ')'.
    end = data.rfind(b")")
    if end < 0:
        return None
    fields = data[end + 2 :].split(None, 22)
    try:
        return int(fields[11]) + int(fields[12]), int(fields[19]), int(fields[21])
    except (IndexError, ValueError):
        return None


def parse_cgroup_cpu_usage_ns(data: bytes, version: int) -> int | None:
    """A cgroup's cumulative CPU time in nanoseconds: ``cpu.stat`` (v2, ``usage_usec``) or
    ``cpuacct.usage`` (v1, already ns); None when malformed."""
    try:
        if version == 1:
            return int(data)
        # cpu.stat starts with "usage_usec N"; search anyway in case the order changes.
        if data.startswith(_USAGE_USEC):
            return int(data[len(_USAGE_USEC) : data.index(b"\n")]) * 1000
        for line in data.split(b"\n"):
            if line.startswith(_USAGE_USEC):
                return int(line[len(_USAGE_USEC) :]) * 1000
    except ValueError:
        return None
    return None


def clock_ticks_per_second() -> int:
    """USER_HZ: the unit of /proc/stat and /proc/<pid>/stat times (100 on Linux)."""
    return os.sysconf("SC_CLK_TCK")
