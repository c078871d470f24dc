"""wattpush base monitoring client: subclass MonitoringClient, the framework does the rest."""

from __future__ import annotations

from .client import MonitoringClient
from .config import (
    BASE_SETTINGS,
    ClientConfig,
    InvalidValue,
    Setting,
    load_config,
    parse_bool,
    parse_bytes,
    parse_choice,
    parse_float,
    parse_http_url,
    parse_int,
    parse_labels,
    parse_optional_path,
    parse_optional_str,
    parse_path,
    parse_str,
)
from .errors import (
    ConfigError,
    DeviceUnavailableError,
    EncodeError,
    MonitoringClientError,
    SpoolError,
)
from .sample import STALE_NAN, Sample, is_stale_marker

__version__ = "0.1.0"

__all__ = [
    "BASE_SETTINGS",
    "STALE_NAN",
    "ClientConfig",
    "ConfigError",
    "DeviceUnavailableError",
    "EncodeError",
    "InvalidValue",
    "MonitoringClient",
    "MonitoringClientError",
    "Sample",
    "Setting",
    "SpoolError",
    "__version__",
    "is_stale_marker",
    "load_config",
    "parse_bool",
    "parse_bytes",
    "parse_choice",
    "parse_float",
    "parse_http_url",
    "parse_int",
    "parse_labels",
    "parse_optional_path",
    "parse_optional_str",
    "parse_path",
    "parse_str",
]
