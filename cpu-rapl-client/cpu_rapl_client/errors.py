"""Errors of the CPU RAPL client; every one derives from ``CpuRaplError``."""

from __future__ import annotations

from base_monitoring_client import ConfigError, DeviceUnavailableError, MonitoringClientError

# The three ways to make RAPL readable inside a container (see README "Permissions").
RAPL_FIXES = (
    "run the container privileged (PRIVILEGED=true in .env adds docker-compose.privileged.yml)",
    "load the AppArmor profile (sudo AppArmor/install.sh) and start the container with "
    "security_opt apparmor=wattpush-cpu-rapl",
    "bind-mount the powercap tree read-only to a path outside /sys "
    "(-v /sys/devices/virtual/powercap:/host/powercap:ro) and set "
    "RAPL_POWERCAP_DIR=/host/powercap",
)


def fixes_text() -> str:
    return "; ".join(f"({i}) {fix}" for i, fix in enumerate(RAPL_FIXES, start=1))


class CpuRaplError(MonitoringClientError):
    """Root of every error raised by cpu_rapl_client."""


class RaplUnavailableError(CpuRaplError, DeviceUnavailableError):
    """No energy counter can be read and estimation is off (or impossible). Exit code 3."""


class RaplConfigError(CpuRaplError, ConfigError):
    """A cpu-rapl-client setting cannot work (e.g. pyJoules backend without pyJoules). Exit 2."""


class PyJoulesBackendError(CpuRaplError):
    """pyJoules failed; the message says what pyJoules could not do and what to change."""
