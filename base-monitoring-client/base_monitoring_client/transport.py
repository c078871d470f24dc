"""One remote-write POST: ``Transport.post`` returns what the receiver answered as an
``Outcome`` (status, body, Retry-After) and never raises for it; what an answer means is
decided by ``sender.classify``.
"""

from __future__ import annotations

import email.utils
import http.client
import logging
import math
import select
import socket
import ssl
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit

import requests

from .config import ClientConfig
from .redact import receiver_text, scrub
from .settings import HEADER_NAME_RE, HEADER_VALUE_BAD_RE

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 600.0
#: an answer's body is read this far at most (the log keeps its first 4096 bytes): a receiver
#: announcing or sending more cannot fill the client's memory; the connection is then closed,
#: as its rest was never read
MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: an HTTP status, or an error before any status arrived."""

    status: int | None
    error: str | None = None
    body: str = ""
    retry_after_s: float | None = None
    duration_s: float = 0.0

    @property
    def code_label(self) -> str:
        return str(self.status) if self.status is not None else "error"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date. None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        current = datetime.fromtimestamp(time.time() if now is None else now, UTC)
        seconds = (when - current).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)


class Transport(Protocol):
    """Where batches go: one POST per call, never raising for what the receiver answers."""

    def post(self, body: bytes, timeout_s: float | None = None) -> Outcome: ...

    def close(self) -> None: ...


#: What every remote-write POST carries, whichever transport sends it.
REMOTE_WRITE_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


class HttpTransport:
    """POSTs remote-write bodies on one keep-alive requests session.

    Used where the environment asks for what only requests does here: a proxy
    (HTTP(S)_PROXY, ALL_PROXY), credentials from ~/.netrc or in the URL. Otherwise
    ``make_transport`` picks ``HttpClientTransport``.
    """

    def __init__(self, config: ClientConfig, user_agent: str) -> None:
        self.url = config.remote_write_url
        self.timeout_s = config.remote_write_timeout_s
        self._secrets = config.auth.secrets()
        self.session = requests.Session()
        self.session.headers.update({**REMOTE_WRITE_HEADERS, "User-Agent": user_agent})
        config.auth.apply(self.session)

    def post(self, body: bytes, timeout_s: float | None = None) -> Outcome:
        start = time.monotonic()
        timeout = self.timeout_s if timeout_s is None else max(0.05, min(timeout_s, self.timeout_s))
        try:
            # stream: the body is read here, to MAX_BODY_BYTES at most
            resp = self.session.post(self.url, data=body, timeout=timeout, stream=True)
            data = _bounded_content(resp)
        except requests.Timeout:
            return Outcome(None, f"timeout after {timeout:g}s", duration_s=time.monotonic() - start)
        except (requests.RequestException, ValueError) as exc:
            error = scrub(_describe(exc), self._secrets)
            return Outcome(None, error, duration_s=time.monotonic() - start)
        text = ""
        if resp.status_code >= 300:
            # iter_content has undone gzip/deflate already
            content_type = resp.headers.get("Content-Type")
            text = receiver_text(_body_text(data[:4096], None, content_type), self._secrets)
        return Outcome(
            resp.status_code,
            None,
            text,
            parse_retry_after(resp.headers.get("Retry-After")),
            time.monotonic() - start,
        )

    def close(self) -> None:
        self.session.close()


def _bounded_content(resp: requests.Response) -> bytes:
    """The answer's body up to MAX_BODY_BYTES. Read to its end, the connection goes back to
    the session's pool; cut short, it is closed."""
    chunks: list[bytes] = []
    size = 0
    for chunk in resp.iter_content(65536):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            resp.close()
            break
    return b"".join(chunks)[:MAX_BODY_BYTES]


_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_REQUESTS_DEFAULT_HEADERS = {
    "Accept-Encoding": "gzip, deflate",
    "Accept": "*/*",
    "Connection": "keep-alive",
}


