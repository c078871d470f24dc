"""PynvmlBackend: pynvml calls, units and error translation, with pynvml's real error classes
and field-value structures but a stub in place of the C library."""

from __future__ import annotations

import types
from typing import Any

import pynvml
import pytest
from gpu_nvml_client.errors import (
    NVML_ERROR_FUNCTION_NOT_FOUND,
    NVML_ERROR_GPU_IS_LOST,
    NVML_ERROR_INVALID_ARGUMENT,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_NOT_SUPPORTED,
    NVML_ERROR_TIMEOUT,
    NvmlCallError,
    NvmlGpuLostError,
    NvmlNotSupportedError,
)
from gpu_nvml_client.nvml import PynvmlBackend, field_value


def raises(exc: Exception) -> Any:
    def fn(*args: object) -> None:
        raise exc

    return fn


def stub(**functions: Any) -> types.ModuleType:
    """A module with pynvml's constants and error classes and only the given functions."""
    module = types.ModuleType("pynvml_stub")
    for name in dir(pynvml):
        if name.startswith(("NVML_", "NVMLError")):
            setattr(module, name, getattr(pynvml, name))
    for name, fn in functions.items():
        setattr(module, name, fn)
    return module


def field(ret: int = 0, value_type: int = 1, **member: float) -> Any:
    values = (pynvml.c_nvmlFieldValue_t * 1)()
    values[0].fieldId = pynvml.NVML_FI_DEV_POWER_INSTANT
    values[0].nvmlReturn = ret
    values[0].valueType = value_type
    for name, v in member.items():
        setattr(values[0].value, name, v)
    return values


def test_pynvml_errors_become_the_packages_classes() -> None:
    backend = PynvmlBackend(
        stub(
            nvmlInit=raises(pynvml.NVMLError_LibraryNotFound()),
            nvmlDeviceGetPowerUsage=raises(pynvml.NVMLError_NotSupported()),
            nvmlDeviceGetTotalEnergyConsumption=raises(pynvml.NVMLError_GpuIsLost()),
            nvmlDeviceGetEnforcedPowerLimit=raises(pynvml.NVMLError(NVML_ERROR_TIMEOUT)),
        )
    )
    with pytest.raises(NvmlCallError) as init:
        backend.init()
    assert init.value.code == NVML_ERROR_LIBRARY_NOT_FOUND
    assert init.value.call == "nvmlInit"
    assert "Library Not Found" in init.value.reason
    with pytest.raises(NvmlNotSupportedError):
        backend.power_usage_mw(object())
    with pytest.raises(NvmlGpuLostError) as lost:
        backend.total_energy_mj(object())
    assert lost.value.code == NVML_ERROR_GPU_IS_LOST
    with pytest.raises(NvmlCallError) as other:
        backend.power_limit_mw(object())
    assert type(other.value) is NvmlCallError
    assert other.value.code == NVML_ERROR_TIMEOUT


