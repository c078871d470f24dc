"""Per-container CPU and memory from cgroup files (v2 unified, v1 fallback), rooted at HOST_CGROUP.

The refresher thread resolves each container's files once (``ContainerFiles``); the sampler
only reads them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from base_monitoring_client.cputime import parse_cgroup_cpu_usage_ns
from base_monitoring_client.openfiles import read_once

from .errors import HostLayoutError

#: How the sampler reads a file: (path, max bytes) -> content, None when unreadable.
Reader = Callable[[str, int], bytes | None]

_V1_CPU_DIRS = ("cpuacct", "cpu,cpuacct", "cpuacct,cpu")
_WALK_DEPTH = 6


@dataclass(frozen=True, slots=True)
class CgroupLayout:
    """Which cgroup version HOST_CGROUP holds and where the CPU and memory hierarchies are."""

    root: str
    version: int  # 2 = unified, 1 = legacy/hybrid (controllers in per-controller mounts)
    cpu_root: str
    memory_root: str

    @classmethod
    def detect(cls, root: Path | str) -> CgroupLayout:
        base = str(root).rstrip("/") or "/"
        if os.path.exists(f"{base}/cgroup.controllers"):
            return cls(base, 2, base, base)
        cpu_root = next(
            (f"{base}/{d}" for d in _V1_CPU_DIRS if os.path.exists(f"{base}/{d}/cpuacct.usage")),
            None,
        )
        memory_root = f"{base}/memory"
        if cpu_root is None or not os.path.isdir(memory_root):
            raise HostLayoutError(
                f"HOST_CGROUP={root}: neither a cgroup v2 hierarchy (no cgroup.controllers) "
                "nor cgroup v1 (no cpuacct/ with memory/); fix: mount the host's /sys/fs/cgroup "
                "read-only (compose: `/sys/fs/cgroup:/host/sys/fs/cgroup:ro`) and point "
                "HOST_CGROUP at it"
            )
        return cls(base, 1, cpu_root, memory_root)

    # File names and parsing rules per version.
    @property
    def cpu_file(self) -> str:
        return "cpu.stat" if self.version == 2 else "cpuacct.usage"

    @property
    def memory_usage_file(self) -> str:
        return "memory.current" if self.version == 2 else "memory.usage_in_bytes"

    @property
    def inactive_file_key(self) -> bytes:
        # v1 memory.stat: total_* include descendants, which is what the container owns.
        return b"inactive_file " if self.version == 2 else b"total_inactive_file "


@dataclass(frozen=True, slots=True)
class ContainerFiles:
    """Absolute paths the sampler reads for one container."""

    cpu: str
    memory_usage: str
    memory_stat: str
    version: int
    inactive_key: bytes

    def cpu_ns(self, read: Reader = read_once) -> int | None:
        """Cumulative CPU time of the container in nanoseconds."""
        data = read(self.cpu, 4096)
        return parse_cgroup_cpu_usage_ns(data, self.version) if data else None

    def memory_usage_bytes(self, read: Reader = read_once) -> int | None:
        """memory.current / memory.usage_in_bytes: everything charged, page cache included."""
        data = read(self.memory_usage, 64)
        if not data:
            return None
        try:
            return int(data)
        except ValueError:
            return None

    def inactive_file_bytes(self, read: Reader = read_once) -> int:
        """Inactive page cache from memory.stat (0 when unreadable)."""
        stat = read(self.memory_stat, 8192)
        if not stat:
            return 0
        key = self.inactive_key
        at = stat.find(key)
        # Match a whole key: at line start only ("inactive_file" is inside others in v1).
        while at > 0 and stat[at - 1 : at] != b"\n":
            at = stat.find(key, at + 1)
        if at < 0:
            return 0
        end = stat.find(b"\n", at)
        try:
            return int(stat[at + len(key) : end if end >= 0 else None])
        except ValueError:
            return 0

    def memory_bytes(self, read: Reader = read_once) -> int | None:
        """Working set: usage minus inactive page cache (what `docker stats` shows)."""
        usage = self.memory_usage_bytes(read)
        if usage is None:
            return None
        return max(0, usage - self.inactive_file_bytes(read))


def _paths_from_proc(proc_root: str, pid: int, version: int) -> dict[str, str]:
    """Controller -> cgroup path from /proc/<pid>/cgroup ("" key = the v2 line)."""
    if pid <= 0:
        return {}
    data = read_once(f"{proc_root}/{pid}/cgroup", 16384)
    if not data:
        return {}
    result: dict[str, str] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        # A path with /.. is relative to a cgroup namespace other than HOST_CGROUP's view.
        if "/.." in path or not path.startswith("/"):
            continue
        if version == 2 and controllers == "":
            result[""] = path
        for c in controllers.split(","):
            if c:
                result[c] = path
    return result


def _walk_for(root: str, names: set[str]) -> str | None:
    """Bounded breadth-first search for a directory with one of ``names`` (last resort)."""
    level = [root]
    for _ in range(_WALK_DEPTH):
        nxt: list[str] = []
        for d in level:
            try:
                with os.scandir(d) as it:
                    for entry in it:
                        if entry.is_dir(follow_symlinks=False):
                            if entry.name in names:
                                return entry.path
                            nxt.append(entry.path)
            except OSError:
                continue
        level = nxt
        if not level:
            break
    return None


def _candidates(container_id: str, cgroup_parent: str, from_proc: str | None) -> Iterator[str]:
    if from_proc:
        yield from_proc
    parents = [p for p in (cgroup_parent, "system.slice", "docker") if p]
    for raw_parent in parents:
        parent = "/" + raw_parent.strip("/")
        # systemd cgroup driver: <parent>/docker-<id>.scope; cgroupfs driver: <parent>/<id>.
        yield f"{parent}/docker-{container_id}.scope"
        yield f"{parent}/{container_id}"
    # A slice given as CgroupParent with the systemd driver ("my.slice" -> my.slice/...).
    if cgroup_parent.endswith(".slice"):
        yield f"/{cgroup_parent}/docker-{container_id}.scope"


def _resolve_dir(
    root: str, container_id: str, cgroup_parent: str, from_proc: str | None, marker: str
) -> str | None:
    for rel in _candidates(container_id, cgroup_parent, from_proc):
        d = root + rel.rstrip("/") if rel != "/" else root
        if os.path.exists(f"{d}/{marker}"):
            return d
    return _walk_for(root, {container_id, f"docker-{container_id}.scope"})


def resolve_container_files(
    layout: CgroupLayout, proc_root: str, container_id: str, pid: int, cgroup_parent: str = ""
) -> ContainerFiles | None:
    """Find the container's cgroup files; None when its cgroup is not (or no longer) there."""
    from_proc = _paths_from_proc(proc_root, pid, layout.version)
    if layout.version == 2:
        d = _resolve_dir(layout.root, container_id, cgroup_parent, from_proc.get(""), "cpu.stat")
        if d is None:
            return None
        cpu_dir = mem_dir = d
    else:
        cpu = _resolve_dir(
            layout.cpu_root, container_id, cgroup_parent, from_proc.get("cpuacct"), "cpuacct.usage"
        )
        mem = _resolve_dir(
            layout.memory_root,
            container_id,
            cgroup_parent,
            from_proc.get("memory"),
            "memory.usage_in_bytes",
        )
        if cpu is None or mem is None:
            return None
        cpu_dir, mem_dir = cpu, mem
    return ContainerFiles(
        cpu=f"{cpu_dir}/{layout.cpu_file}",
        memory_usage=f"{mem_dir}/{layout.memory_usage_file}",
        memory_stat=f"{mem_dir}/memory.stat",
        version=layout.version,
        inactive_key=layout.inactive_file_key,
    )