class HttpClientTransport:
    """The same requests as ``HttpTransport`` (headers, auth, TLS verification, timeouts), on
    one kept-alive socket, written and read here.

    A 32 KB POST into a local Prometheus cost 0.69-0.77 ms of CPU through ``http.client`` and
    0.32-0.36 ms written here (``bench/request_cost_bench.py posts``; through requests it was
    about 1.3 ms): at ten requests a second (the default batch size at 2000 series) that was
    most of the sender's CPU. The request is one ``sendall`` of headers prepared once and the
    body; the answer's status line and headers are read with one parse, its body by
    Content-Length, chunks or until the receiver closes. Like requests, a kept connection the
    receiver has closed meanwhile is noticed before it is used, and a request is never sent
    twice. A receiver that redirects is handed, from then on, to an ``HttpTransport``, which
    follows redirects as it always did.
    """

    def __init__(self, config: ClientConfig, user_agent: str) -> None:
        self._config = config
        self._user_agent = user_agent
        self._secrets = config.auth.secrets()
        self._redirected: HttpTransport | None = None
        self.url = config.remote_write_url
        self.timeout_s = config.remote_write_timeout_s
        parts = urlsplit(requests.utils.requote_uri(self.url))  # as requests sends it
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {
            "User-Agent": user_agent,
            **_REQUESTS_DEFAULT_HEADERS,
            **REMOTE_WRITE_HEADERS,
        }
        headers.update(config.auth.request_headers())
        self._headers = headers
        self._head: bytes | None = None  # made at the first post: a bad header is its Outcome
        self._context = config.auth.ssl_context() if self._https else None
        self._sock: socket.socket | None = None

    def _request_head(self) -> bytes:
        if self._head is None:
            lines = [f"POST {self._target} HTTP/1.1", f"Host: {self._host_header()}"]
            for name, value in self._headers.items():
                if not HEADER_NAME_RE.match(name) or HEADER_VALUE_BAD_RE.search(value):
                    raise ValueError(f"header {name!r} cannot be sent")
                lines.append(f"{name}: {value}")
            self._head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")
        return self._head

    def _host_header(self) -> str:
        """Host as http.client writes it: IDNA, IPv6 in brackets, the port unless default."""
        try:
            name = self._host.encode("ascii").decode()
        except UnicodeEncodeError:
            name = self._host.encode("idna").decode()
        if ":" in name:
            name = f"[{name}]"
        return name if self._port == (443 if self._https else 80) else f"{name}:{self._port}"

    def _connection(self, timeout: float) -> socket.socket:
        sock = self._sock
        if sock is not None and _dropped(sock):
            self._close_socket()  # the receiver closed the idle connection: open a new one
            sock = None
        if sock is None:
            sock = socket.create_connection((self._host, self._port), timeout)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self._context is not None:
                    sock = self._context.wrap_socket(sock, server_hostname=self._host)
            except BaseException:
                sock.close()
                raise
            self._sock = sock
        sock.settimeout(timeout)
        return sock

    def post(self, body: bytes, timeout_s: float | None = None) -> Outcome:
        if self._redirected is not None:
            return self._redirected.post(body, timeout_s)
        start = time.monotonic()
        timeout = self.timeout_s if timeout_s is None else max(0.05, min(timeout_s, self.timeout_s))
        try:
            head = self._request_head()
            sock = self._connection(timeout)
            sock.sendall(b"".join((head, b"%d\r\n\r\n" % len(body), body)))
            answer = _read_answer(sock)
        except TimeoutError:
            self._close_socket()
            return Outcome(None, f"timeout after {timeout:g}s", duration_s=time.monotonic() - start)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # ValueError: a header that cannot be sent (the settings check them first)
            self._close_socket()
            if isinstance(exc, ssl.SSLError):
                kind = "SSLError"
            elif isinstance(exc, OSError | http.client.HTTPException):
                kind = "ConnectionError"
            else:
                kind = type(exc).__name__
            error = scrub(_describe_as(kind, exc), self._secrets)
            return Outcome(None, error, duration_s=time.monotonic() - start)
        if not answer.keep_alive:
            self._close_socket()
        status, headers = answer.status, answer.headers
        if status in _REDIRECTS and headers.get("location"):
            self.close()
            self._redirected = HttpTransport(self._config, self._user_agent)
            return self._redirected.post(body, timeout_s)
        text = ""
        if status >= 300:
            text = receiver_text(
                _body_text(
                    answer.body[:4096], headers.get("content-encoding"), headers.get("content-type")
                ),
                self._secrets,
            )
        return Outcome(
            status,
            None,
            text,
            parse_retry_after(headers.get("retry-after")),
            time.monotonic() - start,
        )

    def _close_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def close(self) -> None:
        self._close_socket()
        if self._redirected is not None:
            self._redirected.close()


_MAX_HEAD_BYTES = 65536


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes
    keep_alive: bool


