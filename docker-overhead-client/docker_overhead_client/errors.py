"""Exception root of the docker-overhead-client; everything derives from MonitoringClientError."""

from __future__ import annotations

from base_monitoring_client import ConfigError, DeviceUnavailableError, MonitoringClientError


class DockerOverheadError(MonitoringClientError):
    """Root of every error raised by docker_overhead_client."""


class EngineUnavailableError(DockerOverheadError, DeviceUnavailableError):
    """The Docker Engine cannot be reached (socket missing, refused, no permission). Exit 3."""


class EngineAPIError(DockerOverheadError):
    """The Docker Engine answered, but not with what the API promises."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class HostLayoutError(DockerOverheadError, ConfigError):
    """HOST_PROC or HOST_CGROUP does not look like procfs / a cgroup hierarchy. Exit 2."""
