"""Configuration of the pushing clients: one frozen, validated ``ClientConfig`` read from the
environment and CLI flags through the settings table (settings.py).

Every variable is a ``Setting``; each has a flag derived from its name
(``SAMPLE_INTERVAL_S`` -> ``--sample-interval-s``) and flags win over the environment.
All problems are collected and reported together, each naming the variable, the bad value
(never for secrets) and the fix.
"""

from __future__ import annotations

import argparse
import dataclasses
import socket
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .httpauth import HttpAuth, auth_settings
from .redact import split_credentials
from .sample import LABEL_NAME_RE
from .settings import (
    FlagKind,
    FlagValue,
    InvalidValue,
    Parser,
    Setting,
    add_setting_flags,
    misspelt_variables,
    parse_bool,
    parse_bytes,
    parse_choice,
    parse_float,
    parse_headers,
    parse_host_address,
    parse_http_url,
    parse_int,
    parse_labels,
    parse_optional_path,
    parse_optional_str,
    parse_pairs,
    parse_path,
    parse_settings,
    parse_str,
    settings_from_args,
)

# The settings machinery lived here first: importing it from this module goes on working.
__all__ = [
    "BASE_SETTINGS",
    "LABEL_NAME_RE",
    "LOG_SETTINGS",
    "REMOTE_WRITE_PREFIX",
    "ClientConfig",
    "FlagKind",
    "FlagValue",
    "InvalidValue",
    "Parser",
    "Setting",
    "add_setting_flags",
    "config_from_args",
    "load_config",
    "parse_bool",
    "parse_bytes",
    "parse_choice",
    "parse_float",
    "parse_headers",
    "parse_host_address",
    "parse_http_url",
    "parse_int",
    "parse_labels",
    "parse_optional_path",
    "parse_optional_str",
    "parse_pairs",
    "parse_path",
    "parse_settings",
    "parse_str",
    "settings_from_args",
]


#: the variables of REMOTE_WRITE_URL's auth: REMOTE_WRITE_BEARER_TOKEN, ... (httpauth.py)
REMOTE_WRITE_PREFIX = "REMOTE_WRITE_"

#: A sample's size in a batch before compression, labels left out (protobuf Sample: a
#: 9-byte double, a 7-byte millisecond timestamp): SPOOL_MAX_BYTES must hold one full batch of
#: that size. Compressed batches are smaller (6 bytes a sample for 50 synthetic series), so
#: this leaves room for several; a spool smaller than one batch could hold nothing.
BATCH_BYTES_PER_SAMPLE = 16


@dataclass(frozen=True)
class ClientConfig:
    remote_write_url: str = "http://localhost:9090/api/v1/write"
    sample_interval_s: float = 0.1
    push_interval_s: float = 4.0
    max_samples_per_send: int = 2000
    queue_capacity: int = 100_000
    spool_dir: Path | None = None
    spool_max_bytes: int = 256 * 1024 * 1024
    #: once a send has failed, batches still in memory this long are moved to the spool
    spool_after_s: float = 2.0
    min_backoff_s: float = 0.03
    max_backoff_s: float = 5.0
    retry_on_429: bool = True
    remote_write_timeout_s: float = 10.0
    #: how requests to REMOTE_WRITE_URL authenticate (REMOTE_WRITE_BEARER_TOKEN, ...)
    auth: HttpAuth = field(default_factory=HttpAuth)
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    instance: str = ""
    health_port: int = 0
    health_address: str = "127.0.0.1"
    shutdown_timeout_s: float = 10.0
    log_level: str = "info"
    log_format: str = "text"
    #: what the user should know about the settings but that does not stop the client
    warnings: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        # Credentials in the URL become basic auth, so that the URL can be printed anywhere.
        bare, user, password = split_credentials(self.remote_write_url)
        if user is None:
            return
        if self.auth.bearer_token or self.auth.basic_auth_user:
            raise ConfigError(
                "REMOTE_WRITE_URL carries credentials (user:password@) and REMOTE_WRITE_"
                "BEARER_TOKEN or REMOTE_WRITE_BASIC_AUTH_USER is set too; keep only one"
            )
        object.__setattr__(self, "remote_write_url", bare)
        object.__setattr__(
            self,
            "auth",
            dataclasses.replace(self.auth, basic_auth_user=user, basic_auth_password=password),
        )

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> ClientConfig:
        """Build from parsed values (keys are lower-case variable names); cross-checks fields."""
        problems: list[str] = []
        auth = HttpAuth()
        try:
            auth = HttpAuth.from_values(values, REMOTE_WRITE_PREFIX)
        except ConfigError as exc:
            problems.extend(exc.problems)
        min_b = values.get("min_backoff_s", cls.min_backoff_s)
        max_b = values.get("max_backoff_s", cls.max_backoff_s)
        if isinstance(min_b, float) and isinstance(max_b, float) and max_b < min_b:
            problems.append(
                f"MAX_BACKOFF_S={max_b:g} is below MIN_BACKOFF_S={min_b:g}; "
                "make MAX_BACKOFF_S >= MIN_BACKOFF_S"
            )
        problems += _reserved_labels(values.get("extra_labels") or {})
        problems += _spool_too_small(values)
        url = values.get("remote_write_url") or cls.remote_write_url
        if split_credentials(url)[1] is not None and (auth.bearer_token or auth.basic_auth_user):
            problems.append(
                "REMOTE_WRITE_URL carries credentials (user:password@) and REMOTE_WRITE_"
                "BEARER_TOKEN or REMOTE_WRITE_BASIC_AUTH_USER is set too; keep only one "
                "(prefer the _FILE settings: a URL is easily printed)"
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
            spool_after_s=values.get("spool_after_s", cls.spool_after_s),
            min_backoff_s=min_b,
            max_backoff_s=max_b,
            retry_on_429=values.get("retry_on_429", cls.retry_on_429),
            remote_write_timeout_s=values.get("remote_write_timeout_s", cls.remote_write_timeout_s),
            auth=auth,
            extra_labels=dict(values.get("extra_labels") or {}),
            instance=instance,
            health_port=values.get("health_port", cls.health_port),
            health_address=values.get("health_address", cls.health_address),
            shutdown_timeout_s=values.get("shutdown_timeout_s", cls.shutdown_timeout_s),
            log_level=values.get("log_level", cls.log_level),
            log_format=values.get("log_format", cls.log_format),
            warnings=auth.warnings,
        )


