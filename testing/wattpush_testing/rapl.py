"""Fake powercap trees and fake /proc/stat for the cpu-rapl-client tests.

``FakePowercap`` lays zones out like sysfs: real directories nested under
``devices/virtual/powercap/<type>/<type>:<i>/<type>:<i>:<j>`` and, at ``class/powercap``, one
relative symlink per control type and per zone (the flat view of /sys/class/powercap).
``root("flat")`` or ``root("nested")`` is what RAPL_POWERCAP_DIR points at.
Counters are written atomically (write + rename) so a concurrent reader never sees a torn file.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from cpu_rapl_client.zones import read_sysfs

DEFAULT_MAX_UJ = 262_143_328_850  # a common value on Intel client and server parts


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class FakePowercap:
    def __init__(self, base: Path) -> None:
        self.base = Path(base)
        self.devices = self.base / "devices" / "virtual" / "powercap"
        self.klass = self.base / "class" / "powercap"
        self.devices.mkdir(parents=True, exist_ok=True)
        self.klass.mkdir(parents=True, exist_ok=True)
        self.zones: dict[str, Path] = {}

    def root(self, layout: str = "flat") -> Path:
        return self.klass if layout == "flat" else self.devices

    def zone_dir(self, zone_id: str) -> Path:
        return self.zones[zone_id]

    def add_zone(
        self,
        zone_id: str,
        name: str,
        energy_uj: int = 0,
        max_energy_range_uj: int | None = DEFAULT_MAX_UJ,
    ) -> Path:
        """``zone_id`` like ``intel-rapl:0`` or ``intel-rapl:0:1`` (parent must exist)."""
        control_type, _, rest = zone_id.partition(":")
        parts = rest.split(":")
        type_dir = self.devices / control_type
        if not type_dir.exists():
            type_dir.mkdir()
            (type_dir / "enabled").write_text("1\n")
            os.symlink(os.path.relpath(type_dir, self.klass), self.klass / control_type)
        parent = type_dir
        for depth in range(1, len(parts)):
            parent = parent / f"{control_type}:{':'.join(parts[:depth])}"
        path = parent / zone_id
        path.mkdir()
        (path / "name").write_text(name + "\n")
        (path / "energy_uj").write_text(f"{energy_uj}\n")
        if max_energy_range_uj is not None:
            (path / "max_energy_range_uj").write_text(f"{max_energy_range_uj}\n")
        (path / "enabled").write_text("1\n")
        (path / "constraint_0_name").write_text("long_term\n")
        os.symlink(os.path.relpath(path, self.klass), self.klass / zone_id)
        self.zones[zone_id] = path
        return path

    def set_energy(self, zone_id: str, energy_uj: int) -> None:
        write_atomic(self.zones[zone_id] / "energy_uj", f"{energy_uj}\n")

    def remove_zone(self, zone_id: str) -> None:
        path = self.zones.pop(zone_id)
        (self.klass / zone_id).unlink()
        for child in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            child.rmdir() if child.is_dir() else child.unlink()
        path.rmdir()


def intel_single_socket(base: Path, *, mmio: bool = True, psys: bool = True) -> FakePowercap:
    """A client part: package-0 with core and uncore, psys, and the MMIO mirror of package-0."""
    tree = FakePowercap(base)
    tree.add_zone("intel-rapl:0", "package-0", 1_000_000)
    tree.add_zone("intel-rapl:0:0", "core", 400_000)
    tree.add_zone("intel-rapl:0:1", "uncore", 100_000)
    if psys:
        tree.add_zone("intel-rapl:1", "psys", 5_000_000)
    if mmio:
        tree.add_zone("intel-rapl-mmio:0", "package-0", 1_000_000)
    return tree


def intel_dual_socket_dram(base: Path) -> FakePowercap:
    """A two-socket server: each package has a dram sub-zone (dram is NOT inside package)."""
    tree = FakePowercap(base)
    tree.add_zone("intel-rapl:0", "package-0", 10_000_000, 262_143_328_850)
    tree.add_zone("intel-rapl:0:0", "dram", 2_000_000, 65_712_999_613)
    tree.add_zone("intel-rapl:1", "package-1", 20_000_000, 262_143_328_850)
    tree.add_zone("intel-rapl:1:0", "dram", 3_000_000, 65_712_999_613)
    return tree


def amd_rapl(base: Path) -> FakePowercap:
    """AMD: package and core only, no dram/uncore/psys."""
    tree = FakePowercap(base)
    tree.add_zone("amd-rapl:0", "package-0", 7_000_000, 65_532_610_987)
    tree.add_zone("amd-rapl:0:0", "core", 3_000_000, 65_532_610_987)
    return tree


def proc_stat_text(busy: int, idle: int, cpus: int) -> str:
    """/proc/stat with ``busy`` jiffies split over user/system and ``idle`` idle jiffies."""
    user, system = busy - busy // 4, busy // 4
    lines = [f"cpu  {user} 0 {system} {idle} 0 0 0 0 0 0"]
    lines += [f"cpu{i} 1 0 1 1 0 0 0 0 0 0" for i in range(cpus)]
    lines += ["intr 1 2 3", "ctxt 100", "btime 1700000000", "processes 10"]
    return "\n".join(lines) + "\n"


def write_proc_stat(proc: Path, busy: int, idle: int, cpus: int) -> None:
    proc.mkdir(parents=True, exist_ok=True)
    write_atomic(proc / "stat", proc_stat_text(busy, idle, cpus))


def denying_reader(
    denied: Callable[[Path], bool], base: Callable[[Path], str] | None = None
) -> Callable[[Path], str]:
    """A reader that raises PermissionError for chosen paths (chmod 000 does not stop root)."""
    inner = base or read_sysfs

    def read(path: Path) -> str:
        if denied(path):
            raise PermissionError(13, "Permission denied", str(path))
        return inner(path)

    return read


class ScheduleWriter:
    """Advances zone counters on a fixed schedule in a named thread.

    ``steps`` is a list of per-step increments in µJ for each zone; every ``period_s`` the next
    step is applied (counter modulo max+1) and the cumulative value appended to ``history``.
    """

    def __init__(
        self,
        tree: FakePowercap,
        start_uj: dict[str, int],
        max_uj: dict[str, int],
        steps: Iterable[dict[str, int]],
        period_s: float,
    ) -> None:
        self.tree = tree
        self.total = dict(start_uj)
        self.max_uj = max_uj
        self.steps = list(steps)
        self.period_s = period_s
        self.history: dict[str, list[int]] = {z: [v] for z, v in start_uj.items()}
        self.wraps: dict[str, int] = dict.fromkeys(start_uj, 0)
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rapl-schedule", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        start = time.monotonic()
        for i, step in enumerate(self.steps, start=1):
            if self._stop.wait(max(0.0, start + i * self.period_s - time.monotonic())):
                return
            for zone_id, inc in step.items():
                before = self.total[zone_id] // (self.max_uj[zone_id] + 1)
                self.total[zone_id] += inc
                after = self.total[zone_id] // (self.max_uj[zone_id] + 1)
                self.wraps[zone_id] += after - before
                self.tree.set_energy(zone_id, self.total[zone_id] % (self.max_uj[zone_id] + 1))
                self.history[zone_id].append(self.total[zone_id])
        self.done.set()
