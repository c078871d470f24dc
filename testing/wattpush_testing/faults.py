"""A scriptable, misbehaving remote-write receiver for fault tests.

``FaultReceiver`` listens on 127.0.0.1 (a free port unless one is given), decodes every
snappy+protobuf body with ``base_monitoring_client.encoder.decode`` and records each request
and every sample it accepted. Tests script how the next requests are answered:

    rx.respond(503, times=3)                       # 503 for the next 3 requests
    rx.respond(429, headers={"Retry-After": "1"})  # rate limited once
    rx.respond(400, body="out of bounds")          # rejected once
    rx.hang(5.0)                                   # read the request, answer nothing for 5 s
    rx.go_down(); ...; rx.come_up()                # refuse connections, then listen again
    rx.require_authorization("Bearer t0ken")       # 401 (echoing what came) for any other
    rx.max_samples = 100                           # 413 for larger requests

Unscripted requests get 204 and their samples are accepted. The port is owned from
construction to ``stop()`` (bound but not listening while down: connections are refused and
no other process can take it). Serving runs on the receiver's own named thread; ``stop()``
(or leaving the ``with`` block) ends it within a bounded time.

``ClientProcess`` runs ``python -m base_monitoring_client`` (the synthetic collector) as a
real process for signal, spool and outage tests.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

from base_monitoring_client.encoder import decode

from wattpush_testing import wait_until

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Point:
    """One decoded sample: its wire labels (``__name__`` included, wire order)."""

    labels: Labels
    value: float
    timestamp_ms: int

    @property
    def name(self) -> str:
        return self.label("__name__")

    def label(self, key: str) -> str:
        for k, v in self.labels:
            if k == key:
                return v
        return ""


@dataclass(frozen=True)
class Respond:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str = ""


@dataclass(frozen=True)
class Hang:
    """Read the request, then answer nothing for ``seconds`` and close the connection."""

    seconds: float


Action = Respond | Hang


@dataclass(frozen=True)
class RequestRecord:
    monotonic: float  # when the body had been read
    wall: float  # time.time() at the same moment
    status: int | None  # None: no answer (hang)
    points: tuple[Point, ...]
    headers: Mapping[str, str]
    error: str = ""  # why the body could not be decoded

    @property
    def accepted(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def reserve_port(port: int = 0, timeout: float = 10.0) -> socket.socket:
    """A socket bound to 127.0.0.1:port but not listening: connecting to it is refused.

    Retries briefly while the port is still in use (e.g. by a server that is shutting down).
    """
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return sock
        except OSError:
            sock.close()
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    receiver: FaultReceiver


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like Prometheus
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.receiver._track(self.connection, add=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.receiver._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the tests read the records

    def do_POST(self) -> None:  # stdlib naming
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.server.receiver._handle(self, body)

    def reply(self, status: int, headers: Mapping[str, str], text: str) -> None:
        data = text.encode("utf-8")
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


class FaultReceiver:
    """A remote-write receiver on a loopback port whose answers a test scripts."""

    def __init__(self, port: int | None = None) -> None:
        # Own the port from the start: until come_up() connections are refused, and no other
        # process (or a client's own outgoing connection) can take it.
        self._placeholder: socket.socket | None = reserve_port(port or 0)
        self.port: int = self._placeholder.getsockname()[1]
        self._stopping = threading.Event()
        self._lock = threading.RLock()  # predicates of wait_for may read records
        self._changed = threading.Condition(self._lock)
        self._script: deque[Action] = deque()
        self._records: list[RequestRecord] = []
        self._connections: set[socket.socket] = set()
        self._release = threading.Event()  # ends hangs early (stop / go_down)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        #: the Authorization header a request must carry (None: any)
        self.authorization: str | None = None
        #: the most samples a request may carry (None: any)
        self.max_samples: int | None = None

    # -- life cycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1/write"

    @property
    def is_up(self) -> bool:
        return self._server is not None

    def start(self) -> Self:
        self.come_up()
        return self

    def come_up(self) -> None:
        """Listen on the reserved port (the same one every time) and serve."""
        if self._server is not None:
            return
        self._release.clear()
        self._stopping.clear()
        sock, self._placeholder = self._placeholder, None
        if sock is None:
            sock = reserve_port(self.port)
        # Listen on the socket that already owns the port: no window for anyone else.
        server = _Server(("127.0.0.1", self.port), _Handler, bind_and_activate=False)
        server.socket.close()
        server.socket = sock
        server.server_address = sock.getsockname()
        server.server_name, server.server_port = "127.0.0.1", self.port
        server.server_activate()
        server.timeout = 0.05
        server.receiver = self
        self._server = server
        self._thread = threading.Thread(
            target=self._serve, args=(server,), name=f"fault-receiver-{self.port}", daemon=True
        )
        self._thread.start()

    def _serve(self, server: _Server) -> None:
        # handle_request() returns after server.timeout: stopping never waits on a stuck loop.
        while not self._stopping.is_set():
            server.handle_request()

    def go_down(self) -> None:
        """Close the listening socket and every open connection: clients get refused/reset.

        The port stays reserved (bound, not listening), so nothing else takes it meanwhile.
        A request being answered gets its whole answer first; one that arrives from now on is
        neither recorded nor answered (as by a receiver that is gone), so a record means the
        client was sent its answer.
        """
        with self._lock:
            server, self._server = self._server, None
            if server is None:
                return
            self._release.set()
            self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._placeholder = reserve_port(self.port)

    def stop(self) -> None:
        """Stop serving and give the port back."""
        self.go_down()
        sock, self._placeholder = self._placeholder, None
        if sock is not None:
            sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # -- scripting --------------------------------------------------------------------------

    def respond(
        self,
        status: int,
        *,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
        body: str = "",
    ) -> None:
        with self._lock:
            self._script.extend(Respond(status, dict(headers or {}), body) for _ in range(times))

    def hang(self, seconds: float, *, times: int = 1) -> None:
        with self._lock:
            self._script.extend(Hang(seconds) for _ in range(times))

    def require_authorization(self, value: str | None) -> None:
        """Answer 401 to requests without this Authorization header, echoing the one they
        carried in the body (as careless receivers do: the client must not log it)."""
        with self._lock:
            self.authorization = value

    def clear_script(self) -> None:
        with self._lock:
            self._script.clear()

    # -- what arrived -----------------------------------------------------------------------

    @property
    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def accepted_points(self, name: str | None = None) -> list[Point]:
        """Accepted samples in arrival order (optionally only one metric)."""
        return [
            p
            for r in self.records
            if r.accepted
            for p in r.points
            if name is None or p.name == name
        ]

    def wait_for(self, predicate: Callable[[list[RequestRecord]], bool], timeout: float) -> bool:
        """Block until ``predicate(records)`` holds (re-checked on every request)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(list(self._records)):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    # -- request handling ---------------------------------------------------------------------

    def _handle(self, handler: _Handler, body: bytes) -> None:
        now_m, now_w = time.monotonic(), time.time()
        headers = {k: v for k, v in handler.headers.items()}
        points: tuple[Point, ...] = ()
        error = ""
        try:
            request = decode(body)
            points = tuple(
                Point(tuple((lb.name, lb.value) for lb in ts.labels), s.value, s.timestamp)
                for ts in request.timeseries
                for s in ts.samples
            )
        except Exception as exc:  # any undecodable body gets a 400
            error = f"cannot decode body: {exc}"
        with self._lock:
            if self._server is not handler.server:
                # Went down while this request was on its way: a receiver that is gone
                # neither stores nor answers it.
                handler.close_connection = True
                return
            action: Action | None = self._script.popleft() if self._script else None
            if action is None:
                action = self._policy(headers, len(points))
            if error:
                action = Respond(400, {}, error)
            if isinstance(action, Hang):
                self._record(RequestRecord(now_m, now_w, None, points, headers, error))
            else:
                if action is None:
                    action = Respond(204)
                # Answer and record under the lock go_down() takes first, and record the status
                # only once it was sent: a request recorded as accepted has been answered (else
                # the client rightly sends it again, and the test would see a duplicate the
                # receiver made up). Readers of the records wait for the lock: once the
                # client has the answer, the record is there.
                status: int | None = action.status
                try:
                    handler.reply(action.status, action.headers, action.body)
                except OSError:
                    status = None
                self._record(RequestRecord(now_m, now_w, status, points, headers, error))
                return
        self._release.wait(action.seconds)
        handler.close_connection = True

    def _policy(self, headers: Mapping[str, str], samples: int) -> Action | None:
        """The standing rules (auth, size), for requests the script does not answer."""
        sent = headers.get("Authorization")
        if self.authorization is not None and sent != self.authorization:
            return Respond(401, {}, f"invalid credentials: Authorization: {sent}")
        if self.max_samples is not None and samples > self.max_samples:
            return Respond(413, {}, f"request too large: {samples} samples")
        return None

    def _record(self, record: RequestRecord) -> None:
        with self._changed:
            self._records.append(record)
            self._changed.notify_all()


class ClientProcess:
    """``python -m base_monitoring_client`` with a given environment, logging to a file."""

    def __init__(
        self, env: dict[str, str], log_path: Path, series: int = 5, args: Sequence[str] = ()
    ) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "base_monitoring_client",
                    "--series",
                    str(series),
                    *args,
                ],
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.started_wall = time.time()
        self.running_wall = math.nan

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_running(self, timeout: float = 20.0) -> None:
        """Until the pipeline runs (signal handlers installed, first tick due)."""
        wait_until(lambda: "pushing to" in self.log() or self.proc.poll() is not None, timeout)
        if self.proc.poll() is not None or "pushing to" not in self.log():
            raise RuntimeError(f"client did not start: {self.log()}")
        self.running_wall = time.time()

    def terminate(self, timeout: float = 20.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """Clean-up: SIGKILL this process (only this PID) if it still runs."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
