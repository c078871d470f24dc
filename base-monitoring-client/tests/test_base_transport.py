"""HttpClientTransport against a real receiver: what it sends, how it reads the answers, TLS,
keep-alive, redirects; and when make_transport keeps requests instead."""

from __future__ import annotations

import base64
import http.client
import http.server
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from base_monitoring_client.config import ClientConfig
from base_monitoring_client.encoder import SeriesEncoder, compress
from base_monitoring_client.httpauth import HttpAuth
from base_monitoring_client.transport import (
    MAX_BODY_BYTES,
    HttpClientTransport,
    HttpTransport,
    _read_answer,
    make_transport,
)
from wattpush_testing.base import series
from wattpush_testing.faults import FaultReceiver


@pytest.fixture
def rx() -> Iterator[FaultReceiver]:
    with FaultReceiver() as receiver:
        yield receiver


def body(n: int = 3) -> bytes:
    return compress(SeriesEncoder().encode(series(n, int(time.time() * 1000))))


def transport(url: str, remote_write_timeout_s: float = 10.0, **auth: Any) -> HttpClientTransport:
    config = ClientConfig(
        remote_write_url=url, remote_write_timeout_s=remote_write_timeout_s, auth=HttpAuth(**auth)
    )
    return HttpClientTransport(config, "wattpush/test")


def test_sends_the_remote_write_request_with_headers_and_auth(rx: FaultReceiver) -> None:
    t = transport(rx.url, headers={"X-Scope-OrgID": "team1"}, bearer_token="tok")
    outcome = t.post(body())
    assert outcome.status == 204 and outcome.error is None
    [record] = rx.records
    assert len(record.points) == 3
    headers = {k.lower(): v for k, v in record.headers.items()}
    assert headers["content-encoding"] == "snappy"
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["x-prometheus-remote-write-version"] == "0.1.0"
    assert headers["user-agent"] == "wattpush/test"
    assert headers["x-scope-orgid"] == "team1"
    assert headers["authorization"] == "Bearer tok"
    basic = transport(rx.url, basic_auth_user="me", basic_auth_password="pä")
    assert basic.post(body()).status == 204
    expected = "Basic " + base64.b64encode("me:pä".encode("latin1")).decode()
    assert rx.records[-1].headers["Authorization"] == expected
    t.close()
    basic.close()


def test_reads_status_body_and_retry_after(rx: FaultReceiver) -> None:
    t = transport(rx.url)
    rx.respond(400, body="out of bounds: sample too old")
    rx.respond(429, headers={"Retry-After": "7"})
    rx.respond(503)
    first, second, third, fourth = (t.post(body()) for _ in range(4))
    assert (first.status, first.body) == (400, "out of bounds: sample too old")
    assert (second.status, second.retry_after_s) == (429, 7.0)
    assert third.status == 503
    assert fourth.status == 204
    t.close()


def test_a_connection_closed_by_the_receiver_is_reopened_not_failed(rx: FaultReceiver) -> None:
    t = transport(rx.url)
    assert t.post(body()).status == 204
    rx.go_down()  # closes the kept connection
    failed = t.post(body())
    assert failed.status is None and failed.error and "ConnectionError" in failed.error
    rx.come_up()
    assert t.post(body()).status == 204  # no "error" for the stale connection
    rx.go_down()
    rx.come_up()
    assert t.post(body()).status == 204
    assert [r.status for r in rx.records] == [204, 204, 204]
    t.close()


def test_a_hanging_receiver_times_out(rx: FaultReceiver) -> None:
    t = transport(rx.url, remote_write_timeout_s=10.0)
    rx.hang(5.0)
    outcome = t.post(body(), timeout_s=0.3)
    assert outcome.status is None and outcome.error == "timeout after 0.3s"
    assert t.post(body()).status == 204  # a fresh connection for the next request
    t.close()


def test_a_redirect_is_followed_by_requests_from_then_on(rx: FaultReceiver) -> None:
    with FaultReceiver() as target:
        t = transport(rx.url)
        rx.respond(307, headers={"Location": target.url}, times=3)
        assert t.post(body()).status == 204
        assert t.post(body()).status == 204
        # The first answer, then requests' own request each time, which it follows.
        assert [r.status for r in rx.records] == [307, 307, 307]
        assert [r.status for r in target.records] == [204, 204]
        t.close()


def test_make_transport_keeps_requests_for_proxies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "http://127.0.0.1:9/api/v1/write"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NETRC", "/nonexistent")
    plain = ClientConfig(remote_write_url=url)
    assert isinstance(make_transport(plain, "ua"), HttpClientTransport)
    # Credentials in the URL become basic auth (the URL is printed in logs without them).
    with_creds = ClientConfig(remote_write_url="http://u:p%40ss@127.0.0.1:9/api/v1/write")
    assert with_creds.remote_write_url == url
    assert (with_creds.auth.basic_auth_user, with_creds.auth.basic_auth_password) == ("u", "p@ss")
    assert isinstance(make_transport(with_creds, "ua"), HttpClientTransport)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3128")
    assert isinstance(make_transport(plain, "ua"), HttpTransport)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert isinstance(make_transport(plain, "ua"), HttpClientTransport)


# -- TLS ----------------------------------------------------------------------------------------


