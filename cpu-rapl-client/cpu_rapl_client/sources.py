"""Where raw energy readings come from: the sysfs reader, pyJoules, or the CPU-time model.

Each source returns, per zone, the raw cumulative counter in microjoules (or the error that
reading it raised); wrap and reset handling is the client's, the same for every source.

A read is two steps so the client can split its ticks: ``capture()`` at the tick (only the
file reads), ``decode(captured, monotonic_ns)`` later (parsing, the model); ``read_now()`` is
both at once.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from base_monitoring_client import contract
from base_monitoring_client.openfiles import OpenFiles

from .errors import PyJoulesBackendError, RaplConfigError
from .estimate import CpuPowerModel, EstimatedEnergy
from .zones import Reader, Zone, describe_os_error, read_sysfs

Reading = tuple[Zone, int | Exception]


class EnergySource(Protocol):
    source: str  # the value of the ``source`` label

    @property
    def zones(self) -> Sequence[Zone]: ...

    def capture(self) -> Any:
        """The raw state now (file contents, or errors): cheap, no parsing."""
        ...

    def decode(self, captured: Any, monotonic_ns: int) -> list[Reading]:
        """``capture()``'s result, taken at ``monotonic_ns``, as readings."""
        ...

    def close(self) -> None:
        """Release what the source keeps open (it is not read again)."""
        ...


def read_now(source: EnergySource, monotonic_ns: int) -> list[Reading]:
    """Capture and decode at once (tests, tools): what one tick yields."""
    return source.decode(source.capture(), monotonic_ns)


class SysfsSource:
    """The default: ``energy_uj`` of each discovered zone.

    Without an injected reader each file stays open and is read with ``pread`` (sysfs
    regenerates it at every read from offset 0): a vanished zone fails the read (ENODEV),
    then the reopen (FileNotFoundError), exactly as a fresh open would.
    """

    source = contract.SOURCE_RAPL

    def __init__(self, zones: Sequence[Zone], reader: Reader | None = None) -> None:
        self._reader = reader or read_sysfs
        # Watched (refresh() at each read()): sysfs attributes report a size, which would
        # otherwise cost an fstat per zone per tick to notice a replaced file.
        self._files = OpenFiles(watch=True) if reader is None else None
        self._zones: list[Zone] = []
        self._paths: list[tuple[Zone, Path, str]] = []
        self.set_zones(zones)

    @property
    def zones(self) -> Sequence[Zone]:
        return self._zones

    def set_zones(self, zones: Sequence[Zone]) -> None:
        self._zones = list(zones)
        self._paths = [(z, z.energy_path, str(z.energy_path)) for z in self._zones]
        if self._files is not None:
            self._files.retain({path for _, _, path in self._paths})

    def capture(self) -> list[tuple[Zone, bytes | str | OSError]]:
        out: list[tuple[Zone, bytes | str | OSError]] = []
        files, reader = self._files, self._reader
        if files is not None:
            files.refresh()
        for zone, path, name in self._paths:
            try:
                out.append((zone, files.pread(name, 64) if files is not None else reader(path)))
            except OSError as exc:
                out.append((zone, exc))
        return out

    def decode(
        self, captured: list[tuple[Zone, bytes | str | OSError]], monotonic_ns: int
    ) -> list[Reading]:
        out: list[Reading] = []
        for zone, raw in captured:
            if isinstance(raw, OSError):
                out.append((zone, raw))
                continue
            try:
                out.append((zone, int(raw)))
            except ValueError as exc:
                out.append((zone, exc))
        return out

    def close(self) -> None:
        if self._files is not None:
            self._files.close()


class EstimatedSource:
    """One zone, ``package`` on socket ``all``: the whole host's CPUs through the model."""

    source = contract.SOURCE_ESTIMATED

    def __init__(self, proc_root: Path, model: CpuPowerModel, reader: Reader | None = None) -> None:
        self.energy = EstimatedEnergy(proc_root, model, reader)
        self._zones = [
            Zone("package", "all", "model", (), proc_root, contract.SOURCE_ESTIMATED, None)
        ]

    @property
    def zones(self) -> Sequence[Zone]:
        return self._zones

    def capture(self) -> bytes | OSError:
        try:
            return self.energy.capture()
        except OSError as exc:
            return exc

    def decode(self, captured: bytes | OSError, monotonic_ns: int) -> list[Reading]:
        if isinstance(captured, OSError):
            return [(self._zones[0], captured)]
        try:
            return [(self._zones[0], self.energy.update(captured, monotonic_ns))]
        except ValueError as exc:
            return [(self._zones[0], exc)]

    def close(self) -> None:
        self.energy.close()


