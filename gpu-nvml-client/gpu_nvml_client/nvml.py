"""The handful of NVML calls the client needs, behind a Protocol so a fake can stand in.

``PynvmlBackend`` implements it over the ``pynvml`` module (distribution nvidia-ml-py) and
turns every ``pynvml.NVMLError`` into this package's ``NvmlCallError`` classes, so the client
never sees pynvml types. Units are NVML's own (mW, mJ, %, MHz); the client converts.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Protocol

from .errors import (
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH,
    NVML_ERROR_FUNCTION_NOT_FOUND,
    NVML_ERROR_INVALID_ARGUMENT,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_NOT_SUPPORTED,
    NVML_ERROR_UNKNOWN,
    NvmlCallError,
    nvml_error,
)

Handle = Any  # opaque device handle: a ctypes pointer for pynvml, anything for a fake

# nvml.h values, used when an old pynvml lacks the constant.
_FI_DEV_POWER_INSTANT = 186
_TEMPERATURE_GPU = 0
_CLOCK_SM = 1
_MIG_ENABLE = 1


class NvmlBackend(Protocol):
    """What the client asks NVML. Every method raises ``NvmlCallError`` (or a subclass)."""

    def init(self) -> None: ...
    def shutdown(self) -> None: ...
    def driver_version(self) -> str: ...
    def device_count(self) -> int: ...
    def handle(self, index: int) -> Handle: ...
    def name(self, handle: Handle) -> str: ...
    def uuid(self, handle: Handle) -> str: ...
    def mig_enabled(self, handle: Handle) -> bool: ...
    def total_energy_mj(self, handle: Handle) -> int:
        """Energy since the driver loaded (Volta and newer)."""
        ...

    def power_instant_mw(self, handle: Handle) -> float:
        """Field NVML_FI_DEV_POWER_INSTANT: the current draw (drivers >= 535)."""
        ...

    def power_usage_mw(self, handle: Handle) -> float:
        """nvmlDeviceGetPowerUsage: a 1 s moving average on Ampere and newer."""
        ...

    def power_limit_mw(self, handle: Handle) -> float: ...
    def utilization_percent(self, handle: Handle) -> tuple[float, float]:
        """(gpu, memory) busy percentages over the driver's last sample period."""
        ...

    def encoder_utilization_percent(self, handle: Handle) -> float: ...
    def decoder_utilization_percent(self, handle: Handle) -> float: ...
    def encoder_session_count(self, handle: Handle) -> int: ...
    def memory_used_bytes(self, handle: Handle) -> int: ...
    def temperature_celsius(self, handle: Handle) -> float: ...
    def sm_clock_mhz(self, handle: Handle) -> float: ...


def import_pynvml() -> ModuleType:
    """Import pynvml, or explain how to get it."""
    try:
        pynvml = importlib.import_module("pynvml")  # optional extra `gpu`: import only when used
    except ImportError as exc:
        raise NvmlCallError(
            NVML_ERROR_LIBRARY_NOT_FOUND,
            f"the pynvml module is not installed ({exc}); install it with "
            "pip install 'wattpush[gpu]' (distribution nvidia-ml-py)",
            "import pynvml",
        ) from None
    return pynvml