class _Ok(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # stdlib naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class _CountingOk(_Ok):
    connections = 0

    def setup(self) -> None:
        type(self).connections += 1
        super().setup()


def test_the_requests_transport_keeps_its_connection_across_answers_it_reads_whole() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CountingOk)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="ok-receiver", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/api/v1/write"
    sender = HttpTransport(ClientConfig(remote_write_url=url), "wattpush/test")
    try:
        assert [sender.post(body()).status for _ in range(4)] == [204] * 4
    finally:
        sender.close()
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert _CountingOk.connections == 1


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS receiver on 127.0.0.1 with a self-signed certificate; (url, cert file)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name="tls-receiver", daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/api/v1/write", cert
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_tls_is_verified_against_the_ca_file_or_skipped_when_insecure(
    tls_server: tuple[str, Path],
) -> None:
    url, cert = tls_server
    verified = transport(url, ca_file=cert)
    assert verified.post(body()).status == 204
    insecure = transport(url, tls_insecure=True)
    assert insecure.post(body()).status == 204
    default = transport(url)  # the self-signed certificate is in no CA bundle
    refused = default.post(body())
    assert refused.status is None and refused.error and refused.error.startswith("SSLError")
    for t in (verified, insecure, default):
        t.close()


def answer_to(raw: bytes) -> Any:
    """What the transport reads from a receiver that sends ``raw`` and then closes."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.settimeout(5)
        theirs.sendall(raw)
        theirs.shutdown(socket.SHUT_WR)
        return _read_answer(ours)


@pytest.mark.parametrize(
    ("raw", "status", "body_bytes", "keep_alive"),
    [
        (b"HTTP/1.1 204 No Content\r\n\r\n", 204, b"", True),
        (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 7\r\n\r\ntoo old", 400, b"too old", True),
        (
            b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4;ext=1\r\nwrit\r\n9\r\ne failed.\r\n0\r\nX-Trailer: 1\r\n\r\n",
            500,
            b"write failed.",
            True,
        ),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 204, b"", True),
        (b"HTTP/1.1 503 Busy\r\nConnection: close\r\n\r\nbusy", 503, b"busy", False),
        (b"HTTP/1.0 204 No Content\r\n\r\n", 204, b"", False),
        (b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 204, b"", False),
    ],
)
def test_answers_are_read_by_length_chunks_or_close(
    raw: bytes, status: int, body_bytes: bytes, keep_alive: bool
) -> None:
    answer = answer_to(raw)
    assert (answer.status, answer.body, answer.keep_alive) == (status, body_bytes, keep_alive)


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 500 Oops\r\nContent-Length: 1000000000000\r\n\r\n",
        b"HTTP/1.1 500 Oops\r\n\r\n",  # until the receiver closes
        b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n"
        b"e8d4a51000\r\n",  # a second chunk of 10**12 bytes
    ],
)
def test_an_answer_body_is_read_to_a_bound_and_the_connection_then_dropped(head: bytes) -> None:
    """A receiver that announces or sends an endless body: the client keeps the first
    MAX_BODY_BYTES, does not wait for the rest and does not reuse the connection."""
    ours, theirs = socket.socketpair()
    stop = threading.Event()

    def flood() -> None:
        try:
            theirs.sendall(head)
            block = b"x" * 65536
            for _ in range(64):  # 4 MiB, then it keeps the connection open
                theirs.sendall(block)
            stop.wait(10)
        except OSError:
            pass  # the client closed: what it should do

    writer = threading.Thread(target=flood, name="flood", daemon=True)
    with ours, theirs:
        ours.settimeout(5)
        writer.start()
        answer = _read_answer(ours)  # waiting for the rest would end in a timeout error
        stop.set()
        ours.close()
    writer.join(5)
    assert answer.status == 500 and not answer.keep_alive
    assert len(answer.body) == MAX_BODY_BYTES


@pytest.mark.parametrize("kind", ["socket", "requests"])
def test_both_transports_keep_a_bounded_part_of_a_flooding_answer(kind: str) -> None:
    """Through ``post``: a receiver that answers 500 with an endless body and keeps the
    connection open. The outcome carries the start of it, and the next request gets a new
    connection."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted: list[socket.socket] = []

    def serve() -> None:
        server.settimeout(10)
        for _ in range(2):
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(conn)
            conn.recv(65536)  # the request (small)
            try:
                conn.sendall(b"HTTP/1.1 500 Oops\r\nContent-Type: text/plain\r\n\r\nflood ")
                for _ in range(40):  # 2.5 MiB
                    conn.sendall(b"x" * 65536)
            except OSError:
                continue  # the client closed it: what it should do
            # the connection stays open (kept in ``accepted``): the next request is awaited

    thread = threading.Thread(target=serve, name="flood-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/api/v1/write"
    config = ClientConfig(remote_write_url=url, remote_write_timeout_s=5.0)
    sender = (
        HttpClientTransport(config, "wattpush/test")
        if kind == "socket"
        else HttpTransport(config, "wattpush/test")
    )
    try:
        first = sender.post(body())
        second = sender.post(body())
    finally:
        sender.close()
        thread.join(10)
        server.close()
        for conn in accepted:
            conn.close()
    for outcome in (first, second):
        assert outcome.status == 500, outcome
        assert outcome.body.startswith("flood xxx") and len(outcome.body) <= 4096
    assert len(accepted) == 2  # the first connection was not reused


@pytest.mark.parametrize(
    "raw",
    [
        b"",  # closed before answering
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_a_broken_answer_is_an_http_error_not_a_crash(raw: bytes) -> None:
    with pytest.raises((http.client.HTTPException, OSError)):
        answer_to(raw)
