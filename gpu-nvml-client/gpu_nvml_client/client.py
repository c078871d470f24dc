"""GpuNvmlClient: per-GPU energy, power and NVENC/NVDEC load from NVML.

Every query is tried per GPU; one that NVML reports unsupported (old GPU, MIG mode, missing
permission) is dropped for that GPU with one log line and never asked again. Other failures
skip the query for this tick (logged once per kind). A GPU that is lost ends all its series
with stale markers.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Self, TypeVar

from base_monitoring_client import (
    ClientConfig,
    InvalidValue,
    MonitoringClient,
    Setting,
    contract,
    parse_bool,
)
from base_monitoring_client.clock import SYSTEM_CLOCK, Clock
from base_monitoring_client.counter import ResettableCounter, Step
from base_monitoring_client.hostinfo import HostInfo
from base_monitoring_client.series import Series
from base_monitoring_client.stale import StaleTracker

from .errors import (
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_LIB_RM_VERSION_MISMATCH,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_NO_PERMISSION,
    NvmlCallError,
    NvmlGpuLostError,
    NvmlNotSupportedError,
    NvmlUnavailableError,
)
from .nvml import Handle, NvmlBackend, PynvmlBackend

log = logging.getLogger(__name__)
T = TypeVar("T")

# Values of the ``source`` label (the series contract's).
SOURCE_ENERGY_COUNTER = contract.SOURCE_NVML_ENERGY_COUNTER
SOURCE_INTEGRATED = contract.SOURCE_INTEGRATED_POWER
SOURCE_POWER_INSTANT = contract.SOURCE_NVML_POWER_INSTANT
SOURCE_POWER_USAGE = contract.SOURCE_NVML_POWER_USAGE

DEVICES_METRIC = contract.GPU_DEVICES.name
ENERGY_METRIC = contract.GPU_ENERGY.name
POWER_METRIC = contract.GPU_POWER.name


@dataclass(frozen=True)
class _Query:
    """One NVML call feeding one or more gauges, converted to base units."""

    key: str
    metrics: tuple[str, ...]
    read: Callable[[NvmlBackend, Handle], tuple[float, ...]]


_GAUGES: tuple[_Query, ...] = (
    _Query(
        "power_limit", (contract.GPU_POWER_LIMIT.name,), lambda nv, h: (nv.power_limit_mw(h) / 1e3,)
    ),
    _Query(
        "utilization",
        (contract.GPU_UTILIZATION.name, contract.GPU_MEMORY_UTILIZATION.name),
        lambda nv, h: tuple(p / 100.0 for p in nv.utilization_percent(h)),
    ),
    _Query(
        "encoder_utilization",
        (contract.GPU_ENCODER_UTILIZATION.name,),
        lambda nv, h: (nv.encoder_utilization_percent(h) / 100.0,),
    ),
    _Query(
        "decoder_utilization",
        (contract.GPU_DECODER_UTILIZATION.name,),
        lambda nv, h: (nv.decoder_utilization_percent(h) / 100.0,),
    ),
    _Query(
        "encoder_sessions",
        (contract.GPU_ENCODER_SESSIONS.name,),
        lambda nv, h: (float(nv.encoder_session_count(h)),),
    ),
    _Query(
        "memory_used",
        (contract.GPU_MEMORY_USED.name,),
        lambda nv, h: (float(nv.memory_used_bytes(h)),),
    ),
    _Query(
        "temperature", (contract.GPU_TEMPERATURE.name,), lambda nv, h: (nv.temperature_celsius(h),)
    ),
    _Query("sm_clock", (contract.GPU_SM_CLOCK.name,), lambda nv, h: (nv.sm_clock_mhz(h) * 1e6,)),
)


@dataclass
class _Gpu:
    index: int
    handle: Handle
    uuid: str
    name: str
    mig: bool = False
    unsupported: set[str] = field(default_factory=set)
    logged: set[tuple[str, int]] = field(default_factory=set)
    lost: bool = False
    # energy counter in mJ: a reading below the last one is a driver reload or GPU reset
    counter: ResettableCounter = field(default_factory=ResettableCounter)
    # (metric, source) -> handle of this GPU's series
    handles: dict[tuple[str, str], Series] = field(default_factory=dict)
    # integrated power: joules so far and the last (monotonic s, watts) point
    integrated_j: float = 0.0
    last_power: tuple[float, float] | None = None

    @property
    def labels(self) -> dict[str, str]:
        return {"gpu": str(self.index), "uuid": self.uuid, "name": self.name}

    def describe(self) -> str:
        return f"GPU {self.index} ({self.name}, {self.uuid})"


_DEVICE_RE = re.compile(r"^(\d+|GPU-[0-9a-fA-F-]+)$")


def parse_devices(text: str) -> tuple[str, ...]:
    """``0,2`` or ``GPU-<uuid>,...``; empty means every GPU."""
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    bad = [item for item in items if not _DEVICE_RE.match(item)]
    if bad:
        raise InvalidValue(f"{', '.join(bad)} is neither a GPU index nor a GPU-<uuid>")
    return items


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "GPU_OPTIONAL",
        "false",
        parse_bool,
        "keep running idle (exit code 0) when there is no NVIDIA driver or GPU",
        "use true or false",
    ),
    Setting(
        "GPU_DEVICES",
        "",
        parse_devices,
        "GPUs to monitor: indices or UUIDs, comma-separated (empty = all)",
        "list indices or UUIDs as printed by `nvidia-smi -L`, e.g. 0,1 or GPU-5f2c...",
    ),
)


class GpuNvmlClient(MonitoringClient):
    """One series set per GPU; see README.md for the metrics and what they mean."""

    name = "gpu-nvml-client"
    description = (
        "Push per-GPU energy, power, utilisation and NVENC/NVDEC load read from NVML "
        "to a Prometheus remote-write receiver."
    )
    settings = SETTINGS
    # collect() ends its own series (lost GPU, a query that stopped) with a StaleTracker over
    # the handles it set this tick, so an all-empty tick still ends series.
    auto_stale = False

    @classmethod
    def from_settings(cls, config: ClientConfig, values: Mapping[str, Any]) -> Self:
        return cls(
            optional=bool(values.get("gpu_optional", False)),
            devices=tuple(values.get("gpu_devices", ())),
        )

    def __init__(
        self,
        nvml: NvmlBackend | None = None,
        *,
        optional: bool = False,
        devices: Sequence[str] = (),
        clock: Clock = SYSTEM_CLOCK,
        nvml_factory: Callable[[], NvmlBackend] = PynvmlBackend,
    ) -> None:
        self._nvml = nvml
        self._nvml_factory = nvml_factory
        self._optional = optional
        self._devices = tuple(devices)
        self._clock = clock
        self._initialised = False
        self._gpus: list[_Gpu] = []
        self._stale = StaleTracker()
        self._devices_handle = self.handle(DEVICES_METRIC)
        self.idle = False

    @property
    def gpus(self) -> list[_Gpu]:
        return list(self._gpus)

    def host_info(self) -> HostInfo:
        """The framework's host facts plus the GPU model: ``NVIDIA L4``, ``8x NVIDIA H200``."""
        counts = Counter(g.name for g in self._gpus)
        models = ", ".join(name if n == 1 else f"{n}x {name}" for name, n in sorted(counts.items()))
        return super().host_info().with_gpu(models)

    # -- life cycle -----------------------------------------------------------------------------

    def setup(self) -> None:
        try:
            nvml = self._nvml if self._nvml is not None else self._nvml_factory()
            nvml.init()
        except NvmlCallError as exc:
            self._unavailable(explain_init_error(exc))
            return
        self._nvml = nvml
        self._initialised = True
        try:
            count = nvml.device_count()
        except NvmlCallError as exc:
            self._unavailable(f"NVML cannot count the GPUs: {exc}. {_CHECK_HINT}")
            return
        try:
            driver = nvml.driver_version()
        except NvmlCallError:
            driver = "unknown"
        gpus = [gpu for gpu in (self._open(nvml, i) for i in range(count)) if gpu is not None]
        if not gpus:
            what = "found no GPU" if count == 0 else f"could open none of its {count} GPU(s)"
            self._unavailable(
                f"NVML (driver {driver}) {what}. Fix: check `nvidia-smi -L` on the host; in a "
                "container pass the GPUs (compose profile `nvidia` with the device request, or "
                "`docker run --gpus all`); on hosts without a GPU set GPU_OPTIONAL=true"
            )
            return
        selected = self._select(gpus)
        if selected is None:
            return
        self._gpus = selected
        for gpu in selected:
            log.info(
                "monitoring %s%s, NVIDIA driver %s",
                gpu.describe(),
                " in MIG mode" if gpu.mig else "",
                driver,
            )

    def _open(self, nvml: NvmlBackend, index: int) -> _Gpu | None:
        try:
            handle = nvml.handle(index)
            uuid = nvml.uuid(handle)
            name = nvml.name(handle)
        except NvmlCallError as exc:
            log.error(
                "GPU %d cannot be opened (%s); it is not monitored. Fix: check it with "
                "`nvidia-smi -i %d` and `dmesg` (Xid errors)",
                index,
                exc,
                index,
            )
            return None
        try:
            mig = nvml.mig_enabled(handle)
        except NvmlCallError:
            mig = False  # pre-Ampere GPUs have no MIG mode at all
        return _Gpu(index=index, handle=handle, uuid=uuid, name=name, mig=mig)

    def _select(self, gpus: list[_Gpu]) -> list[_Gpu] | None:
        if not self._devices:
            return gpus
        by_key = {str(g.index): g for g in gpus} | {g.uuid.lower(): g for g in gpus}
        missing = [d for d in self._devices if d.lower() not in by_key]
        if missing:
            available = ", ".join(f"{g.index} ({g.uuid})" for g in gpus)
            self._unavailable(
                f"GPU_DEVICES names GPU(s) NVML does not see: {', '.join(missing)}. "
                f"Fix: use indices or UUIDs from this list: {available}"
            )
            return None
        chosen: dict[int, _Gpu] = {}
        for d in self._devices:
            gpu = by_key[d.lower()]
            chosen[gpu.index] = gpu
        return sorted(chosen.values(), key=lambda g: g.index)

    def _unavailable(self, message: str) -> None:
        if not self._optional:
            raise NvmlUnavailableError(message)
        log.warning(
            "%s. GPU_OPTIONAL=true, so the client keeps running idle and reports %s 0",
            message.rstrip("."),
            DEVICES_METRIC,
        )
        self.idle = True
        self._gpus = []
        self._shutdown()

    def close(self) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        if self._initialised and self._nvml is not None:
            self._initialised = False
            try:
                self._nvml.shutdown()
            except NvmlCallError as exc:
                log.debug("nvmlShutdown failed: %s", exc)

    # -- sampling -------------------------------------------------------------------------------

    def collect(self, now_ns: int) -> None:
        mono = self._clock.monotonic()
        values: list[tuple[Series, float]] = []
        for gpu in self._gpus:
            if gpu.lost:
                continue
            try:
                values += self._collect_gpu(gpu, mono)
            except NvmlGpuLostError as exc:
                # What was read of this GPU in this tick is discarded with it.
                gpu.lost = True
                log.error(
                    "%s is lost (%s); its series end now with stale markers. Fix: look for "
                    "NVIDIA Xid errors in `dmesg`; the GPU needs a reset (`nvidia-smi -r`) or "
                    "a reboot, then restart this client",
                    gpu.describe(),
                    exc,
                )
        active = sum(1 for g in self._gpus if not g.lost)
        values.append((self._devices_handle, float(active)))
        for handle, value in values:
            handle.set(value)
        # Series this tick lacks (a lost GPU, a query that stopped) end with a stale marker.
        handles = self.series_table.handles
        for sid in sorted(self._stale.update({h.id for h, _ in values})):
            handles[sid].stale()

    def _handle(self, gpu: _Gpu, metric: str, source: str = "") -> Series:
        handle = gpu.handles.get((metric, source))
        if handle is None:
            labels = gpu.labels | ({"source": source} if source else {})
            handle = gpu.handles[(metric, source)] = self.handle(metric, labels)
        return handle

    def _collect_gpu(self, gpu: _Gpu, mono: float) -> list[tuple[Series, float]]:
        assert self._nvml is not None
        nvml, handle = self._nvml, gpu.handle
        out: list[tuple[Series, float]] = []
        power = self._read_power(gpu)
        if power is not None:
            watts, source = power
            out.append((self._handle(gpu, POWER_METRIC, source), watts))
        energy = self._read_energy(gpu, None if power is None else power[0], mono)
        if energy is not None:
            joules, source = energy
            out.append((self._handle(gpu, ENERGY_METRIC, source), joules))
        for query in _GAUGES:
            values = self._query(gpu, query.key, query.metrics, partial(query.read, nvml, handle))
            if values is not None:
                out += (
                    (self._handle(gpu, m), v) for m, v in zip(query.metrics, values, strict=True)
                )
        return out

    def _read_power(self, gpu: _Gpu) -> tuple[float, str] | None:
        assert self._nvml is not None
        nvml, handle = self._nvml, gpu.handle
        if "power_instant" not in gpu.unsupported:
            mw = self._query(
                gpu,
                "power_instant",
                (POWER_METRIC,),
                lambda: nvml.power_instant_mw(handle),
                instead=f"using nvmlDeviceGetPowerUsage (source={SOURCE_POWER_USAGE}, a 1 s "
                "average on Ampere and newer)",
            )
            if mw is not None:
                return mw / 1e3, SOURCE_POWER_INSTANT
            if "power_instant" not in gpu.unsupported:
                return None  # a passing failure: no power this tick rather than a source flip
        mw = self._query(gpu, "power_usage", (POWER_METRIC,), lambda: nvml.power_usage_mw(handle))
        return None if mw is None else (mw / 1e3, SOURCE_POWER_USAGE)

    def _read_energy(self, gpu: _Gpu, watts: float | None, mono: float) -> tuple[float, str] | None:
        assert self._nvml is not None
        nvml, handle = self._nvml, gpu.handle
        if "energy_counter" not in gpu.unsupported:
            raw = self._query(
                gpu,
                "energy_counter",
                (ENERGY_METRIC,),
                lambda: nvml.total_energy_mj(handle),
                instead=f"integrating gpu_power_watts instead (source={SOURCE_INTEGRATED})",
            )
            if raw is not None:
                return self._counter_joules(gpu, raw), SOURCE_ENERGY_COUNTER
            if "energy_counter" not in gpu.unsupported:
                return None
        if watts is None:
            return None
        if gpu.last_power is not None:
            last_mono, last_watts = gpu.last_power
            dt = mono - last_mono
            if dt > 0:
                gpu.integrated_j += (last_watts + watts) / 2.0 * dt
        gpu.last_power = (mono, watts)
        return gpu.integrated_j, SOURCE_INTEGRATED

    def _counter_joules(self, gpu: _Gpu, raw_mj: int) -> float:
        # The total starts at the driver's count (energy since it loaded): a client restart
        # then continues the same counter instead of looking like a reset.
        last = gpu.counter.last_raw
        update = gpu.counter.update(raw_mj)
        if update.step is Step.RESET:
            log.warning(
                "%s: energy counter went back from %d mJ to %d mJ (driver reload or GPU "
                "reset); gpu_energy_joules_total continues from %.3f J",
                gpu.describe(),
                last,
                raw_mj,
                (update.total - raw_mj) / 1e3,
            )
        return update.total / 1e3

    def _query(
        self,
        gpu: _Gpu,
        key: str,
        metrics: tuple[str, ...],
        read: Callable[[], T],
        instead: str = "not reported",
    ) -> T | None:
        """``read()``; None when unsupported (remembered, logged once) or failing this tick."""
        if key in gpu.unsupported:
            return None
        try:
            return read()
        except NvmlGpuLostError:
            raise
        except NvmlNotSupportedError as exc:
            gpu.unsupported.add(key)
            mig = " (MIG mode is enabled: NVML reports it per GPU instance only)" if gpu.mig else ""
            log.warning(
                "%s: %s unavailable: %s%s; %s",
                gpu.describe(),
                ", ".join(metrics),
                exc,
                mig,
                instead,
            )
            return None
        except NvmlCallError as exc:
            if (key, exc.code) not in gpu.logged:
                gpu.logged.add((key, exc.code))
                log.warning(
                    "%s: %s failed: %s; skipped for this tick and retried (logged once)",
                    gpu.describe(),
                    ", ".join(metrics),
                    exc,
                )
            return None


