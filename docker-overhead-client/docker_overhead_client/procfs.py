"""Readers for procfs files, rooted at HOST_PROC so a container can read the host's /proc.

Everything here is called at SAMPLE_INTERVAL_S, so reads are single ``os.read`` calls on
small buffers and parsers touch only the fields they need.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass

from base_monitoring_client.openfiles import read_once

#: /proc/stat ``cpu`` line columns, in order; guest/guest_nice are already inside user/nice.
HOST_CPU_MODES: tuple[str, ...] = (
    "user",
    "nice",
    "system",
    "idle",
    "iowait",
    "irq",
    "softirq",
    "steal",
)
DEFAULT_ENGINE_PATTERNS: tuple[str, ...] = (
    "dockerd",
    "containerd",
    "containerd-shim*",
    "docker-proxy",
)


def parse_host_cpu_ticks(data: bytes) -> tuple[int, ...] | None:
    """Ticks per mode (HOST_CPU_MODES order) from the aggregate ``cpu`` line of /proc/stat."""
    line = data.split(b"\n", 1)[0]
    fields = line.split()
    if len(fields) < 5 or fields[0] != b"cpu":
        return None
    values = [int(v) for v in fields[1 : 1 + len(HOST_CPU_MODES)]]
    # Old kernels lack the trailing columns; report them as 0 rather than dropping the line.
    values.extend([0] * (len(HOST_CPU_MODES) - len(values)))
    return tuple(values)


def net_dev_lines(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(interface, received bytes, transmitted bytes) per line of /proc/<pid>/net/dev,
    loopback and short lines left out."""
    for line in data.split(b"\n")[2:]:
        name, sep, rest = line.partition(b":")
        if not sep:
            continue
        iface = name.strip()
        if iface == b"lo":
            continue
        fields = rest.split()
        if len(fields) >= 9:
            yield iface, int(fields[0]), int(fields[8])


def parse_net_dev(data: bytes) -> tuple[dict[bytes, int], dict[bytes, int]]:
    """(received bytes, transmitted bytes) per interface, loopback excluded."""
    rx: dict[bytes, int] = {}
    tx: dict[bytes, int] = {}
    for iface, r, t in net_dev_lines(data):
        rx[iface] = r
        tx[iface] = t
    return rx, tx


class NetDevCounter:
    """Received and transmitted bytes of one network namespace, summed over its interfaces
    (loopback excluded), kept monotonic: ``net_dev_lines`` under the ``SummedCounter`` rules (same
    epoch and reset rules) in one pass over /proc/<pid>/net/dev, with no dict per reading."""

    __slots__ = ("_epoch", "_last", "rx", "tx")

    def __init__(self) -> None:
        self.rx = 0
        self.tx = 0
        self._epoch: Hashable = None
        self._last: dict[bytes, tuple[int, int]] = {}

    def update(self, epoch: Hashable, data: bytes) -> tuple[int, int]:
        """Feed one read of the file; returns the (received, transmitted) totals."""
        if epoch != self._epoch:
            self._epoch = epoch
            self._last = {}
        last = self._last
        rx, tx = self.rx, self.tx
        for iface, r, t in net_dev_lines(data):
            prev = last.get(iface)
            if prev is None:
                rx += r
                tx += t
            else:
                rx += r if r < prev[0] else r - prev[0]
                tx += t if t < prev[1] else t - prev[1]
            last[iface] = (r, t)
        self.rx, self.tx = rx, tx
        return rx, tx


@dataclass(frozen=True, slots=True)
class EngineProcess:
    """One process of the container runtime found in HOST_PROC."""

    name: str  # the `process` label, e.g. "containerd-shim-runc-v2"
    pid: int
    stat_path: str


def engine_process_name(comm: str, cmdline: bytes, patterns: Sequence[str]) -> str | None:
    """The label for a runtime process, or None when it is not one.

    comm is cut to 15 characters ("containerd-shim" for containerd-shim-runc-v2), so the
    basename of argv[0] names it when that matches too.
    """
    argv0 = os.path.basename(cmdline.split(b"\0", 1)[0].decode("utf-8", "replace"))
    for pattern in patterns:
        if argv0 and fnmatch.fnmatchcase(argv0, pattern):
            return argv0
    for pattern in patterns:
        if fnmatch.fnmatchcase(comm, pattern):
            # A truncated comm matching a glob: prefer argv0 when it extends the comm.
            return argv0 if argv0.startswith(comm) and argv0 else comm
    return None


def scan_engine_processes(proc_root: str, patterns: Sequence[str]) -> list[EngineProcess]:
    """Walk HOST_PROC once; only comm is read for processes that are not the runtime's."""
    found: list[EngineProcess] = []
    try:
        entries = os.listdir(proc_root)
    except OSError:
        return found
    prefixes = tuple({p.split("*", 1)[0].split("?", 1)[0][:15] for p in patterns})
    for entry in entries:
        if not entry.isdigit():
            continue
        base = f"{proc_root}/{entry}"
        raw = read_once(f"{base}/comm", 64)
        if raw is None:
            continue
        comm = raw.rstrip(b"\n").decode("utf-8", "replace")
        # Cheap pre-filter before reading cmdline: every pattern starts with a literal.
        if not comm.startswith(prefixes):
            continue
        cmdline = read_once(f"{base}/cmdline", 4096) or b""
        if not cmdline:
            continue  # kernel threads and zombies have no cmdline
        name = engine_process_name(comm, cmdline, patterns)
        if name is not None:
            found.append(EngineProcess(name, int(entry), f"{base}/stat"))
    found.sort(key=lambda p: (p.name, p.pid))
    return found
