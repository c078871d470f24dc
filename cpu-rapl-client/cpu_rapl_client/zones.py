"""Discovery of RAPL powercap zones.

A zone's identity comes from its own ``name`` file (``package-0``, ``core``, ``dram``,
``psys``, ...) and from its place in the tree: ``<control-type>:<i>`` is a top-level zone and
``<control-type>:<i>:<j>`` is a sub-zone of ``<control-type>:<i>``, whose package gives the
socket. Directory names are parsed exactly (control type, then integers), never matched with a
pattern that could confuse a sub-zone with a package.

Both layouts are understood: the flat one of ``/sys/class/powercap`` (every zone a symlink at
the top) and the nested one of ``/sys/devices/virtual/powercap`` (zones inside their control
type and parent), which is what survives a bind mount into a container.

The same package can be reported by several control types (``intel-rapl`` through MSRs and
``intel-rapl-mmio`` through MMIO): zones are keyed by (zone, socket) and kept once, preferring
the MSR interface and falling back to a mirror only when the preferred copy is unreadable.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

Reader = Callable[[Path], str]

# Zone names as the kernel writes them in the zone's ``name`` file.
_PACKAGE_NAME = re.compile(r"^package-(\d+)(?:-die-(\d+))?$")
_LABEL_UNSAFE = re.compile(r"[^a-z0-9_]+")
PLATFORM_SOCKET = "platform"
# Lower is preferred when two control types report the same zone.
_CONTROL_TYPE_PREFERENCE = {"intel-rapl": 0, "amd-rapl": 0, "intel-rapl-mmio": 2}
_MAX_DEPTH = 4  # control type / zone / sub-zone (+ slack); bounds the walk in odd trees


def read_sysfs(path: Path) -> str:
    """One sysfs attribute: open, read, close (a fresh read makes the kernel sample again)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 4096).decode("ascii", "replace")
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class Zone:
    """One readable energy counter, identified for users by ``(zone, socket)``."""

    zone: str  # package | core | uncore | dram | psys | other kernel name
    socket: str  # "0", "1", "0-die-1" on multi-die parts, "platform" for psys
    control_type: str  # intel-rapl | intel-rapl-mmio | amd-rapl | ...
    index: tuple[int, ...]
    path: Path
    name: str  # the raw content of the zone's name file
    max_energy_range_uj: int | None

    @property
    def key(self) -> tuple[str, str]:
        return (self.zone, self.socket)

    @property
    def energy_path(self) -> Path:
        return self.path / "energy_uj"

    @property
    def sysfs_id(self) -> str:
        return f"{self.control_type}:{':'.join(map(str, self.index))}"


@dataclass
class Discovery:
    zones: list[Zone] = field(default_factory=list)  # readable, one per (zone, socket)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (what, why)
    mirrors: list[Zone] = field(default_factory=list)  # duplicates that were not kept
    root_problem: str | None = None

    def summary(self) -> str:
        """Why nothing (or not everything) is readable, in one line."""
        if self.root_problem:
            return self.root_problem
        if not self.zones and not self.unreadable:
            return "no RAPL zone (intel-rapl, intel-rapl-mmio, amd-rapl) under the powercap root"
        return "; ".join(f"{what}: {why}" for what, why in self.unreadable)


@dataclass(frozen=True, slots=True)
class _Candidate:
    control_type: str
    index: tuple[int, ...]
    path: Path


def _walk(root: Path) -> tuple[dict[tuple[str, tuple[int, ...]], Path], str | None]:
    found: dict[tuple[str, tuple[int, ...]], Path] = {}

    def visit(directory: str, depth: int) -> str | None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            return exc.strerror or str(exc)
        for entry in entries:
            control_type, sep, rest = entry.name.partition(":")
            if "rapl" not in control_type:
                continue
            try:
                if not entry.is_dir():  # follows the symlinks of /sys/class/powercap
                    continue
            except OSError:
                continue
            if not sep:
                if depth == 0:  # a control type directory of the nested layout
                    visit(entry.path, 1)
                continue
            parts = rest.split(":")
            if not all(p.isdigit() for p in parts):
                continue
            index = tuple(int(p) for p in parts)
            found.setdefault((control_type, index), Path(entry.path))
            if depth < _MAX_DEPTH:
                visit(entry.path, depth + 1)
        return None

    problem = visit(str(root), 0)
    return found, problem


