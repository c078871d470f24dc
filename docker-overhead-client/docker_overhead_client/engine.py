"""A small Docker Engine API client: plain HTTP/1.1 over the unix socket, no SDK needed.

Only the two cheap, non-streaming calls are used: ``GET /containers/json`` (the running
containers) and ``GET /containers/<id>/json`` (pid, image, network mode of a new container).
"""

from __future__ import annotations

import errno
import http.client
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from base_monitoring_client import InvalidValue

from .errors import EngineAPIError, EngineUnavailableError

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"
SWARM_SERVICE_LABEL = "com.docker.swarm.service.name"
SOCKET_MOUNT_HINT = (
    "mount the engine socket into the container read-only (compose: "
    "`volumes: [/var/run/docker.sock:/var/run/docker.sock:ro]`) or set DOCKER_HOST to the "
    "engine's socket, e.g. unix:///run/user/1000/docker.sock for rootless Docker"
)


@dataclass(frozen=True, slots=True)
class DockerHost:
    """Where the engine listens: a unix socket path or a plain-HTTP tcp host:port."""

    url: str
    socket_path: str | None = None
    host: str = "localhost"
    port: int = 2375

    def describe(self) -> str:
        return f"DOCKER_HOST={self.url}"


def parse_docker_host(text: str) -> DockerHost:
    """Parse ``unix:///path`` or ``tcp://host:port`` (the forms the docker CLI accepts)."""
    raw = text.strip() or DEFAULT_DOCKER_HOST
    if raw.startswith("/"):
        raw = "unix://" + raw
    parts = urlsplit(raw)
    if parts.scheme == "unix":
        path = parts.netloc + parts.path
        if not path.startswith("/"):
            raise InvalidValue("expected unix:///absolute/path/to/docker.sock")
        return DockerHost(url=raw, socket_path=path)
    if parts.scheme in {"tcp", "http"}:
        if not parts.hostname:
            raise InvalidValue("expected tcp://host:port")
        return DockerHost(url=raw, host=parts.hostname, port=parts.port or 2375)
    raise InvalidValue(
        "expected unix:///path/to/docker.sock or tcp://host:port (plain HTTP); "
        "TLS, ssh:// and npipe:// are not supported"
    )


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """What the sampler needs to know about one running container."""

    id: str
    name: str
    image: str
    service: str
    pid: int
    network_mode: str = ""
    cgroup_parent: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def own_network(self) -> bool:
        """False when the container shares another namespace's interfaces (host, container:x).

        Their /proc/<pid>/net/dev shows someone else's traffic, so it is not attributed.
        """
        mode = self.network_mode
        return not (mode == "host" or mode.startswith("container:"))


