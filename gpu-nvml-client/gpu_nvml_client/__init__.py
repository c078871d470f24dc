"""gpu-nvml-client: per-GPU energy, power and NVENC/NVDEC load from NVML (pynvml)."""

from __future__ import annotations

from .client import (
    DEVICES_METRIC,
    SOURCE_ENERGY_COUNTER,
    SOURCE_INTEGRATED,
    SOURCE_POWER_INSTANT,
    SOURCE_POWER_USAGE,
    GpuNvmlClient,
)
from .errors import (
    GpuNvmlError,
    NvmlCallError,
    NvmlGpuLostError,
    NvmlNotSupportedError,
    NvmlUnavailableError,
)
from .nvml import NvmlBackend, PynvmlBackend

__all__ = [
    "DEVICES_METRIC",
    "SOURCE_ENERGY_COUNTER",
    "SOURCE_INTEGRATED",
    "SOURCE_POWER_INSTANT",
    "SOURCE_POWER_USAGE",
    "GpuNvmlClient",
    "GpuNvmlError",
    "NvmlBackend",
    "NvmlCallError",
    "NvmlGpuLostError",
    "NvmlNotSupportedError",
    "NvmlUnavailableError",
    "PynvmlBackend",
]
