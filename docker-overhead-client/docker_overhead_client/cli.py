"""Console script ``docker-overhead-client``."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from base_monitoring_client import (
    ClientConfig,
    InvalidValue,
    MonitoringClient,
    Setting,
    parse_float,
    parse_path,
)
from base_monitoring_client.cli import run_client_main

from .client import DockerOverheadClient
from .engine import DEFAULT_DOCKER_HOST, parse_docker_host
from .procfs import DEFAULT_ENGINE_PATTERNS


def parse_patterns(text: str) -> tuple[str, ...]:
    patterns = tuple(p.strip() for p in text.split(",") if p.strip())
    if not patterns:
        raise InvalidValue("expected a comma-separated list of process names or globs")
    return patterns


SETTINGS: tuple[Setting, ...] = (
    Setting("DOCKER_HOST", DEFAULT_DOCKER_HOST, parse_docker_host,
            "Docker Engine endpoint (unix socket or plain-HTTP tcp://host:port)",
            "use unix:///var/run/docker.sock (mount it read-only into the container) or "
            "tcp://host:2375"),
    Setting("HOST_PROC", "/proc", parse_path, "the host's procfs (mounted, e.g. /host/proc)",
            "mount the host's /proc read-only and point HOST_PROC at it"),
    Setting("HOST_CGROUP", "/sys/fs/cgroup", parse_path,
            "the host's cgroup hierarchy (mounted, e.g. /host/sys/fs/cgroup)",
            "mount the host's /sys/fs/cgroup read-only and point HOST_CGROUP at it"),
    Setting("CONTAINER_REFRESH_S", "2", parse_float(0.1, 3600),
            "how often the container list is refreshed from the Engine API",
            "use a number of seconds between 0.1 and 3600, e.g. 2"),
    Setting("DOCKER_API_TIMEOUT_S", "5", parse_float(positive=True, max_value=600),
            "timeout of one Engine API request", "use a number of seconds > 0, e.g. 5"),
    Setting("MEMORY_STAT_INTERVAL_S", "1", parse_float(0.0, 3600),
            "how often memory.stat (inactive page cache) is re-read; 0 = every sample",
            "use a number of seconds >= 0, e.g. 1"),
    Setting("ENGINE_PROCESSES", ",".join(DEFAULT_ENGINE_PATTERNS), parse_patterns,
            "runtime processes counted as engine overhead (names or globs)",
            "list process names or globs, e.g. dockerd,containerd,containerd-shim*,docker-proxy"),
)  # fmt: skip


def make_client(config: ClientConfig, values: Mapping[str, Any]) -> MonitoringClient:
    return DockerOverheadClient(
        docker_host=values["docker_host"],
        host_proc=values["host_proc"],
        host_cgroup=values["host_cgroup"],
        refresh_s=values["container_refresh_s"],
        api_timeout_s=values["docker_api_timeout_s"],
        memory_stat_interval_s=values["memory_stat_interval_s"],
        engine_patterns=values["engine_processes"],
    )


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    return run_client_main(
        make_client,
        prog="docker-overhead-client",
        description=(
            "Per-container CPU, memory and network (cgroups + /proc), Docker engine overhead "
            "(dockerd, containerd, shims, docker-proxy) and host CPU, pushed via remote write."
        ),
        settings=SETTINGS,
        argv=argv,
        env=env,
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