def _reserved_labels(extra_labels: Mapping[str, str]) -> list[str]:
    """The framework sets ``job`` (the client's name) and ``instance`` (INSTANCE) on every
    series: the same keys in EXTRA_LABELS would be overridden without a word."""
    fixes = {"job": "it is the client's name", "instance": "set INSTANCE instead"}
    return [
        f"EXTRA_LABELS: {key!r} is set by the client on every series ({fixes[key]}); "
        f"remove it from EXTRA_LABELS"
        for key in ("job", "instance")
        if key in extra_labels
    ]


def _spool_too_small(values: Mapping[str, Any]) -> list[str]:
    """SPOOL_MAX_BYTES below one batch: every batch would be dropped on the way to disk."""
    max_bytes = values.get("spool_max_bytes")
    batch = values.get("max_samples_per_send")
    if values.get("spool_dir") is None or not isinstance(max_bytes, int):
        return []
    if not isinstance(batch, int):
        return []
    least = batch * BATCH_BYTES_PER_SAMPLE
    if max_bytes >= least:
        return []
    return [
        f"SPOOL_MAX_BYTES={max_bytes} is below one batch of MAX_SAMPLES_PER_SEND={batch} "
        f"samples ({batch} x {BATCH_BYTES_PER_SAMPLE} bytes): the spool could not hold it; set "
        f"SPOOL_MAX_BYTES to at least {least} (e.g. 64MiB), or unset SPOOL_DIR"
    ]


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


#: Logging (``logutil.configure_logging``): every command reads these two.
LOG_SETTINGS: tuple[Setting, ...] = (
    Setting("LOG_LEVEL", _default("log_level"), parse_choice("debug", "info", "warning", "error",
            "critical"),
            "log level", "use debug, info, warning, error or critical"),
    Setting("LOG_FORMAT", _default("log_format"), parse_choice("text", "json"), "log format",
            "use text or json"),
)  # fmt: skip

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
    Setting("SPOOL_AFTER_S", _default("spool_after_s"), parse_float(0.0, 3600),
            "once a send has failed, seconds a batch stays in memory before it is spooled",
            "use a number of seconds >= 0, e.g. 2"),
    Setting("MIN_BACKOFF_S", _default("min_backoff_s"), parse_float(0.0, 3600), "first retry delay",
            "use a small non-negative number of seconds, e.g. 0.03"),
    Setting("MAX_BACKOFF_S", _default("max_backoff_s"), parse_float(0.0, 3600), "retry delay cap",
            "use a number of seconds >= MIN_BACKOFF_S, e.g. 5"),
    Setting("RETRY_ON_429", _default("retry_on_429"), parse_bool, "retry 429 honouring Retry-After",
            "use true or false"),
    Setting("REMOTE_WRITE_TIMEOUT_S", _default("remote_write_timeout_s"),
            parse_float(positive=True, max_value=3600),
            "per request timeout", "use a number of seconds > 0, e.g. 10"),
    *auth_settings(REMOTE_WRITE_PREFIX),
    Setting("EXTRA_LABELS", "", parse_labels, "k=v,k=v added to every series",
            "write labels as name=value[,name=value] with valid label names"),
    Setting("INSTANCE", "", parse_str, "instance label (default: hostname)"),
    Setting("HEALTH_PORT", _default("health_port"), parse_int(0, 65535),
            "port for /healthz and /metrics (0 = off)",
            "use a port number between 0 and 65535 (0 disables the endpoint)"),
    Setting("HEALTH_ADDRESS", _default("health_address"), parse_host_address,
            "address the health endpoint listens on (0.0.0.0: every interface)",
            "use 127.0.0.1 (this host only), 0.0.0.0 (every interface) or one of this "
            "host's addresses"),
    Setting("SHUTDOWN_TIMEOUT_S", _default("shutdown_timeout_s"), parse_float(0.0, 3600),
            "flush budget on stop",
            "use a number of seconds >= 0, e.g. 10"),
    *LOG_SETTINGS,
)  # fmt: skip


def load_config(
    settings: Sequence[Setting] = BASE_SETTINGS,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, FlagValue] | None = None,
) -> tuple[ClientConfig, dict[str, Any]]:
    """Base config plus the parsed values of every setting (client-specific ones included).

    Problems of the base settings and the client's own are reported together.
    """
    problems: list[str] = misspelt_variables(settings, env)
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