def test_values_and_calls() -> None:
    handle = object()
    seen: list[tuple[str, tuple[object, ...]]] = []

    def rec(name: str, result: object) -> Any:
        def fn(*args: object) -> object:
            seen.append((name, args))
            return result

        return fn

    util = pynvml.c_nvmlUtilization_t()
    util.gpu, util.memory = 55, 9
    memory = pynvml.c_nvmlMemory_t()
    memory.used = 1234
    backend = PynvmlBackend(
        stub(
            nvmlDeviceGetName=rec("name", "NVIDIA H100 80GB HBM3"),
            nvmlDeviceGetUUID=rec("uuid", b"GPU-abc"),
            nvmlDeviceGetMigMode=rec("mig", [1, 1]),
            nvmlDeviceGetTotalEnergyConsumption=rec("energy", 123456789),
            nvmlDeviceGetFieldValues=rec("fields", field(uiVal=151234)),
            nvmlDeviceGetPowerUsage=rec("power", 150000),
            nvmlDeviceGetEnforcedPowerLimit=rec("limit", 700000),
            nvmlDeviceGetUtilizationRates=rec("util", util),
            nvmlDeviceGetEncoderUtilization=rec("enc", [37, 167000]),
            nvmlDeviceGetDecoderUtilization=rec("dec", [4, 167000]),
            nvmlDeviceGetEncoderStats=rec("encstats", (2, 240, 900)),
            nvmlDeviceGetMemoryInfo=rec("mem", memory),
            nvmlDeviceGetTemperatureV=rec("tempv", 47),
            nvmlDeviceGetClockInfo=rec("clock", 1980),
        )
    )
    assert backend.name(handle) == "NVIDIA H100 80GB HBM3"
    assert backend.uuid(handle) == "GPU-abc"
    assert backend.mig_enabled(handle) is True
    assert backend.total_energy_mj(handle) == 123456789
    assert backend.power_instant_mw(handle) == 151234.0
    assert backend.power_usage_mw(handle) == 150000.0
    assert backend.power_limit_mw(handle) == 700000.0
    assert backend.utilization_percent(handle) == (55.0, 9.0)
    assert backend.encoder_utilization_percent(handle) == 37.0
    assert backend.decoder_utilization_percent(handle) == 4.0
    assert backend.encoder_session_count(handle) == 2
    assert backend.memory_used_bytes(handle) == 1234
    assert backend.temperature_celsius(handle) == 47.0
    assert backend.sm_clock_mhz(handle) == 1980.0
    calls = dict(seen)
    assert calls["fields"] == (handle, [pynvml.NVML_FI_DEV_POWER_INSTANT])
    assert calls["tempv"] == (handle, pynvml.NVML_TEMPERATURE_GPU)
    assert calls["clock"] == (handle, pynvml.NVML_CLOCK_SM)


def test_instant_power_field_error_is_per_field() -> None:
    backend = PynvmlBackend(
        stub(nvmlDeviceGetFieldValues=lambda h, ids: field(ret=NVML_ERROR_NOT_SUPPORTED))
    )
    with pytest.raises(NvmlNotSupportedError, match="NVML_FI_DEV_POWER_INSTANT"):
        backend.power_instant_mw(object())
    # a driver that does not know the field id answers InvalidArgument: also permanent
    backend = PynvmlBackend(
        stub(nvmlDeviceGetFieldValues=lambda h, ids: field(ret=NVML_ERROR_INVALID_ARGUMENT))
    )
    with pytest.raises(NvmlNotSupportedError):
        backend.power_instant_mw(object())


@pytest.mark.parametrize(
    ("value_type", "member", "raw"),
    [(0, "dVal", 12.5), (1, "uiVal", 70000), (3, "ullVal", 2**40), (5, "siVal", -3)],
)
def test_field_value_reads_the_member_its_type_names(
    value_type: int, member: str, raw: float
) -> None:
    values = field(value_type=value_type)
    setattr(values[0].value, member, raw)
    assert field_value(values[0], "f") == raw


def test_temperature_falls_back_to_legacy_call_on_old_drivers() -> None:
    calls: list[str] = []

    def v(*args: object) -> int:
        calls.append("v")
        raise pynvml.NVMLError(NVML_ERROR_FUNCTION_NOT_FOUND)

    def legacy(*args: object) -> int:
        calls.append("legacy")
        return 52

    backend = PynvmlBackend(stub(nvmlDeviceGetTemperatureV=v, nvmlDeviceGetTemperature=legacy))
    assert backend.temperature_celsius(object()) == 52.0
    assert backend.temperature_celsius(object()) == 52.0
    assert calls == ["v", "legacy", "legacy"]


def test_real_pynvml_without_a_driver_reports_library_not_found() -> None:
    try:
        backend = PynvmlBackend()
        backend.init()
    except NvmlCallError as exc:
        assert exc.code in {NVML_ERROR_LIBRARY_NOT_FOUND, 9}  # 9: driver not loaded
        assert exc.call == "nvmlInit"
    else:
        backend.shutdown()
        pytest.skip("NVML works on this machine; the gpu-marked tests cover it")
