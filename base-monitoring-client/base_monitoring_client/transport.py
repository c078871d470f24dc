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

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 600.0


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
        headers = {
            "Content-Encoding": "snappy",
            "Content-Type": "application/x-protobuf",
            "X-Prometheus-Remote-Write-Version": "0.1.0",
            "User-Agent": user_agent,
        }
        self.session.headers.update(headers)
        config.auth.apply(self.session)

    def post(self, body: bytes, timeout_s: float | None = None) -> Outcome:
        start = time.monotonic()
        timeout = self.timeout_s if timeout_s is None else max(0.05, min(timeout_s, self.timeout_s))
        try:
            resp = self.session.post(self.url, data=body, timeout=timeout)
        except requests.Timeout:
            return Outcome(None, f"timeout after {timeout:g}s", duration_s=time.monotonic() - start)
        except (requests.RequestException, ValueError) as exc:
            error = scrub(_describe(exc), self._secrets)
            return Outcome(None, error, duration_s=time.monotonic() - start)
        text = ""
        if resp.status_code >= 300:
            text = receiver_text(resp.text[:4096], self._secrets)
        return Outcome(
            resp.status_code,
            None,
            text,
            parse_retry_after(resp.headers.get("Retry-After")),
            time.monotonic() - start,
        )

    def close(self) -> None:
        self.session.close()


_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_REQUESTS_DEFAULT_HEADERS = {
    "Accept-Encoding": "gzip, deflate",
    "Accept": "*/*",
    "Connection": "keep-alive",
}


class HttpClientTransport:
    """The same requests as ``HttpTransport`` (headers, auth, TLS verification, timeouts), on
    one keep-alive ``http.client`` connection.

    A POST through requests cost about 1.3 ms of CPU on a quiet 10 Hz client against 0.4 ms
    here (measured in the same run): at one request per push interval that was a tenth of a
    small client's CPU. Like requests, a kept connection the receiver has closed meanwhile is
    noticed before it is used, and a request is never sent twice. A receiver that redirects
    is handed, from then on, to an ``HttpTransport``, which follows redirects as it always did.
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
        self._port = parts.port
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {
            "User-Agent": user_agent,
            **_REQUESTS_DEFAULT_HEADERS,
            "Content-Encoding": "snappy",
            "Content-Type": "application/x-protobuf",
            "X-Prometheus-Remote-Write-Version": "0.1.0",
        }
        headers.update(config.auth.request_headers())
        self._headers = headers
        self._context = config.auth.ssl_context() if self._https else None
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        conn = self._conn
        if conn is not None and conn.sock is not None and _dropped(conn.sock):
            conn.close()  # the receiver closed the idle connection: open a new one
        if conn is None:
            if self._https:
                conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=timeout, context=self._context
                )
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
            self._conn = conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def post(self, body: bytes, timeout_s: float | None = None) -> Outcome:
        if self._redirected is not None:
            return self._redirected.post(body, timeout_s)
        start = time.monotonic()
        timeout = self.timeout_s if timeout_s is None else max(0.05, min(timeout_s, self.timeout_s))
        conn = self._connection(timeout)
        try:
            conn.request("POST", self._target, body, self._headers)
            resp = conn.getresponse()
            data = resp.read()
        except TimeoutError:
            conn.close()
            return Outcome(None, f"timeout after {timeout:g}s", duration_s=time.monotonic() - start)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # ValueError: a header http.client refuses to send (the settings check them first)
            conn.close()
            if isinstance(exc, ssl.SSLError):
                kind = "SSLError"
            elif isinstance(exc, OSError | http.client.HTTPException):
                kind = "ConnectionError"
            else:
                kind = type(exc).__name__
            error = scrub(_describe_as(kind, exc), self._secrets)
            return Outcome(None, error, duration_s=time.monotonic() - start)
        if resp.status in _REDIRECTS and resp.getheader("Location"):
            self.close()
            self._redirected = HttpTransport(self._config, self._user_agent)
            return self._redirected.post(body, timeout_s)
        text = ""
        if resp.status >= 300:
            text = receiver_text(
                _body_text(
                    data[:4096], resp.getheader("Content-Encoding"), resp.getheader("Content-Type")
                ),
                self._secrets,
            )
        return Outcome(
            resp.status,
            None,
            text,
            parse_retry_after(resp.getheader("Retry-After")),
            time.monotonic() - start,
        )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._redirected is not None:
            self._redirected.close()


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
