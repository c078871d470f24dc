"""cpu-rapl-client: CPU energy and power from RAPL powercap counters.

Series (``job`` and ``instance`` are added by the framework):

- ``cpu_energy_joules_total{zone,socket,source}``: monotonic across wraps and counter resets
- ``cpu_power_watts{zone,socket,source}``: Δenergy/Δt between consecutive readings, measured on
  the monotonic clock at the moment each counter was read

No double counting: ``core`` and ``uncore`` are inside their ``package``, and ``psys`` (the
whole platform) contains the packages. The CPU total is the sum over ``zone=~"package|dram"``;
``psys`` is a separate, larger total. See the README for the table.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Self

from base_monitoring_client import (
    ClientConfig,
    MonitoringClient,
    Setting,
    contract,
    parse_bool,
    parse_choice,
    parse_float,
    parse_path,
)
from base_monitoring_client.clock import SYSTEM_CLOCK, Clock
from base_monitoring_client.counter import ResettableCounter, Step
from base_monitoring_client.series import Series

from .errors import PyJoulesBackendError, RaplConfigError, RaplUnavailableError, fixes_text
from .estimate import CpuPowerModel
from .sources import EnergySource, EstimatedSource, PyJoulesSource, SysfsSource
from .zones import Reader, Zone, describe_os_error, discover_zones, read_sysfs

log = logging.getLogger(__name__)

ENERGY_METRIC = contract.CPU_ENERGY.name
POWER_METRIC = contract.CPU_POWER.name
DEFAULT_POWERCAP_DIR = Path("/sys/class/powercap")
# Backends are named after the source value their series carry (sysfs's is "rapl").
BACKEND_SYSFS = "sysfs"
BACKEND_PYJOULES = contract.SOURCE_PYJOULES
BACKEND_ESTIMATED = contract.SOURCE_ESTIMATED
BACKENDS = (BACKEND_SYSFS, BACKEND_PYJOULES, BACKEND_ESTIMATED)
_REMINDER_NS = 600 * 1_000_000_000  # repeat the "estimating" warning every 10 minutes

CounterKey = tuple[str, str, str]  # (source, zone, socket)
_NORMAL = Step.NORMAL


SETTINGS: tuple[Setting, ...] = (
    Setting("RAPL_POWERCAP_DIR", "/sys/class/powercap", parse_path,
            "powercap root holding intel-rapl / intel-rapl-mmio / amd-rapl zones",
            "point it at /sys/class/powercap, or at a read-only bind mount of "
            "/sys/devices/virtual/powercap such as /host/powercap"),
    Setting("RAPL_BACKEND", "sysfs", parse_choice(*BACKENDS),
            "sysfs (own reader), pyjoules (needs the pyjoules extra) or estimated (model only)",
            "use sysfs unless you need pyJoules"),
    Setting("HOST_PROC", "/proc", parse_path,
            "proc root whose stat file feeds the CPU-time estimate",
            "point it at /proc or a bind mount of the host's /proc"),
    Setting("ESTIMATE_FALLBACK", "true", parse_bool,
            "estimate power from CPU time when no RAPL counter is readable (false = exit 3)",
            "use true or false"),
    Setting("ESTIMATE_IDLE_WATTS_PER_CORE", "0.74", parse_float(0.0, 1000.0),
            "estimate: watts per logical CPU when idle",
            "use watts per logical CPU between 0 and 1000, e.g. 0.74"),
    Setting("ESTIMATE_DYNAMIC_WATTS_PER_CORE", "2.76", parse_float(0.0, 1000.0),
            "estimate: extra watts per fully busy logical CPU",
            "use watts per logical CPU between 0 and 1000, e.g. 2.76"),
    Setting("RAPL_RESCAN_INTERVAL_S", "30", parse_float(0.0, 86400.0),
            "look for zones that appear (or become readable) this often; 0 = never",
            "use a number of seconds >= 0, e.g. 30"),
    Setting("RAPL_MAX_ZONE_WATTS", "1000", parse_float(positive=True, max_value=1e6),
            "a backwards step implying more power than this is a counter reset, not a wrap",
            "use a number of watts above the largest zone's peak power, e.g. 1000"),
)  # fmt: skip


class CpuRaplClient(MonitoringClient):
    name = "cpu-rapl-client"
    description = (
        "Push CPU energy and power from RAPL powercap counters (intel-rapl, "
        "intel-rapl-mmio, amd-rapl) to a Prometheus remote-write receiver."
    )
    settings = SETTINGS

    @classmethod
    def from_settings(cls, config: ClientConfig, values: Mapping[str, Any]) -> Self:
        return cls(
            values["rapl_powercap_dir"],
            values["host_proc"],
            backend=values["rapl_backend"],
            estimate_fallback=values["estimate_fallback"],
            model=CpuPowerModel(
                values["estimate_idle_watts_per_core"], values["estimate_dynamic_watts_per_core"]
            ),
            rescan_interval_s=values["rapl_rescan_interval_s"],
            max_zone_watts=values["rapl_max_zone_watts"],
        )

    def __init__(
        self,
        powercap_dir: Path = DEFAULT_POWERCAP_DIR,
        proc_dir: Path = Path("/proc"),
        *,
        backend: str = "sysfs",
        estimate_fallback: bool = True,
        model: CpuPowerModel | None = None,
        rescan_interval_s: float = 30.0,
        max_zone_watts: float = 1000.0,
        reader: Reader | None = None,
        clock: Clock = SYSTEM_CLOCK,
        load_pyjoules: Callable[[], ModuleType] | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise RaplConfigError(
                f"RAPL_BACKEND={backend!r}: expected one of {', '.join(BACKENDS)}"
            )
        self.powercap_dir = Path(powercap_dir)
        self.proc_dir = Path(proc_dir)
        self.backend = backend
        self.estimate_fallback = estimate_fallback
        self.model = model or CpuPowerModel()
        self.max_zone_watts = max_zone_watts
        # Discovery opens and closes each file; the sources keep their files open and pread
        # them every tick unless a reader is injected (tests deny or fake reads through it).
        self._reader = reader or read_sysfs
        self._tick_reader = reader
        self._clock = clock
        self._load_pyjoules = load_pyjoules
        self._rescan_ns = int(rescan_interval_s * 1e9)
        self._next_rescan_ns = 0
        self._next_reminder_ns = 0
        self._source: EnergySource | None = None
        self._counters: dict[CounterKey, ResettableCounter] = {}
        self._handles: dict[CounterKey, tuple[Series, Series]] = {}  # energy, power
        self._failing: dict[CounterKey, str] = {}
        # (source, zone keys) that decode() found gone, for read() to drop: thread-safe deque
        self._vanished: collections.deque[tuple[EnergySource, set[Any]]] = collections.deque()

    # -- life cycle -----------------------------------------------------------------------

    @property
    def source(self) -> EnergySource | None:
        return self._source

    @property
    def estimating(self) -> bool:
        return isinstance(self._source, EstimatedSource)

    def setup(self) -> None:
        source, reason = self._open_preferred()
        if source is None:
            source = self._fallback(reason)
        self._use(source)

    def close(self) -> None:
        source, self._source = self._source, None
        if source is not None:
            source.close()

    # The tick only reads the files (read()); parsing, the model and the counters run in
    # decode(), on the batcher thread, many ticks back to back before each push.
    def read(self, now_ns: int) -> tuple[int, EnergySource, Any] | None:
        mono = self._clock.monotonic_ns()
        if self._vanished:
            self._drop_vanished()
        if self._rescan_ns > 0 and mono >= self._next_rescan_ns:
            self._next_rescan_ns = mono + self._rescan_ns
            self._rescan(mono)
        source = self._source
        if source is None:
            return None
        return mono, source, source.capture()

    def decode(self, now_ns: int, raw: tuple[int, EnergySource, Any] | None) -> None:
        if raw is None:
            return
        mono, source, captured = raw
        vanished: list[Zone] = []
        kind = source.source
        for zone, value in source.decode(captured, mono):
            key = (kind, zone.zone, zone.socket)
            if isinstance(value, Exception):
                self._zone_failed(key, zone, value, vanished)
                continue
            if key in self._failing:
                log.info("%s %s is readable again", zone.sysfs_id, zone.name)
                del self._failing[key]
            counter = self._counters.get(key)
            if counter is None:
                counter = self._new_counter(key, zone)
            update = counter.update(value, mono)
            energy, power = self._handles[key]
            energy.set(update.total / 1e6)
            if update.has_rate:
                power.set(update.delta * 1000.0 / update.elapsed_ns)  # uJ/ns * 1000 = W
            if update.step is _NORMAL:
                continue
            if update.step is Step.WRAP:
                log.debug("%s counter wrapped (+%d uJ)", zone.sysfs_id, update.delta)
            elif update.step is Step.RESET:
                log.warning(
                    "%s (%s) energy counter went back to %d uJ, further than a wrap allows in "
                    "the elapsed time at %g W: counter reset (driver reload, resume?); counting "
                    "the %d uJ since the reset and no power for this interval",
                    zone.sysfs_id,
                    zone.name,
                    value,
                    self.max_zone_watts,
                    update.delta,
                )
        if vanished and isinstance(source, SysfsSource):
            # The zone list belongs to the thread that reads: read() applies this next tick.
            self._vanished.append((source, {z.key for z in vanished}))

    def _drop_vanished(self) -> None:
        while self._vanished:
            source, gone = self._vanished.popleft()
            if source is self._source and isinstance(source, SysfsSource):
                source.set_zones([z for z in source.zones if z.key not in gone])

    # -- sources ----------------------------------------------------------------------------

    def _open_preferred(self) -> tuple[EnergySource | None, str]:
        """The configured backend, or None and why it cannot be used."""
        if self.backend == BACKEND_ESTIMATED:
            return None, "RAPL_BACKEND=estimated"
        if self.backend == BACKEND_PYJOULES:
            pyj = (
                PyJoulesSource(self.powercap_dir, self._reader, self._load_pyjoules)
                if self._load_pyjoules is not None
                else PyJoulesSource(self.powercap_dir, self._reader)
            )
            try:
                pyj.open()  # RaplConfigError (pyJoules not installed) propagates: exit 2
            except PyJoulesBackendError as exc:
                return None, str(exc)
            self._log_zones(pyj.zones, "pyJoules")
            return pyj, ""
        found = discover_zones(self.powercap_dir, self._reader)
        if not found.zones:
            return None, (
                f"no readable RAPL energy counter under RAPL_POWERCAP_DIR={self.powercap_dir}: "
                f"{found.summary()}"
            )
        for mirror in found.mirrors:
            log.info(
                "%s (%s) mirrors zone %s socket %s: counted once",
                mirror.sysfs_id,
                mirror.name,
                mirror.zone,
                mirror.socket,
            )
        for what, why in found.unreadable:
            log.warning("RAPL zone %s is not readable: %s", what, why)
        self._log_zones(found.zones, str(self.powercap_dir))
        return SysfsSource(found.zones, self._tick_reader), ""

    def _fallback(self, reason: str) -> EnergySource:
        if self.backend != BACKEND_ESTIMATED and not self.estimate_fallback:
            raise RaplUnavailableError(
                f"{reason}. Fix one of: {fixes_text()}. Or set ESTIMATE_FALLBACK=true to "
                'model power from CPU time instead (series marked source="estimated").'
            )
        estimated = EstimatedSource(self.proc_dir, self.model, self._tick_reader)
        try:
            times = estimated.energy.check()
        except (OSError, ValueError) as exc:
            raise RaplUnavailableError(
                f"{reason}; the CPU-time estimate cannot use {estimated.energy.stat_path} "
                f"either ({exc}); set HOST_PROC to a readable proc root such as /proc"
            ) from None
        model = self.model
        if self.backend == BACKEND_ESTIMATED:
            log.warning(
                "RAPL_BACKEND=estimated: CPU power is MODELLED from CPU time, not measured "
                "(%d CPUs x %g W idle + %g W per busy CPU); every series has source=estimated",
                times.cpus,
                model.idle_watts_per_core,
                model.dynamic_watts_per_core,
            )
        else:
            log.warning(
                "NOT MEASURING: %s. CPU power is ESTIMATED from %s (%d CPUs x %g W idle + "
                '%g W per busy CPU); every series has source="estimated". To measure: %s. '
                "Set ESTIMATE_FALLBACK=false to make this an error.",
                reason,
                estimated.energy.stat_path,
                times.cpus,
                model.idle_watts_per_core,
                model.dynamic_watts_per_core,
                fixes_text(),
            )
        return estimated

    def _use(self, source: EnergySource) -> None:
        previous, self._source = self._source, source
        if previous is not None and previous is not source:
            previous.close()
            if previous.source != source.source:
                log.warning("switched from source=%s to source=%s", previous.source, source.source)
        self._next_reminder_ns = self._clock.monotonic_ns() + _REMINDER_NS

    def _rescan(self, mono: int) -> None:
        source = self._source
        if isinstance(source, EstimatedSource):
            if self.backend != BACKEND_ESTIMATED:
                found, _ = self._open_preferred()
                if found is not None:
                    log.warning("RAPL counters are readable now: measuring instead of estimating")
                    self._use(found)
                    return
            if mono >= self._next_reminder_ns:
                self._next_reminder_ns = mono + _REMINDER_NS
                log.warning('still ESTIMATING CPU power (source="estimated"), not measuring')
        elif isinstance(source, SysfsSource):
            found_zones = discover_zones(self.powercap_dir, self._reader).zones
            if not found_zones:
                return  # a transient listing failure must not drop working zones
            known = {z.key for z in source.zones}
            added = [z for z in found_zones if z.key not in known]
            if added:
                self._log_zones(added, f"{self.powercap_dir} (new)")
            source.set_zones(found_zones)

    # -- helpers ----------------------------------------------------------------------------

    def _new_counter(self, key: CounterKey, zone: Zone) -> ResettableCounter:
        # max_zone_watts in uJ per second: a backwards step needing more is a reset
        counter = ResettableCounter(zone.max_energy_range_uj, self.max_zone_watts * 1e6)
        if zone.max_energy_range_uj is None and key[0] != contract.SOURCE_ESTIMATED:
            log.warning(
                "%s (%s) has no readable max_energy_range_uj: a wrap will be counted as a reset",
                zone.sysfs_id,
                zone.name,
            )
        self._counters[key] = counter
        labels = {"zone": key[1], "socket": key[2], "source": key[0]}
        self._handles[key] = (self.handle(ENERGY_METRIC, labels), self.handle(POWER_METRIC, labels))
        return counter

    def _zone_failed(
        self, key: CounterKey, zone: Zone, exc: Exception, vanished: list[Zone]
    ) -> None:
        if isinstance(exc, FileNotFoundError):
            why = "vanished"
            vanished.append(zone)
        elif isinstance(exc, OSError):
            why = describe_os_error(exc)
        else:
            why = f"unreadable value ({exc})"
        if self._failing.get(key) != why:
            self._failing[key] = why
            log.warning("%s (%s) skipped: %s", zone.sysfs_id, zone.name, why)

    @staticmethod
    def _log_zones(zones: Iterable[Zone], where: str) -> None:
        for zone in zones:
            log.info(
                "zone=%s socket=%s from %s (%s, max range %s uJ) in %s",
                zone.zone,
                zone.socket,
                zone.sysfs_id,
                zone.name,
                zone.max_energy_range_uj,
                where,
            )
