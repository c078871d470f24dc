"""cpu-rapl-client: CPU energy and power from RAPL powercap counters, or an estimate."""

from __future__ import annotations

from .client import ENERGY_METRIC, POWER_METRIC, CpuRaplClient
from .errors import (
    CpuRaplError,
    PyJoulesBackendError,
    RaplConfigError,
    RaplUnavailableError,
)
from .estimate import CpuPowerModel
from .zones import Discovery, Zone, discover_zones, read_sysfs

__all__ = [
    "ENERGY_METRIC",
    "POWER_METRIC",
    "CpuPowerModel",
    "CpuRaplClient",
    "CpuRaplError",
    "Discovery",
    "PyJoulesBackendError",
    "RaplConfigError",
    "RaplUnavailableError",
    "Zone",
    "discover_zones",
    "read_sysfs",
]