_CHECK_HINT = "Fix: run `nvidia-smi` for the driver's own diagnosis"

_INIT_FIXES: Mapping[int, str] = {
    NVML_ERROR_LIBRARY_NOT_FOUND: (
        "NVML (libnvidia-ml.so.1) is not found: this host has no NVIDIA driver, or the "
        "container was started without GPU access. Fix: install the NVIDIA driver; for Docker "
        "install the NVIDIA Container Toolkit and start the service with the GPU device request "
        "(compose profile `nvidia`, or `docker run --gpus all`); on hosts without a GPU set "
        "GPU_OPTIONAL=true"
    ),
    NVML_ERROR_DRIVER_NOT_LOADED: (
        "the NVIDIA kernel driver is not loaded. Fix: load it (`sudo modprobe nvidia`, or "
        "reboot after installing the driver) and check with `nvidia-smi`; on hosts without a "
        "GPU set GPU_OPTIONAL=true"
    ),
    NVML_ERROR_NO_PERMISSION: (
        "no permission to open the NVIDIA device files (/dev/nvidiactl, /dev/nvidia*). Fix: "
        "run as a user allowed to open them (often group `video`), or pass the devices to the "
        "container with the GPU device request"
    ),
    NVML_ERROR_LIB_RM_VERSION_MISMATCH: (
        "the NVML library and the loaded kernel driver are different versions (driver "
        "upgraded without a reboot?). Fix: reboot, or reload the nvidia kernel modules"
    ),
}


def explain_init_error(exc: NvmlCallError) -> str:
    """What failed when NVML would not start, and what to do about it."""
    if exc.call == "import pynvml":
        return f"cannot use NVML: {exc.reason}"
    fix = _INIT_FIXES.get(exc.code)
    if fix is None:
        return (
            f"NVML failed to initialise ({exc}). {_CHECK_HINT}; set GPU_OPTIONAL=true to run idle"
        )
    return f"{fix} [NVML: {exc.reason}]"
