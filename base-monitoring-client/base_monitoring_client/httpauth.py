"""How a component authenticates to an HTTP endpoint: one definition for all of them.

The pushing clients talk to REMOTE_WRITE_URL with ``REMOTE_WRITE_*`` settings, the advisor to a
query API with ``ADVISOR_*`` ones: the same settings under another prefix (``auth_settings``),
the same checks and messages (``HttpAuth.from_values``) and the same request set-up
(``HttpAuth.apply`` for a requests session, ``request_headers`` and ``ssl_context`` for the
transport's own socket).
"""

from __future__ import annotations

import base64
import os
import ssl
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import requests.utils

from .errors import ConfigError
from .settings import Setting, parse_bool, parse_headers, parse_optional_path, parse_optional_str


@dataclass(frozen=True)
class HttpAuth:
    """Bearer token or basic auth, TLS trust and extra headers (e.g. a tenant's
    ``X-Scope-OrgID``). Secrets and headers never appear in ``repr``."""

    bearer_token: str | None = field(default=None, repr=False)
    basic_auth_user: str | None = None
    basic_auth_password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    tls_insecure: bool = False
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: what the user should know but that does not stop the client (a secret file others
    #: can read), logged once logging is set up
    warnings: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def secrets(self) -> tuple[str, ...]:
        """Every value that must never be printed (to scrub text a receiver echoes)."""
        values = [self.bearer_token, self.basic_auth_password, *self.headers.values()]
        if self.basic_auth_user:
            values.append(self.request_headers().get("Authorization", "").partition(" ")[2])
        return tuple(v for v in values if v)

    @classmethod
    def from_values(cls, values: Mapping[str, Any], prefix: str) -> HttpAuth:
        """From the parsed ``auth_settings(prefix)`` (keys: lower-case variable names).

        Reads the secret files and checks that the settings fit together; raises one
        ConfigError that names every variable at fault and the fix.
        """
        key = prefix.lower()
        problems: list[str] = []
        warnings: list[str] = []

        def secret(name: str) -> str | None:
            value = values.get(key + name.lower()) or None
            path = values.get(key + name.lower() + "_file")
            if path is None:
                return value
            if value:
                problems.append(
                    f"{prefix}{name} and {prefix}{name}_FILE are both set; keep only one"
                )
            try:
                text = Path(path).read_text(encoding="utf-8").strip()
                mode = Path(path).stat().st_mode
            except (OSError, UnicodeDecodeError) as exc:
                why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                problems.append(
                    f"{prefix}{name}_FILE={path}: cannot read the file ({why}); "
                    "make it a readable text file or unset the variable"
                )
                return value
            warnings.extend(_readable_by_others(f"{prefix}{name}_FILE", Path(path), mode))
            if not text:
                problems.append(
                    f"{prefix}{name}_FILE={path}: the file is empty; write the secret into it "
                    "or unset the variable"
                )
            return value or text or None

        token = secret("BEARER_TOKEN")
        password = secret("BASIC_AUTH_PASSWORD")
        user = values.get(key + "basic_auth_user") or None
        if password and not user:
            problems.append(
                f"{prefix}BASIC_AUTH_PASSWORD is set without {prefix}BASIC_AUTH_USER; "
                "set the user too"
            )
        if token and user:
            problems.append(
                f"{prefix}BEARER_TOKEN and {prefix}BASIC_AUTH_USER are both set: the server "
                "takes one kind of auth; unset the other"
            )
        ca_file = values.get(key + "ca_file")
        if ca_file is not None:
            problems.extend(_ca_file_problems(f"{prefix}CA_FILE", Path(ca_file)))
        if problems:
            raise ConfigError(problems)
        return cls(
            bearer_token=token,
            basic_auth_user=user,
            basic_auth_password=password,
            ca_file=Path(ca_file) if ca_file is not None else None,
            tls_insecure=bool(values.get(key + "tls_insecure", False)),
            headers=dict(values.get(key + "headers") or {}),
            warnings=tuple(warnings),
        )

    def apply(self, session: requests.Session) -> None:
        """Set the headers, credentials and TLS trust on ``session`` (after its own headers:
        an extra header of the same name wins)."""
        session.headers.update(self.headers)
        if self.bearer_token:
            session.headers["Authorization"] = f"Bearer {self.bearer_token}"
        elif self.basic_auth_user:
            session.auth = (self.basic_auth_user, self.basic_auth_password or "")
        if self.ca_file is not None:
            session.verify = str(self.ca_file)
        elif self.tls_insecure:
            session.verify = False

    def request_headers(self) -> dict[str, str]:
        """The extra headers and ``Authorization`` as ``apply`` makes requests send them
        (basic auth encoded the way requests does: each part in latin-1)."""
        headers = dict(self.headers)
        if self.bearer_token:
            headers["Authorization"] = f"Bearer {self.bearer_token}"
        elif self.basic_auth_user:
            pair = b":".join(
                part.encode("latin1")
                for part in (self.basic_auth_user, self.basic_auth_password or "")
            )
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return headers

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS trust ``apply`` gives a requests session: the CA file, no verification
        with ``tls_insecure``, else requests' own bundle unless the environment names one."""
        if self.ca_file is not None:
            return ssl.create_default_context(cafile=str(self.ca_file))
        if self.tls_insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        bundle = (
            os.environ.get("REQUESTS_CA_BUNDLE")
            or os.environ.get("CURL_CA_BUNDLE")
            or requests.utils.DEFAULT_CA_BUNDLE_PATH
        )
        return ssl.create_default_context(
            cafile=bundle if os.path.isfile(bundle) else None,
            capath=bundle if os.path.isdir(bundle) else None,
        )


def _readable_by_others(setting: str, path: Path, mode: int) -> list[str]:
    """A secret file its group or everyone can read is worth a warning (not a refusal:
    a container's mounted secret may be so on purpose)."""
    if not stat.S_ISREG(mode) or not mode & (stat.S_IRGRP | stat.S_IROTH):
        return []
    who = "everyone" if mode & stat.S_IROTH else "its group"
    return [
        f"{setting}={path}: the secret file is readable by {who} (mode "
        f"{stat.S_IMODE(mode):04o}); make it readable by this user only: chmod 600 {path}"
    ]


def _ca_file_problems(setting: str, path: Path) -> list[str]:
    """A CA bundle that does not load would fail every request (or, for the transport's own
    socket, the start) with an SSL traceback: checked once here."""
    if not path.is_file():
        return [f"{setting}={path}: no such file; point it at a PEM CA bundle"]
    try:
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
        return [
            f"{setting}={path}: not a usable CA bundle ({reason}); point it at a PEM file "
            "of CA certificates (-----BEGIN CERTIFICATE-----)"
        ]
    return []


def auth_settings(prefix: str, *, short_flags: bool = False) -> tuple[Setting, ...]:
    """The settings ``HttpAuth.from_values(values, prefix)`` reads: ``{prefix}BEARER_TOKEN``
    (and ``_FILE``), ``BASIC_AUTH_USER``, ``BASIC_AUTH_PASSWORD`` (and ``_FILE``), ``CA_FILE``,
    ``TLS_INSECURE`` and ``HEADERS``.

    Flags are derived from the variables (``--remote-write-ca-file``), or with ``short_flags``
    as a query tool's: no prefix (``--ca-file``), ``--tls-insecure`` alone, ``--header`` once
    per header (added to ``{prefix}HEADERS``), and no flag for the password (``ps`` shows a
    command line: use the file).
    """

    def flag(name: str) -> str:
        return "--" + name.lower().replace("_", "-") if short_flags else ""

    return (
        Setting(f"{prefix}BEARER_TOKEN", "", parse_optional_str,
                "bearer token (prefer the _FILE setting: a flag shows in ps)", secret=True,
                cli_flag=flag("BEARER_TOKEN")),
        Setting(f"{prefix}BEARER_TOKEN_FILE", "", parse_optional_path,
                "file holding the bearer token", cli_flag=flag("BEARER_TOKEN_FILE")),
        Setting(f"{prefix}BASIC_AUTH_USER", "", parse_optional_str, "basic auth user",
                cli_flag=flag("BASIC_AUTH_USER")),
        Setting(f"{prefix}BASIC_AUTH_PASSWORD", "", parse_optional_str, "basic auth password",
                secret=True, flag_kind="none" if short_flags else "value"),
        Setting(f"{prefix}BASIC_AUTH_PASSWORD_FILE", "", parse_optional_path,
                "file holding the basic auth password", cli_flag=flag("BASIC_AUTH_PASSWORD_FILE")),
        Setting(f"{prefix}CA_FILE", "", parse_optional_path, "CA bundle for TLS",
                cli_flag=flag("CA_FILE")),
        Setting(f"{prefix}TLS_INSECURE", "false", parse_bool, "skip TLS verification",
                "use true or false", cli_flag=flag("TLS_INSECURE"),
                flag_kind="switch" if short_flags else "value"),
        Setting(f"{prefix}HEADERS", "", parse_headers, "extra headers, e.g. X-Scope-OrgID=team1",
                "write headers as Name=value[,Name=value]", secret=True,
                cli_flag="--header" if short_flags else "",
                flag_kind="repeat" if short_flags else "value"),
    )  # fmt: skip
