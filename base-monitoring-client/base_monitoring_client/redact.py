"""Keep secrets out of what a component prints: URLs without their credentials, a receiver's
text without Authorization-like values, and both bounded in length.

Everything a user can read (logs, /healthz, /metrics, reports, error messages) that holds a
URL or a remote party's words goes through here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import SplitResult, unquote, urlsplit

HIDDEN = "***"

# scheme://userinfo@ anywhere in a text (userinfo: no '/', '@' or blank).
_USERINFO_RE = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
# "Authorization: Bearer x", "token=x", '"password": "x"', "X-Api-Key: x", ...
_KEYED_SECRET_RE = re.compile(
    r"(?i)(?P<key>\b(?:proxy-)?authorization|\b[\w-]*(?:token|password|passwd|secret|api[_-]?key))"
    r"(?P<sep>\"?\s*[:=]\s*\"?)(?P<scheme>(?:bearer|basic|token)\s+)?[^\s\",;&]+"
)
# A bare "Bearer x" / "Basic x" (credentials echoed without their header name).
_SCHEME_SECRET_RE = re.compile(r"(?i)\b(?P<scheme>bearer|basic)\s+[A-Za-z0-9._~+/=-]{4,}")
_BLANKS_RE = re.compile(r"\s+")

#: how much of a receiver's answer is logged or shown
RECEIVER_TEXT_CHARS = 200


def redact_url(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***``
    (``http://alice:pw@host/x`` -> ``http://***@host/x``)."""
    return _USERINFO_RE.sub(lambda m: m.group("scheme") + HIDDEN + "@", text)


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``(url without userinfo, user, password)``, the parts percent-decoded as requests does;
    ``(url, None, None)`` when the URL carries none."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, None, None
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, sep, password = userinfo.partition(":")
    bare = SplitResult(parts.scheme, hostport, parts.path, parts.query, parts.fragment)
    return bare.geturl(), unquote(user), unquote(password) if sep else ""


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without URL credentials, Authorization-like values or any of ``secrets``."""
    for secret in secrets:
        if secret and len(secret) >= 3:  # shorter would blank out ordinary words
            text = text.replace(secret, HIDDEN)
    text = redact_url(text)
    text = _KEYED_SECRET_RE.sub(
        lambda m: m.group("key") + m.group("sep") + (m.group("scheme") or "") + HIDDEN, text
    )
    return _SCHEME_SECRET_RE.sub(lambda m: m.group("scheme") + " " + HIDDEN, text)


def receiver_text(
    text: str, secrets: Iterable[str | None] = (), limit: int = RECEIVER_TEXT_CHARS
) -> str:
    """A remote party's answer as one scrubbed line of at most ``limit`` characters: a
    receiver may echo the request (headers included) or send pages of HTML."""
    line = scrub(_BLANKS_RE.sub(" ", text).strip(), secrets)
    if len(line) > limit:
        line = line[: limit - 1].rstrip() + "…"
    return line or "<empty body>"