def _import_pyjoules_rapl() -> ModuleType:
    return importlib.import_module("pyJoules.device.rapl_device")


class PyJoulesSource:
    """pyJoules' ``RaplDevice``. It only knows ``<root>/intel-rapl`` (nested layout, no mmio,
    no amd-rapl) and returns the files' microjoules as floats; its failures are translated
    into errors that say what to change (its own ``NoSuchDeviceError`` has no message)."""

    source = contract.SOURCE_PYJOULES

    def __init__(
        self,
        powercap_dir: Path,
        reader: Reader,
        load_module: Callable[[], ModuleType] = _import_pyjoules_rapl,
    ) -> None:
        self.api_dir = powercap_dir / "intel-rapl"
        self._reader = reader
        self._load_module = load_module
        self._device: Any = None
        self._zones: list[Zone] = []

    @property
    def zones(self) -> Sequence[Zone]:
        return self._zones

    def open(self) -> None:
        """Find pyJoules' domains and read them once; raise PyJoulesBackendError/RaplConfigError."""
        try:
            rapl = self._load_module()
        except ImportError as exc:
            raise RaplConfigError(
                f"RAPL_BACKEND=pyjoules but pyJoules cannot be imported ({exc}); install the "
                "extra (pip install 'wattpush[pyjoules]') or set RAPL_BACKEND=sysfs"
            ) from None
        # pyJoules reads a module-level path; point it at the configured root.
        setattr(rapl, "RAPL_API_DIR", str(self.api_dir))  # noqa: B010 - module global
        try:
            domains = list(rapl.RaplDevice.available_domains())
            device = rapl.RaplDevice()
            device.configure(domains)
            values = device.get_energy()
        except OSError as exc:
            raise PyJoulesBackendError(
                f"pyJoules cannot read RAPL under {self.api_dir}: {describe_os_error(exc)}"
            ) from None
        except Exception as exc:  # pyJoules raises bare NoSuchDeviceError(), ValueError, ...
            detail = str(exc) or "no RAPL device"
            raise PyJoulesBackendError(
                f"pyJoules found no usable RAPL domain under {self.api_dir} "
                f"({type(exc).__name__}: {detail}); pyJoules only reads intel-rapl in the nested "
                "layout, RAPL_BACKEND=sysfs also reads intel-rapl-mmio and amd-rapl"
            ) from None
        if not domains:
            raise PyJoulesBackendError(f"pyJoules found no RAPL domain under {self.api_dir}")
        files = list(getattr(device, "_api_file_names", None) or [])
        zones = []
        for i, domain in enumerate(domains):
            path = Path(files[i]).parent if i < len(files) else self.api_dir
            try:
                max_range: int | None = int(self._reader(path / "max_energy_range_uj").strip())
            except (OSError, ValueError):
                max_range = None
            socket = str(domain.socket)
            zone_name = str(domain.get_domain_name())
            kind = contract.SOURCE_PYJOULES
            zones.append(Zone(zone_name, socket, kind, (i,), path, repr(domain), max_range))
        if len(values) != len(zones):
            raise PyJoulesBackendError(
                f"pyJoules returned {len(values)} values for {len(zones)} domains"
            )
        self._device, self._zones = device, zones

    def capture(self) -> list[Reading]:
        """pyJoules parses as it reads: the readings themselves."""
        try:
            values = self._device.get_energy()
        except (OSError, ValueError) as exc:
            return [(zone, exc) for zone in self._zones]
        return [(zone, int(value)) for zone, value in zip(self._zones, values, strict=True)]

    def decode(self, captured: list[Reading], monotonic_ns: int) -> list[Reading]:
        return captured

    def close(self) -> None:
        """Nothing of its own to release: pyJoules opens the files at each read."""


__all__ = [
    "EnergySource",
    "EstimatedSource",
    "PyJoulesSource",
    "Reading",
    "SysfsSource",
    "read_now",
]
