"""A fake NVML for tests on machines without a GPU.

``FakeNvml`` implements ``NvmlBackend`` over ``FakeGpu`` records that a test mutates (advance
energy, mark a query unsupported, lose the GPU, fail NVML's start) while the client runs. It
raises the same ``NvmlCallError`` classes as the pynvml backend, built from NVML's codes.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from gpu_nvml_client.errors import (
    NVML_ERROR_GPU_IS_LOST,
    NVML_ERROR_NOT_SUPPORTED,
    NvmlCallError,
    nvml_error,
)
from gpu_nvml_client.nvml import Handle

_TEXT = {
    1: "Uninitialized",
    2: "Invalid Argument",
    3: "Not Supported",
    4: "Insufficient Permissions",
    9: "Driver Not Loaded",
    10: "Timeout",
    12: "NVML Shared Library Not Found",
    15: "GPU is lost",
    18: "RM has detected an NVML/RM version mismatch.",
    999: "Unknown Error",
}


def fake_error(code: int, call: str) -> NvmlCallError:
    return nvml_error(code, _TEXT.get(code, f"NVML error {code}"), call)


@dataclass
class FakeGpu:
    """One simulated GPU; NVML units (mJ, mW, %, MHz, bytes)."""

    uuid: str
    name: str = "NVIDIA Fake L4"
    energy_mj: int = 1_000_000
    power_mw: float = 30_000.0
    #: what nvmlDeviceGetPowerUsage returns; None = same as power_mw
    power_usage_mw: float | None = None
    power_limit_mw: float = 72_000.0
    gpu_percent: float = 0.0
    memory_percent: float = 0.0
    encoder_percent: float = 0.0
    decoder_percent: float = 0.0
    encoder_sessions: int = 0
    memory_used: int = 512 * 1024 * 1024
    temperature: float = 40.0
    sm_clock_mhz: float = 1500.0
    mig: bool = False
    #: backend method names answering NVML_ERROR_NOT_SUPPORTED
    unsupported: set[str] = field(default_factory=set)
    #: backend method name -> NVML error code it fails with (until removed)
    failures: dict[str, int] = field(default_factory=dict)
    lost: bool = False


class FakeNvml:
    """``NvmlBackend`` over FakeGpu records. Thread-safe: tests mutate while a sampler reads."""

    def __init__(
        self,
        gpus: Iterable[FakeGpu] = (),
        *,
        init_error: int | None = None,
        driver: str = "550.54.15",
    ) -> None:
        self.gpus = list(gpus)
        self.init_error = init_error
        self.driver = driver
        self.calls: Counter[tuple[str, int]] = Counter()
        self.initialised = False
        self.shutdowns = 0
        self.lock = threading.Lock()

    # -- test controls ------------------------------------------------------------------------

    def run(self, index: int, seconds: float, watts: float) -> None:
        """The GPU draws ``watts`` for ``seconds``: the energy counter and power follow."""
        with self.lock:
            gpu = self.gpus[index]
            gpu.power_mw = watts * 1e3
            gpu.energy_mj += round(watts * seconds * 1e3)

    def calls_to(self, method: str, index: int) -> int:
        return self.calls[(method, index)]

    # -- NvmlBackend ----------------------------------------------------------------------------

    def _gpu(self, handle: Handle, method: str) -> FakeGpu:
        index = int(handle)
        self.calls[(method, index)] += 1
        gpu = self.gpus[index]
        if gpu.lost:
            raise fake_error(NVML_ERROR_GPU_IS_LOST, method)
        if method in gpu.unsupported:
            raise fake_error(NVML_ERROR_NOT_SUPPORTED, method)
        if method in gpu.failures:
            raise fake_error(gpu.failures[method], method)
        return gpu

    def init(self) -> None:
        if self.init_error is not None:
            raise fake_error(self.init_error, "nvmlInit")
        self.initialised = True

    def shutdown(self) -> None:
        self.initialised = False
        self.shutdowns += 1

    def driver_version(self) -> str:
        return self.driver

    def device_count(self) -> int:
        return len(self.gpus)

    def handle(self, index: int) -> Handle:
        self._gpu(index, "handle")
        return index

    def name(self, handle: Handle) -> str:
        return self._gpu(handle, "name").name

    def uuid(self, handle: Handle) -> str:
        return self._gpu(handle, "uuid").uuid

    def mig_enabled(self, handle: Handle) -> bool:
        return self._gpu(handle, "mig_enabled").mig

    def total_energy_mj(self, handle: Handle) -> int:
        with self.lock:
            return self._gpu(handle, "total_energy_mj").energy_mj

    def power_instant_mw(self, handle: Handle) -> float:
        with self.lock:
            return self._gpu(handle, "power_instant_mw").power_mw

    def power_usage_mw(self, handle: Handle) -> float:
        with self.lock:
            gpu = self._gpu(handle, "power_usage_mw")
            return gpu.power_mw if gpu.power_usage_mw is None else gpu.power_usage_mw

    def power_limit_mw(self, handle: Handle) -> float:
        return self._gpu(handle, "power_limit_mw").power_limit_mw

    def utilization_percent(self, handle: Handle) -> tuple[float, float]:
        gpu = self._gpu(handle, "utilization_percent")
        return gpu.gpu_percent, gpu.memory_percent

    def encoder_utilization_percent(self, handle: Handle) -> float:
        return self._gpu(handle, "encoder_utilization_percent").encoder_percent

    def decoder_utilization_percent(self, handle: Handle) -> float:
        return self._gpu(handle, "decoder_utilization_percent").decoder_percent

    def encoder_session_count(self, handle: Handle) -> int:
        return self._gpu(handle, "encoder_session_count").encoder_sessions

    def memory_used_bytes(self, handle: Handle) -> int:
        return self._gpu(handle, "memory_used_bytes").memory_used

    def temperature_celsius(self, handle: Handle) -> float:
        return self._gpu(handle, "temperature_celsius").temperature

    def sm_clock_mhz(self, handle: Handle) -> float:
        return self._gpu(handle, "sm_clock_mhz").sm_clock_mhz


def fake_gpus(count: int, name: str = "NVIDIA Fake L4") -> list[FakeGpu]:
    """``count`` GPUs with distinct UUIDs."""
    return [FakeGpu(uuid=f"GPU-00000000-0000-0000-0000-{i:012d}", name=name) for i in range(count)]
