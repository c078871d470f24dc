"""HTTP endpoint for /healthz (ok | degraded | unhealthy, with reasons) and /metrics (text
format). It listens on 127.0.0.1 unless HEALTH_ADDRESS says otherwise: the reasons name the
receiver and the settings to fix."""

from __future__ import annotations

import errno
import json
import logging
import os
import selectors
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from .errors import ConfigError

log = logging.getLogger(__name__)


class HealthSource(Protocol):
    """What the endpoint reports; the pipeline is one."""

    def health(self) -> tuple[str, list[str]]: ...

    def pending_samples(self) -> int: ...

    def exposition(self) -> str: ...


class HealthServer:
    def __init__(self, address: str, port: int, source: HealthSource) -> None:
        self.source = source
        handler = _make_handler(source)
        try:
            self.server = ThreadingHTTPServer((address, port), handler)
        except OSError as exc:
            raise ConfigError(_listen_problem(address, port, exc)) from exc
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        # stop() writes to this pipe: the thread sleeps in select() until a request or stop,
        # where serve_forever() would wake every poll interval to look for a shutdown.
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="health", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.server, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fileobj is not self.server:
                        return
                    self.server.handle_request()  # a connection is waiting: accepts at once

    def stop(self) -> None:
        os.write(self._wake_write, b"\0")
        if self._thread.ident is not None:
            self._thread.join(2.0)
        self.server.server_close()
        os.close(self._wake_read)
        os.close(self._wake_write)


def _listen_problem(address: str, port: int, exc: OSError) -> str:
    """Which of HEALTH_ADDRESS and HEALTH_PORT is at fault, and the fix."""
    if isinstance(exc, socket.gaierror) or exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        why = exc.strerror or str(exc)
        return (
            f"HEALTH_ADDRESS={address}: cannot listen there ({why}); use 127.0.0.1 (this host "
            "only), 0.0.0.0 (every interface) or an address of this host"
        )
    return (
        f"HEALTH_PORT={port}: cannot listen on {address}:{port} ({exc.strerror}); "
        "choose a free port or set HEALTH_PORT=0"
    )


def _make_handler(source: HealthSource) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "wattpush"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                status, reasons = source.health()
                body = json.dumps(
                    {
                        "status": status,
                        "reasons": reasons,
                        "pending_samples": source.pending_samples(),
                    }
                ).encode()
                # 200 also when degraded: a receiver outage must not get the client restarted
                # (it would lose its in-memory queue); the body says what is wrong. 503 when
                # only a person can help (a dead thread, credentials the receiver refuses).
                code = 503 if status == "unhealthy" else 200
                self._reply(code, "application/json", body)
            elif path == "/metrics":
                text = source.exposition()
                self._reply(200, "text/plain; version=0.0.4; charset=utf-8", text.encode())
            else:
                self._reply(404, "text/plain", b"not found: try /healthz or /metrics\n")

        def _reply(self, code: int, ctype: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("health: " + format, *args)

    return Handler
