"""The unit of data every client produces."""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import EncodeError

# What remote write (and Prometheus) accept as names: the one copy of these rules.
METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

# Prometheus' staleness marker: a NaN with a specific payload (value.StaleNaN in prometheus/model).
STALE_NAN_BITS = 0x7FF0000000000002
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]


def validate_series(name: str, labels: Mapping[str, str]) -> dict[str, str]:
    """Raise EncodeError for anything remote write cannot carry; returns a private copy."""
    if not isinstance(name, str) or not METRIC_NAME_RE.match(name):
        raise EncodeError(f"invalid metric name {name!r}: must match [a-zA-Z_:][a-zA-Z0-9_:]*")
    out: dict[str, str] = {}
    for key, value in labels.items():
        if key == "__name__":
            raise EncodeError(f"series {name!r}: pass the metric name as the name, not a label")
        if not isinstance(key, str) or not LABEL_NAME_RE.match(key):
            raise EncodeError(
                f"series {name!r}: invalid label name {key!r}: must match [a-zA-Z_][a-zA-Z0-9_]*"
            )
        if not isinstance(value, str):
            raise EncodeError(f"series {name!r}: label {key!r} has a non-string value {value!r}")
        out[key] = value
    return out


def float_bits(value: float) -> int:
    return int(struct.unpack("<Q", struct.pack("<d", value))[0])


def is_stale_marker(value: float) -> bool:
    return math.isnan(value) and float_bits(value) == STALE_NAN_BITS


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of one series at one instant.

    ``labels`` must not contain ``__name__``; ``job`` and ``instance`` are added by the framework
    unless the sample sets them. Empty label values are omitted on the wire.
    """

    name: str
    labels: Mapping[str, str]
    value: float
    timestamp_ms: int

    @classmethod
    def stale(cls, name: str, labels: Mapping[str, str], timestamp_ms: int) -> Sample:
        """The marker that tells Prometheus a series has ended."""
        return cls(name, labels, STALE_NAN, timestamp_ms)

    @property
    def is_stale(self) -> bool:
        return is_stale_marker(self.value)