class _Reader:
    """Bytes of one answer off a socket, buffered."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.buf = bytearray()
        self.eof = False

    def fill(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            self.eof = True
        self.buf += chunk

    def until(self, marker: bytes, limit: int) -> bytes:
        """Up to and without ``marker``, which is consumed."""
        while True:
            end = self.buf.find(marker)
            if end >= 0:
                out = bytes(self.buf[:end])
                del self.buf[: end + len(marker)]
                return out
            if len(self.buf) > limit:
                raise http.client.HTTPException("the receiver's answer has too long a header")
            if self.eof:
                raise http.client.RemoteDisconnected("the receiver closed the connection")
            self.fill()

    def exactly(self, count: int) -> bytes:
        while len(self.buf) < count:
            if self.eof:
                raise http.client.IncompleteRead(bytes(self.buf), count - len(self.buf))
            self.fill()
        out = bytes(self.buf[:count])
        del self.buf[:count]
        return out

    def rest(self, limit: int) -> bytes:
        """Up to the end of the stream, or ``limit`` bytes of it."""
        while not self.eof and len(self.buf) < limit:
            self.fill()
        out = bytes(self.buf[:limit])
        self.buf.clear()
        return out


def _read_answer(sock: socket.socket) -> _Answer:
    """Status, headers and body of the answer to one request (1xx answers skipped)."""
    reader = _Reader(sock)
    while True:
        head = reader.until(b"\r\n\r\n", _MAX_HEAD_BYTES).decode("iso-8859-1")
        status_line, *lines = head.split("\r\n")
        version, _, rest = status_line.partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/") or not code.isdigit():
            raise http.client.BadStatusLine(status_line[:100])
        headers: dict[str, str] = {}
        for line in lines:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        status = int(code)
        if status >= 200:
            break
    keep_alive = (
        headers.get("connection", "").lower() != "close"
        if version == "HTTP/1.1"
        else headers.get("connection", "").lower() == "keep-alive"
    )
    if status in (204, 304):
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body, complete = _read_chunks(reader)
        keep_alive = keep_alive and complete
    elif "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise http.client.HTTPException("bad Content-Length") from None
        if length > MAX_BODY_BYTES:
            body = reader.rest(MAX_BODY_BYTES)
            keep_alive = False
        else:
            body = reader.exactly(length)
    else:  # the body runs until the receiver closes
        body = reader.rest(MAX_BODY_BYTES)
        keep_alive = False
    if reader.buf:
        keep_alive = False  # more than one answer: do not trust the connection
    return _Answer(status, headers, body, keep_alive)


def _read_chunks(reader: _Reader) -> tuple[bytes, bool]:
    """The chunked body, and whether it was read to its end (not when over MAX_BODY_BYTES)."""
    out = bytearray()
    while True:
        size_line = reader.until(b"\r\n", _MAX_HEAD_BYTES)
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise http.client.HTTPException("bad chunk size") from None
        if size == 0:
            while reader.until(b"\r\n", _MAX_HEAD_BYTES):  # trailers, then an empty line
                pass
            return bytes(out), True
        room = MAX_BODY_BYTES - len(out)
        if size > room:
            out += reader.rest(room)
            return bytes(out), False
        out += reader.exactly(size)
        reader.exactly(2)  # the chunk's CRLF


def _dropped(sock: socket.socket) -> bool:
    """An idle keep-alive socket that is readable has been closed by the peer (or sent
    something unasked): it cannot carry the next request (urllib3 checks the same)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _body_text(data: bytes, encoding: str | None, content_type: str | None) -> str:
    """A response body as text, decompressed and decoded the way requests' ``.text`` would
    for the receivers' plain-text errors."""
    try:
        if encoding == "gzip":
            data = zlib.decompress(data, 16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            data = zlib.decompress(data)
    except zlib.error:
        pass
    # requests: the charset parameter, ISO-8859-1 for other text/*, else a guess (UTF-8 here).
    charset = "ISO-8859-1" if (content_type or "").startswith("text/") else "utf-8"
    if content_type:
        _, _, params = content_type.partition(";")
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip("\"'")
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def make_transport(config: ClientConfig, user_agent: str) -> Transport:
    """``HttpClientTransport``, or ``HttpTransport`` where requests would do more than it:
    a proxy from the environment, credentials from ~/.netrc."""
    url = config.remote_write_url  # without credentials: ClientConfig made them basic auth
    needs_requests = bool(
        requests.utils.get_environ_proxies(url)
        or (not config.auth.basic_auth_user and requests.utils.get_netrc_auth(url))
    )
    if needs_requests:
        return HttpTransport(config, user_agent)
    return HttpClientTransport(config, user_agent)


def _describe_as(kind: str, exc: BaseException) -> str:
    cause: BaseException = exc
    while cause.__cause__ is not None or cause.__context__ is not None:
        nxt = cause.__cause__ or cause.__context__
        assert nxt is not None
        cause = nxt
    return f"{kind}: {cause}"[:300]


def _describe(exc: Exception) -> str:
    # requests nests the root cause deeply; the innermost message is the useful one.
    return _describe_as(type(exc).__name__, exc)