def container_from_api(summary: Mapping[str, Any], inspect: Mapping[str, Any]) -> ContainerInfo:
    """Combine a /containers/json entry with its /containers/<id>/json answer."""
    try:
        cid = str(inspect.get("Id") or summary["Id"])
        names = summary.get("Names") or [inspect.get("Name", cid[:12])]
        name = str(inspect.get("Name") or names[0]).lstrip("/")
        config = inspect.get("Config") or {}
        labels = dict(config.get("Labels") or summary.get("Labels") or {})
        # Config.Image is the reference the user asked for; the summary may show a bare sha256
        # once the tag has moved on.
        image = str(config.get("Image") or summary.get("Image") or "")
        state = inspect.get("State") or {}
        host_config = inspect.get("HostConfig") or {}
        network_mode = str(
            host_config.get("NetworkMode")
            or (summary.get("HostConfig") or {}).get("NetworkMode")
            or ""
        )
        return ContainerInfo(
            id=cid,
            name=name,
            image=image,
            service=str(labels.get(COMPOSE_SERVICE_LABEL) or labels.get(SWARM_SERVICE_LABEL) or ""),
            pid=int(state.get("Pid") or 0),
            network_mode=network_mode,
            cgroup_parent=str(host_config.get("CgroupParent") or ""),
            labels=labels,
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise EngineAPIError(
            f"unexpected container description from the Docker Engine ({exc!r}); "
            "check that DOCKER_HOST points at a Docker Engine (API >= 1.24)"
        ) from exc


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class EngineClient:
    """Keeps one HTTP/1.1 keep-alive connection; not thread-safe (one refresher thread uses it)."""

    def __init__(self, docker_host: DockerHost, timeout_s: float = 5.0) -> None:
        self.docker_host = docker_host
        self.timeout_s = timeout_s
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            dh = self.docker_host
            if dh.socket_path is not None:
                self._conn = _UnixHTTPConnection(dh.socket_path, self.timeout_s)
            else:
                self._conn = http.client.HTTPConnection(dh.host, dh.port, timeout=self.timeout_s)
        return self._conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def get_json(self, path: str) -> Any:
        """GET ``path``; one transparent reconnect when a kept-alive connection went stale."""
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.request("GET", path, headers={"Accept": "application/json"})
                resp = conn.getresponse()
                body = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 0:
                    continue
                raise self._unavailable("the engine closed the connection") from None
            except OSError as exc:
                self.close()
                raise self._unavailable_from(exc) from exc
            except http.client.HTTPException as exc:
                self.close()
                raise EngineAPIError(
                    f"{self.docker_host.describe()}: not an HTTP answer ({exc!r}); "
                    "check that DOCKER_HOST points at a Docker Engine socket"
                ) from exc
            if resp.status != 200:
                raise EngineAPIError(
                    f"Docker Engine answered {resp.status} to GET {path}: "
                    f"{body[:300].decode('utf-8', 'replace').strip()}",
                    status=resp.status,
                )
            try:
                return json.loads(body)
            except ValueError as exc:
                raise EngineAPIError(
                    f"Docker Engine sent invalid JSON for GET {path}; "
                    "check that DOCKER_HOST points at a Docker Engine"
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _unavailable(self, why: str) -> EngineUnavailableError:
        return EngineUnavailableError(
            f"cannot reach the Docker Engine at {self.docker_host.describe()}: {why}; "
            f"fix: {SOCKET_MOUNT_HINT}"
        )

    def _unavailable_from(self, exc: OSError) -> EngineUnavailableError:
        path = self.docker_host.socket_path
        if isinstance(exc, FileNotFoundError) or exc.errno == errno.ENOENT:
            return self._unavailable(f"socket {path} does not exist")
        if isinstance(exc, PermissionError) or exc.errno == errno.EACCES:
            return EngineUnavailableError(
                f"no permission to open the Docker Engine socket {path} "
                f"({self.docker_host.describe()}); fix: run with the socket's group "
                '(compose: `group_add: ["<gid of /var/run/docker.sock>"]`, find it with '
                "`stat -c %g /var/run/docker.sock`) or as a user allowed to use Docker"
            )
        if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
            return self._unavailable("connection refused (is dockerd running?)")
        if isinstance(exc, TimeoutError | socket.timeout):
            return self._unavailable(f"no answer within {self.timeout_s:g} s")
        return self._unavailable(exc.strerror or repr(exc))

    def list_running(self) -> list[dict[str, Any]]:
        data = self.get_json("/containers/json")
        if not isinstance(data, list):
            raise EngineAPIError(
                "GET /containers/json did not return a list; check that DOCKER_HOST points at "
                "a Docker Engine"
            )
        return [c for c in data if isinstance(c, dict)]

    def inspect(self, container_id: str) -> dict[str, Any] | None:
        """The container's description, or None when it is gone (404) since it was listed."""
        try:
            data = self.get_json(f"/containers/{quote(container_id, safe='')}/json")
        except EngineAPIError as exc:
            if exc.status == 404:
                return None
            raise
        if not isinstance(data, dict):
            raise EngineAPIError(f"GET /containers/{container_id}/json did not return an object")
        return data
