"""Exception root of the advisor; every error a user sees names the problem and the fix."""

from __future__ import annotations

from base_monitoring_client import ConfigError, MonitoringClientError

__all__ = [
    "AdvisorConfigError",
    "AdvisorError",
    "InsufficientDataError",
    "ManifestError",
    "ModelError",
    "QueryError",
]


class AdvisorError(MonitoringClientError):
    """Root of every advisor error."""

    exit_code = 1


class AdvisorConfigError(AdvisorError, ConfigError):
    """Invalid command-line arguments or settings (exit code 2)."""

    exit_code = 2


class ManifestError(AdvisorError):
    """A results manifest cannot be read or does not follow the contract (exit code 2)."""

    exit_code = 2


class QueryError(AdvisorError):
    """The Prometheus HTTP API failed or answered something unusable."""


class InsufficientDataError(AdvisorError):
    """Too little measured data to fit a model; the message says what more to measure."""


class ModelError(AdvisorError):
    """A saved model cannot be loaded or used with the given inputs."""