class PynvmlBackend:
    """``NvmlBackend`` over the real NVML through pynvml. ``module`` is injectable for tests."""

    def __init__(self, module: ModuleType | None = None) -> None:
        self._nv = module if module is not None else import_pynvml()
        self._field_power_instant = int(
            getattr(self._nv, "NVML_FI_DEV_POWER_INSTANT", _FI_DEV_POWER_INSTANT)
        )
        self._use_temperature_v = hasattr(self._nv, "nvmlDeviceGetTemperatureV")

    def _call(self, name: str, *args: Any) -> Any:
        try:
            return getattr(self._nv, name)(*args)
        except self._nv.NVMLError as exc:
            code = int(getattr(exc, "value", NVML_ERROR_UNKNOWN))
            raise nvml_error(code, _reason(exc, code), name) from None

    def init(self) -> None:
        self._call("nvmlInit")

    def shutdown(self) -> None:
        self._call("nvmlShutdown")

    def driver_version(self) -> str:
        return str(self._call("nvmlSystemGetDriverVersion"))

    def device_count(self) -> int:
        return int(self._call("nvmlDeviceGetCount"))

    def handle(self, index: int) -> Handle:
        return self._call("nvmlDeviceGetHandleByIndex", index)

    def name(self, handle: Handle) -> str:
        return _text(self._call("nvmlDeviceGetName", handle))

    def uuid(self, handle: Handle) -> str:
        return _text(self._call("nvmlDeviceGetUUID", handle))

    def mig_enabled(self, handle: Handle) -> bool:
        current = self._call("nvmlDeviceGetMigMode", handle)[0]
        return int(current) == int(getattr(self._nv, "NVML_DEVICE_MIG_ENABLE", _MIG_ENABLE))

    def total_energy_mj(self, handle: Handle) -> int:
        return int(self._call("nvmlDeviceGetTotalEnergyConsumption", handle))

    def power_instant_mw(self, handle: Handle) -> float:
        values = self._call("nvmlDeviceGetFieldValues", handle, [self._field_power_instant])
        return field_value(values[0], "nvmlDeviceGetFieldValues(NVML_FI_DEV_POWER_INSTANT)")

    def power_usage_mw(self, handle: Handle) -> float:
        return float(self._call("nvmlDeviceGetPowerUsage", handle))

    def power_limit_mw(self, handle: Handle) -> float:
        return float(self._call("nvmlDeviceGetEnforcedPowerLimit", handle))

    def utilization_percent(self, handle: Handle) -> tuple[float, float]:
        rates = self._call("nvmlDeviceGetUtilizationRates", handle)
        return float(rates.gpu), float(rates.memory)

    def encoder_utilization_percent(self, handle: Handle) -> float:
        return float(self._call("nvmlDeviceGetEncoderUtilization", handle)[0])

    def decoder_utilization_percent(self, handle: Handle) -> float:
        return float(self._call("nvmlDeviceGetDecoderUtilization", handle)[0])

    def encoder_session_count(self, handle: Handle) -> int:
        # EncoderStats returns the count without copying every session record.
        return int(self._call("nvmlDeviceGetEncoderStats", handle)[0])

    def memory_used_bytes(self, handle: Handle) -> int:
        return int(self._call("nvmlDeviceGetMemoryInfo", handle).used)

    def temperature_celsius(self, handle: Handle) -> float:
        sensor = int(getattr(self._nv, "NVML_TEMPERATURE_GPU", _TEMPERATURE_GPU))
        if self._use_temperature_v:
            try:
                return float(self._call("nvmlDeviceGetTemperatureV", handle, sensor))
            except NvmlCallError as exc:
                # Drivers before the versioned call: use the legacy one from now on.
                if exc.code not in _OLD_DRIVER_CODES:
                    raise
                self._use_temperature_v = False
        return float(self._call("nvmlDeviceGetTemperature", handle, sensor))

    def sm_clock_mhz(self, handle: Handle) -> float:
        clock = int(getattr(self._nv, "NVML_CLOCK_SM", _CLOCK_SM))
        return float(self._call("nvmlDeviceGetClockInfo", handle, clock))


_OLD_DRIVER_CODES = frozenset(
    {
        NVML_ERROR_FUNCTION_NOT_FOUND,
        NVML_ERROR_NOT_SUPPORTED,
        NVML_ERROR_ARGUMENT_VERSION_MISMATCH,
        NVML_ERROR_INVALID_ARGUMENT,
    }
)

# c_nvmlValue_t member per nvmlValueType_t
_VALUE_MEMBERS = ("dVal", "uiVal", "ulVal", "ullVal", "sllVal", "siVal", "usVal")


def field_value(value: Any, call: str) -> float:
    """The number in one ``c_nvmlFieldValue_t``, or the NVML error it carries."""
    ret = int(value.nvmlReturn)
    if ret != 0:
        raise nvml_error(ret, _CODE_TEXT.get(ret, f"NVML error {ret}"), call)
    kind = int(value.valueType)
    if not 0 <= kind < len(_VALUE_MEMBERS):
        raise nvml_error(NVML_ERROR_UNKNOWN, f"unknown field value type {kind}", call)
    return float(getattr(value.value, _VALUE_MEMBERS[kind]))


_CODE_TEXT = {
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument (field unknown to this driver)",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
}


def _reason(exc: Exception, code: int) -> str:
    try:
        return str(exc)
    except Exception:  # pynvml's __str__ calls into the library, which may be gone
        return f"NVML error {code}"


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
