"""Errors of the GPU client. NVML return codes are mirrored here so that nothing outside
``nvml.py`` needs the ``pynvml`` module (the fake NVML raises the same classes)."""

from __future__ import annotations

from base_monitoring_client import DeviceUnavailableError, MonitoringClientError

# NVML return codes (nvml.h); the C ABI keeps them stable across driver releases.
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25
NVML_ERROR_GPU_NOT_FOUND = 28
NVML_ERROR_UNKNOWN = 999

# A query failing with one of these will fail the same way every time: stop asking.
PERMANENT_CODES = frozenset(
    {
        NVML_ERROR_NOT_SUPPORTED,
        NVML_ERROR_NO_PERMISSION,
        NVML_ERROR_INVALID_ARGUMENT,
        NVML_ERROR_FUNCTION_NOT_FOUND,
        NVML_ERROR_ARGUMENT_VERSION_MISMATCH,
    }
)
# The device is gone (fell off the bus, Xid 79, needs a reset): end its series.
GPU_LOST_CODES = frozenset(
    {NVML_ERROR_GPU_IS_LOST, NVML_ERROR_RESET_REQUIRED, NVML_ERROR_GPU_NOT_FOUND}
)


class GpuNvmlError(MonitoringClientError):
    """Root of every error raised by gpu_nvml_client."""


class NvmlUnavailableError(GpuNvmlError, DeviceUnavailableError):
    """No usable NVML: no driver, no library, no GPU. Exit code 3."""


class NvmlCallError(GpuNvmlError):
    """An NVML call failed. ``code`` is the NVML return code, ``call`` the function name."""

    def __init__(self, code: int, reason: str, call: str) -> None:
        self.code = code
        self.reason = reason
        self.call = call
        super().__init__(f"{call}: {reason} (NVML error {code})")


class NvmlNotSupportedError(NvmlCallError):
    """The query is not available on this GPU/driver (or MIG mode, or permissions): permanent."""


class NvmlGpuLostError(NvmlCallError):
    """The GPU has disappeared or needs a reset."""


def nvml_error(code: int, reason: str, call: str) -> NvmlCallError:
    """The error class matching an NVML return code."""
    if code in PERMANENT_CODES:
        return NvmlNotSupportedError(code, reason, call)
    if code in GPU_LOST_CODES:
        return NvmlGpuLostError(code, reason, call)
    return NvmlCallError(code, reason, call)
