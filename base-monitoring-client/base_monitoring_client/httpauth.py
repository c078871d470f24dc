"""How a component authenticates to an HTTP endpoint: one definition for all of them.

The pushing clients talk to REMOTE_WRITE_URL with ``REMOTE_WRITE_*`` settings, the advisor to a
query API with ``ADVISOR_*`` ones: the same settings under another prefix (``auth_settings``),
the same checks and messages (``HttpAuth.from_values``) and the same request set-up
(``HttpAuth.apply`` for a requests session, ``request_headers`` and ``ssl_context`` for
``http.client``).
"""

from __future__ import annotations

import base64
import os
import ssl
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

    @classmethod
    def from_values(cls, values: Mapping[str, Any], prefix: str) -> HttpAuth:
        """From the parsed ``auth_settings(prefix)`` (keys: lower-case variable names).

        Reads the secret files and checks that the settings fit together; raises one
        ConfigError that names every variable at fault and the fix.
        """
        key = prefix.lower()
        problems: list[str] = []

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
            except OSError as exc:
                problems.append(
                    f"{prefix}{name}_FILE={path}: cannot read the file ({exc.strerror}); "
                    "make it readable by this user or unset the variable"
                )
                return value
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
        if ca_file is not None and not Path(ca_file).is_file():
            problems.append(f"{prefix}CA_FILE={ca_file}: no such file; point it at a PEM CA bundle")
        if problems:
            raise ConfigError(problems)
        return cls(
            bearer_token=token,
            basic_auth_user=user,
            basic_auth_password=password,
            ca_file=Path(ca_file) if ca_file is not None else None,
            tls_insecure=bool(values.get(key + "tls_insecure", False)),
            headers=dict(values.get(key + "headers") or {}),
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
                "write headers as Name=value[,Name=value]",
                cli_flag="--header" if short_flags else "",
                flag_kind="repeat" if short_flags else "value"),
    )  # fmt: skip
