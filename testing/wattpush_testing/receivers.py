"""Real receivers on free loopback ports, and the small process helpers around them.

``ReceiverProcess`` starts Prometheus (remote-write receiver on) or VictoriaMetrics in a temp
directory, waits until it is ready, and stops exactly the process it started. ``serve_get``
is a scripted read API (a fake Prometheus HTTP API) for tests of what a reader sends and does
with each answer.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import requests

#: (path, query parameters, request headers) -> (HTTP status, JSON text)
GetAnswer = Callable[[str, dict[str, list[str]], Mapping[str, str]], tuple[int, str]]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[Any], timeout: float = 30.0) -> int:
    """SIGTERM the process this test started (by its PID), wait; SIGKILL it if it outlives
    ``timeout``. Returns its exit code (negative: killed by that signal)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout)


class ReceiverProcess:
    """A real remote-write receiver with a Prometheus-compatible query API."""

    kind = "receiver"

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / f"{self.kind}.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def write_url(self) -> str:
        raise NotImplementedError

    @property
    def query_url(self) -> str:
        """Root of the Prometheus HTTP API (…/api/v1 is appended by callers)."""
        return self.base_url

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready_path(self) -> str:
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited early: {self.log_tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.base_url + self.ready_path(), timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.kind} not ready after {timeout}s: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_process(proc, timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def flush(self) -> None:
        """Make pushed data visible to queries (VictoriaMetrics buffers briefly)."""

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"query": promql}
        if at is not None:
            params["time"] = at
        return self._api("/api/v1/query", params)

    def query_range(
        self, promql: str, start: float, end: float, step: float
    ) -> list[dict[str, Any]]:
        return self._api(
            "/api/v1/query_range", {"query": promql, "start": start, "end": end, "step": step}
        )

    def raw_samples(self, selector: str, start: float, end: float) -> list[dict[str, Any]]:
        """Every stored sample of the matching series: a range-vector selector at ``end``."""
        window_ms = max(1, int((end - start) * 1000) + 1)
        return self.query(f"{selector}[{window_ms}ms]", at=end)

    def _api(self, path: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        self.flush()
        resp = requests.get(self.query_url + path, params=params, timeout=30)
        resp.raise_for_status()
        body = resp.json()
        if body.get("status") != "success":
            raise RuntimeError(f"query failed: {body}")
        return list(body["data"]["result"])


class PrometheusProcess(ReceiverProcess):
    kind = "prometheus"

    def __init__(
        self, workdir: Path, port: int | None = None, config_text: str | None = None
    ) -> None:
        super().__init__(workdir, port)
        self.config_text = config_text or "global:\n  scrape_interval: 1m\n"

    @property
    def write_url(self) -> str:
        return self.base_url + "/api/v1/write"

    def ready_path(self) -> str:
        return "/-/ready"

    def command(self) -> list[str]:
        config = self.workdir / "prometheus.yml"
        config.write_text(self.config_text)
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is not installed; run `make setup` (apt prometheus)")
        return [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-remote-write-receiver",
            "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=1d",
            # Tests backfill history older than the head block.
            "--storage.tsdb.min-block-duration=2h",
        ]


class VictoriaMetricsProcess(ReceiverProcess):
    kind = "victoria-metrics"

    @property
    def write_url(self) -> str:
        return self.base_url + "/api/v1/write"

    def ready_path(self) -> str:
        return "/health"

    def command(self) -> list[str]:
        binary = shutil.which("victoria-metrics")
        if binary is None:
            raise RuntimeError("victoria-metrics is not installed; run `make setup`")
        return [
            binary,
            f"-storageDataPath={self.workdir / 'vmdata'}",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            "-retentionPeriod=100y",
            "-search.disableCache",
            "-search.latencyOffset=0s",
            "-dedup.minScrapeInterval=0",
        ]

    def flush(self) -> None:
        with contextlib.suppress(requests.RequestException):
            requests.get(self.base_url + "/internal/force_flush", timeout=10)


def wait_until(predicate: Any, timeout: float = 15.0, interval: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns a truthy value (returned) or time runs out (None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return value
        time.sleep(interval)


@contextlib.contextmanager
def serve_get(answer: GetAnswer, name: str = "fake-read-api") -> Iterator[str]:
    """A loopback HTTP server that answers every GET with ``answer(path, query, headers)``
    as JSON; yields its base URL and is shut down on exit, whatever happened."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            status, text = answer(url.path, parse_qs(url.query), dict(self.headers.items()))
            payload = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