def _label_for(name: str, parent_name: str | None) -> tuple[str, str]:
    """(zone, socket) labels from a zone's name and its parent's name."""
    match = _PACKAGE_NAME.match(name)
    if match:
        socket, die = match.groups()
        return "package", socket if die is None else f"{socket}-die-{die}"
    zone = _LABEL_UNSAFE.sub("_", name.lower()).strip("_") or "unknown"
    if parent_name is not None:
        parent = _PACKAGE_NAME.match(parent_name)
        if parent:
            socket, die = parent.groups()
            return zone, socket if die is None else f"{socket}-die-{die}"
    return zone, PLATFORM_SOCKET


def _read_int(reader: Reader, path: Path) -> int:
    return int(reader(path).strip())


def describe_os_error(exc: OSError) -> str:
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM):
        return (
            "permission denied (energy_uj is root-only on kernels patched for CVE-2020-8694, "
            "and Docker's default AppArmor profile denies /sys/devices/virtual/powercap)"
        )
    if isinstance(exc, FileNotFoundError):
        return "vanished"
    return exc.strerror or str(exc)


def discover_zones(root: Path, reader: Reader = read_sysfs) -> Discovery:
    """Every RAPL zone under ``root`` whose energy counter can be read, deduplicated."""
    result = Discovery()
    if not root.is_dir():
        result.root_problem = f"powercap root {root} does not exist or is not a directory"
        return result
    found, problem = _walk(root)
    if problem is not None and not found:
        result.root_problem = f"cannot list powercap root {root}: {problem}"
        return result

    names: dict[tuple[str, tuple[int, ...]], str] = {}
    for key, path in found.items():
        try:
            names[key] = reader(path / "name").strip()
        except OSError:
            continue  # a zone without a readable name cannot be identified: skip it

    by_label: dict[tuple[str, str], list[tuple[int, Zone | None, str, str]]] = {}
    for (control_type, index), path in sorted(found.items()):
        name = names.get((control_type, index))
        if name is None:
            continue
        parent_name = names.get((control_type, index[:-1])) if len(index) > 1 else None
        zone_label, socket = _label_for(name, parent_name)
        what = f"{control_type}:{':'.join(map(str, index))} ({name})"
        try:
            _read_int(reader, path / "energy_uj")
        except OSError as exc:
            zone, why = None, describe_os_error(exc)
        except ValueError:
            zone, why = None, "energy_uj does not hold a whole number"
        else:
            try:
                max_range: int | None = _read_int(reader, path / "max_energy_range_uj")
            except (OSError, ValueError):
                max_range = None
            zone = Zone(zone_label, socket, control_type, index, path, name, max_range)
            why = ""
        preference = _CONTROL_TYPE_PREFERENCE.get(control_type, 1)
        by_label.setdefault((zone_label, socket), []).append((preference, zone, what, why))

    for _key, candidates in sorted(by_label.items()):
        candidates.sort(key=lambda c: c[0])
        readable = [c[1] for c in candidates if c[1] is not None]
        if readable:
            result.zones.append(readable[0])
            result.mirrors.extend(readable[1:])
        else:
            result.unreadable.extend((what, why) for _, _, what, why in candidates)
    result.zones.sort(key=_zone_order)
    return result


_ZONE_ORDER = {"package": 0, "core": 1, "uncore": 2, "dram": 3, "psys": 4}


def _zone_order(zone: Zone) -> tuple[str, int, str]:
    return (zone.socket, _ZONE_ORDER.get(zone.zone, 9), zone.zone)
