"""Exception root of the advisor; every error a user sees names the problem and the fix.

The analysis names a setting as the Python API calls it (``TranscodingRecommender``'s
parameters: ``target_quality``, ``energy_basis``, ``max_edge_gap_s``, ...) and lists it in the
error's ``settings``; the CLI says those names as its flags (``advisor.cli.FLAGS``).
"""

from __future__ import annotations

from collections.abc import Sequence

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
    #: the settings the message names, in the Python API's terms
    settings: tuple[str, ...] = ()

    def __init__(self, message: str = "", *, settings: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.settings = tuple(settings)


class AdvisorConfigError(AdvisorError, ConfigError):
    """Invalid arguments or settings (exit code 2)."""

    exit_code = 2

    def __init__(self, problems: list[str] | str, *, settings: Sequence[str] = ()) -> None:
        ConfigError.__init__(self, problems)
        self.settings = tuple(settings)


class ManifestError(AdvisorError):
    """A results manifest cannot be read or does not follow the contract (exit code 2)."""

    exit_code = 2


class QueryError(AdvisorError):
    """The Prometheus HTTP API failed or answered something unusable."""


class InsufficientDataError(AdvisorError):
    """Too little measured data to fit a model; the message says what more to measure."""


class ModelError(AdvisorError):
    """A saved model cannot be loaded or used with the given inputs."""
