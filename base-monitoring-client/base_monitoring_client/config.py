"""Configuration: one frozen, validated object read from the environment and CLI flags.

Every variable is a ``Setting``; each has a flag derived from its name
(``SAMPLE_INTERVAL_S`` -> ``--sample-interval-s``) and flags win over the environment.
All problems are collected and reported together, each naming the variable, the bad value
(never for secrets) and the fix.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError

Parser = Callable[[str], Any]

LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]i?[bB]?|[bB])?\s*$")
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "ki": 1024, "kib": 1024,
    "m": 1000**2, "mb": 1000**2, "mi": 1024**2, "mib": 1024**2,
    "g": 1000**3, "gb": 1000**3, "gi": 1024**3, "gib": 1024**3,
    "t": 1000**4, "tb": 1000**4, "ti": 1024**4, "tib": 1024**4,
}  # fmt: skip


class InvalidValue(ValueError):  # noqa: N818 - reads as 'raise InvalidValue(...)'
    """Raised by a parser; the message says what is expected."""


def parse_float(
    min_value: float | None = None,
    max_value: float | None = None,
    *,
    positive: bool = False,
) -> Parser:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise InvalidValue("expected a number") from None
        if not math.isfinite(value):
            raise InvalidValue("expected a finite number")
        if positive and value <= 0:
            raise InvalidValue("expected a number greater than 0")
        if min_value is not None and value < min_value:
            raise InvalidValue(f"expected a number >= {min_value:g}")
        if max_value is not None and value > max_value:
            raise InvalidValue(f"expected a number <= {max_value:g}")
        return value

    return parse


def parse_int(min_value: int | None = None, max_value: int | None = None) -> Parser:
    def parse(text: str) -> int:
        try:
            value = int(text.strip().replace("_", ""))
        except ValueError:
            raise InvalidValue("expected a whole number") from None
        if min_value is not None and value < min_value:
            raise InvalidValue(f"expected a whole number >= {min_value}")
        if max_value is not None and value > max_value:
            raise InvalidValue(f"expected a whole number <= {max_value}")
        return value

    return parse


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise InvalidValue("expected true or false")


def parse_str(text: str) -> str:
    return text


def parse_optional_str(text: str) -> str | None:
    return text or None


def parse_bytes(text: str) -> int:
    """Sizes like 268435456, 256MiB, 1.5GB."""
    match = _SIZE_RE.match(text)
    if not match:
        raise InvalidValue("expected a size such as 268435456, 256MiB or 1GB")
    number, unit = match.groups()
    factor = _SIZE_UNITS.get((unit or "").lower())
    if factor is None:
        raise InvalidValue("expected a size such as 268435456, 256MiB or 1GB")
    return int(float(number) * factor)


def parse_choice(*choices: str) -> Parser:
    def parse(text: str) -> str:
        lowered = text.strip().lower()
        if lowered not in choices:
            raise InvalidValue("expected one of " + ", ".join(choices))
        return lowered

    return parse


def parse_http_url(text: str) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise InvalidValue("expected an http:// or https:// URL with a host")
    return text.strip()


def parse_optional_path(text: str) -> Path | None:
    return Path(text) if text else None


def parse_path(text: str) -> Path:
    if not text:
        raise InvalidValue("expected a path")
    return Path(text)


def parse_pairs(text: str, *, what: str, check_label_name: bool) -> dict[str, str]:
    """``k=v,k=v`` (spaces around items ignored)."""
    pairs: dict[str, str] = {}
    for raw_item in text.split(","):
        item = raw_item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidValue(f"expected {what} as key=value[,key=value], got item {item!r}")
        if check_label_name and (not LABEL_NAME_RE.match(key) or key.startswith("__")):
            raise InvalidValue(
                f"{key!r} is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, no leading __)"
            )
        if key in pairs:
            raise InvalidValue(f"{key!r} appears twice")
        pairs[key] = value.strip()
    return pairs


def parse_labels(text: str) -> dict[str, str]:
    return parse_pairs(text, what="labels", check_label_name=True)


def parse_headers(text: str) -> dict[str, str]:
    return parse_pairs(text, what="headers", check_label_name=False)


@dataclass(frozen=True)
class Setting:
    """One tunable: its environment variable, textual default, parser and the fix to suggest."""

    env: str
    default: str
    parse: Parser
    help: str
    fix: str = ""
    secret: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.env.lower().replace("_", "-")

    @property
    def dest(self) -> str:
        return self.env.lower()


def _read_secret_file(path: Path | None, setting: str, problems: list[str]) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        problems.append(
            f"{setting}={path}: cannot read the file ({exc.strerror}); "
            "make it readable by this user or unset the variable"
        )
        return None


@dataclass(frozen=True)
class ClientConfig:
    remote_write_url: str = "http://localhost:9090/api/v1/write"
    sample_interval_s: float = 0.1
    push_interval_s: float = 4.0
    max_samples_per_send: int = 2000
    queue_capacity: int = 100_000
    spool_dir: Path | None = None
    spool_max_bytes: int = 256 * 1024 * 1024
    min_backoff_s: float = 0.03
    max_backoff_s: float = 5.0
    retry_on_429: bool = True
    remote_write_timeout_s: float = 10.0
    bearer_token: str | None = field(default=None, repr=False)
    basic_auth_user: str | None = None
    basic_auth_password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    tls_insecure: bool = False
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    instance: str = ""
    health_port: int = 0
    health_address: str = "0.0.0.0"
    shutdown_timeout_s: float = 10.0
    log_level: str = "info"
    log_format: str = "text"

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> ClientConfig:
        """Build from parsed values (keys are lower-case variable names); cross-checks fields."""
        problems: list[str] = []
        token = values.get("remote_write_bearer_token")
        token_file = _read_secret_file(
            values.get("remote_write_bearer_token_file"), "REMOTE_WRITE_BEARER_TOKEN_FILE", problems
        )
        if token and token_file:
            problems.append(
                "REMOTE_WRITE_BEARER_TOKEN and REMOTE_WRITE_BEARER_TOKEN_FILE are both set; "
                "keep only one"
            )
        password = values.get("remote_write_basic_auth_password")
        password_file = _read_secret_file(
            values.get("remote_write_basic_auth_password_file"),
            "REMOTE_WRITE_BASIC_AUTH_PASSWORD_FILE",
            problems,
        )
        password = password or password_file
        user = values.get("remote_write_basic_auth_user")
        if password and not user:
            problems.append(
                "REMOTE_WRITE_BASIC_AUTH_PASSWORD is set without REMOTE_WRITE_BASIC_AUTH_USER; "
                "set the user too"
            )
        if (token or token_file) and user:
            problems.append(
                "both bearer token and basic auth are configured; the receiver takes one, "
                "unset the other"
            )
        min_b = values.get("min_backoff_s", cls.min_backoff_s)
        max_b = values.get("max_backoff_s", cls.max_backoff_s)
        if isinstance(min_b, float) and isinstance(max_b, float) and max_b < min_b:
            problems.append(
                f"MAX_BACKOFF_S={max_b:g} is below MIN_BACKOFF_S={min_b:g}; "
                "make MAX_BACKOFF_S >= MIN_BACKOFF_S"
            )
        ca_file = values.get("remote_write_ca_file")
        if ca_file is not None and not Path(ca_file).is_file():
            problems.append(
                f"REMOTE_WRITE_CA_FILE={ca_file}: no such file; point it at a PEM CA bundle"
            )
        if problems:
            raise ConfigError(problems)
        instance = values.get("instance") or socket.gethostname()
        return cls(
            remote_write_url=values.get("remote_write_url", cls.remote_write_url),
            sample_interval_s=values.get("sample_interval_s", cls.sample_interval_s),
            push_interval_s=values.get("push_interval_s", cls.push_interval_s),
            max_samples_per_send=values.get("max_samples_per_send", cls.max_samples_per_send),
            queue_capacity=values.get("queue_capacity", cls.queue_capacity),
            spool_dir=values.get("spool_dir"),
            spool_max_bytes=values.get("spool_max_bytes", cls.spool_max_bytes),
            min_backoff_s=min_b,
            max_backoff_s=max_b,
            retry_on_429=values.get("retry_on_429", cls.retry_on_429),
            remote_write_timeout_s=values.get("remote_write_timeout_s", cls.remote_write_timeout_s),
            bearer_token=token or token_file,
            basic_auth_user=user,
            basic_auth_password=password,
            ca_file=ca_file,
            tls_insecure=values.get("remote_write_tls_insecure", cls.tls_insecure),
            headers=dict(values.get("remote_write_headers") or {}),
            extra_labels=dict(values.get("extra_labels") or {}),
            instance=instance,
            health_port=values.get("health_port", cls.health_port),
            health_address=values.get("health_address", cls.health_address),
            shutdown_timeout_s=values.get("shutdown_timeout_s", cls.shutdown_timeout_s),
            log_level=values.get("log_level", cls.log_level),
            log_format=values.get("log_format", cls.log_format),
        )


def _default(name: str) -> str:
    """A ClientConfig field's default as the text of its setting: each default is written
    once, in ClientConfig."""
    value = ClientConfig.__dataclass_fields__[name].default
    if value is MISSING or value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


BASE_SETTINGS: tuple[Setting, ...] = (
    Setting("REMOTE_WRITE_URL", _default("remote_write_url"), parse_http_url,
            "remote-write endpoint",
            "set it to the receiver's write URL, e.g. http://prometheus:9090/api/v1/write"),
    Setting("SAMPLE_INTERVAL_S", _default("sample_interval_s"), parse_float(0.001, 3600),
            "collect period in seconds",
            "use a period between 0.001 and 3600 s, e.g. 0.1 for 10 Hz"),
    Setting("PUSH_INTERVAL_S", _default("push_interval_s"), parse_float(0.01, 3600),
            "max seconds a sample waits",
            "use a value between 0.01 and 3600 s, e.g. 4"),
    Setting("MAX_SAMPLES_PER_SEND", _default("max_samples_per_send"), parse_int(1, 1_000_000),
            "batch size cap",
            "use a whole number between 1 and 1000000, e.g. 2000"),
    Setting("QUEUE_CAPACITY", _default("queue_capacity"), parse_int(1, 100_000_000),
            "samples held in memory before spilling to the spool",
            "use a whole number >= 1, e.g. 100000"),
    Setting("SPOOL_DIR", "", parse_optional_path, "disk buffer directory (empty = off)",
            "point it at a writable directory, or leave it empty to disable the spool"),
    Setting("SPOOL_MAX_BYTES", f"{ClientConfig.spool_max_bytes >> 20}MiB", parse_bytes,
            "spool size bound",
            "use a size such as 268435456 or 256MiB"),
    Setting("MIN_BACKOFF_S", _default("min_backoff_s"), parse_float(0.0, 3600), "first retry delay",
            "use a small non-negative number of seconds, e.g. 0.03"),
    Setting("MAX_BACKOFF_S", _default("max_backoff_s"), parse_float(0.0, 3600), "retry delay cap",
            "use a number of seconds >= MIN_BACKOFF_S, e.g. 5"),
    Setting("RETRY_ON_429", _default("retry_on_429"), parse_bool, "retry 429 honouring Retry-After",
            "use true or false"),
    Setting("REMOTE_WRITE_TIMEOUT_S", _default("remote_write_timeout_s"),
            parse_float(positive=True, max_value=3600),
            "per request timeout", "use a number of seconds > 0, e.g. 10"),
    Setting("REMOTE_WRITE_BEARER_TOKEN", "", parse_optional_str, "bearer token", secret=True),
    Setting("REMOTE_WRITE_BEARER_TOKEN_FILE", "", parse_optional_path,
            "file holding the bearer token"),
    Setting("REMOTE_WRITE_BASIC_AUTH_USER", "", parse_optional_str, "basic auth user"),
    Setting("REMOTE_WRITE_BASIC_AUTH_PASSWORD", "", parse_optional_str, "basic auth password",
            secret=True),
    Setting("REMOTE_WRITE_BASIC_AUTH_PASSWORD_FILE", "", parse_optional_path,
            "file holding the basic auth password"),
    Setting("REMOTE_WRITE_CA_FILE", "", parse_optional_path, "CA bundle for TLS"),
    Setting("REMOTE_WRITE_TLS_INSECURE", _default("tls_insecure"), parse_bool,
            "skip TLS verification",
            "use true or false"),
    Setting("REMOTE_WRITE_HEADERS", "", parse_headers, "extra headers, e.g. X-Scope-OrgID=team1",
            "write headers as Name=value[,Name=value]"),
    Setting("EXTRA_LABELS", "", parse_labels, "k=v,k=v added to every series",
            "write labels as name=value[,name=value] with valid label names"),
    Setting("INSTANCE", "", parse_str, "instance label (default: hostname)"),
    Setting("HEALTH_PORT", _default("health_port"), parse_int(0, 65535),
            "port for /healthz and /metrics (0 = off)",
            "use a port number between 0 and 65535 (0 disables the endpoint)"),
    Setting("HEALTH_ADDRESS", _default("health_address"), parse_str,
            "address the health endpoint listens on"),
    Setting("SHUTDOWN_TIMEOUT_S", _default("shutdown_timeout_s"), parse_float(0.0, 3600),
            "flush budget on stop",
            "use a number of seconds >= 0, e.g. 10"),
    Setting("LOG_LEVEL", _default("log_level"), parse_choice("debug", "info", "warning", "error",
            "critical"),
            "log level"),
    Setting("LOG_FORMAT", _default("log_format"), parse_choice("text", "json"), "log format"),
)  # fmt: skip


def add_setting_flags(parser: argparse.ArgumentParser, settings: Iterable[Setting]) -> None:
    group = parser.add_argument_group("settings (each flag overrides its environment variable)")
    for s in settings:
        default = "" if s.secret else f" (default: {s.default or 'unset'})"
        group.add_argument(
            s.flag, dest=s.dest, default=None, metavar=s.env, help=f"{s.help}{default}"
        )


def parse_settings(
    settings: Sequence[Setting],
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """Parse every setting; raise one ConfigError that lists every problem.

    ``flags`` maps ``Setting.dest`` to the raw flag value (None = not given).
    """
    env = os.environ if env is None else env
    flags = flags or {}
    values: dict[str, Any] = {}
    problems: list[str] = []
    for s in settings:
        flag_value = flags.get(s.dest)
        raw, origin = (flag_value, s.flag) if flag_value is not None else (env.get(s.env), s.env)
        if raw is None:
            raw, origin = s.default, f"{s.env} (default)"
        try:
            values[s.dest] = s.parse(raw)
        except InvalidValue as exc:
            shown = "<hidden>" if s.secret else repr(raw)
            fix = f"; {s.fix}" if s.fix else ""
            problems.append(f"{origin}={shown}: {exc}{fix}")
    if problems:
        raise ConfigError(problems)
    return values


def load_config(
    settings: Sequence[Setting] = BASE_SETTINGS,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, str | None] | None = None,
) -> tuple[ClientConfig, dict[str, Any]]:
    """Base config plus the parsed values of every setting (client-specific ones included).

    Problems of the base settings and the client's own are reported together.
    """
    problems: list[str] = []
    values: dict[str, Any] = {}
    try:
        values = parse_settings(settings, env, flags)
    except ConfigError as exc:
        problems.extend(exc.problems)
    try:
        base_names = {s.dest for s in BASE_SETTINGS}
        config = ClientConfig.from_values({k: v for k, v in values.items() if k in base_names})
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return config, values


def config_from_args(
    args: argparse.Namespace,
    settings: Sequence[Setting],
    env: Mapping[str, str] | None = None,
) -> tuple[ClientConfig, dict[str, Any]]:
    """load_config() for a parser built with add_setting_flags(): the flags given win."""
    raw = vars(args)
    flags = {s.dest: raw.get(s.dest) for s in settings}
    return load_config(settings, env, flags)
