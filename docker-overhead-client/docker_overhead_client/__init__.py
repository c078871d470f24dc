"""docker-overhead-client: container CPU/memory/network and Docker engine overhead, pushed."""

from __future__ import annotations

from .client import DockerOverheadClient
from .engine import ContainerInfo, DockerHost, EngineClient, parse_docker_host
from .errors import DockerOverheadError, EngineAPIError, EngineUnavailableError, HostLayoutError

__all__ = [
    "ContainerInfo",
    "DockerHost",
    "DockerOverheadClient",
    "DockerOverheadError",
    "EngineAPIError",
    "EngineClient",
    "EngineUnavailableError",
    "HostLayoutError",
    "parse_docker_host",
]
