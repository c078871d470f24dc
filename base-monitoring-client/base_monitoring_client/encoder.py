"""Remote-write 1.0 encoding.

``encode_with_protobuf`` builds the message through the generated classes: the reference.
``SeriesEncoder`` writes the same bytes by hand, caching each series' label bytes and
memoising timestamp varints; tests prove the two byte-identical.

Wire layout (field numbers from prompb):
  WriteRequest.timeseries = 1 (LEN) -> TimeSeries{labels = 1 (LEN) Label{name = 1, value = 2},
                                                  samples = 2 (LEN) Sample{value = 1 (I64),
                                                                           timestamp = 2 (VARINT)}}
proto3 leaves out fields holding their default (a value whose bits are all zero, timestamp 0).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import snappy

from . import remote_write_pb2 as pb
from .errors import EncodeError
from .sample import Sample

METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_pack_double = struct.Struct("<d").pack


def varint(value: int) -> bytes:
    """Protobuf base-128 varint; negative int64 values take ten bytes (two's complement)."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field_len(tag: int, payload: bytes) -> bytes:
    return bytes((tag,)) + varint(len(payload)) + payload


def canonical_labels(
    name: str, labels: Mapping[str, str], defaults: Mapping[str, str] = {}
) -> list[tuple[str, str]]:
    """Validated label pairs in wire order: ``__name__`` included, sorted by name bytes,
    empty values omitted, sample labels overriding ``defaults``."""
    if not METRIC_NAME_RE.match(name):
        raise EncodeError(f"invalid metric name {name!r}: must match [a-zA-Z_:][a-zA-Z0-9_:]*")
    merged = dict(defaults)
    for key, value in labels.items():
        if key == "__name__":
            raise EncodeError(f"series {name!r}: pass the metric name as Sample.name, not a label")
        if not LABEL_NAME_RE.match(key):
            raise EncodeError(
                f"series {name!r}: invalid label name {key!r}: must match [a-zA-Z_][a-zA-Z0-9_]*"
            )
        if not isinstance(value, str):
            raise EncodeError(f"series {name!r}: label {key!r} has a non-string value {value!r}")
        merged[key] = value
    merged["__name__"] = name
    pairs = [(k, v) for k, v in merged.items() if v != ""]
    pairs.sort(key=lambda kv: kv[0].encode("utf-8"))
    return pairs


def label_bytes(pairs: Iterable[tuple[str, str]]) -> bytes:
    out = bytearray()
    for key, value in pairs:
        body = _field_len(0x0A, key.encode("utf-8")) + _field_len(0x12, value.encode("utf-8"))
        out += _field_len(0x0A, body)
    return bytes(out)


def validate_timestamp(timestamp_ms: int) -> None:
    if not isinstance(timestamp_ms, int) or not (_INT64_MIN <= timestamp_ms <= _INT64_MAX):
        raise EncodeError(f"timestamp {timestamp_ms!r} is not an int64 number of milliseconds")


@dataclass(frozen=True, slots=True)
class SeriesRef:
    """A resolved series: its wire label bytes (also its identity) and readable pairs."""

    key: bytes
    pairs: tuple[tuple[str, str], ...]


class SeriesEncoder:
    """Caches series label bytes and writes WriteRequests byte-identical to protobuf's.

    Not thread-safe: one instance per encoding thread.
    """

    def __init__(self, default_labels: Mapping[str, str] | None = None, max_series: int = 100_000):
        self._defaults = dict(default_labels or {})
        self._max_series = max_series
        self._cache: dict[tuple[str, tuple[tuple[str, str], ...]], SeriesRef] = {}
        self._ts_cache: dict[int, tuple[bytes, bytes]] = {}

    def series(self, name: str, labels: Mapping[str, str]) -> SeriesRef:
        """Resolve (and cache) a series. Raises EncodeError for invalid names/labels."""
        raw = (name, tuple(labels.items()))
        ref = self._cache.get(raw)
        if ref is None:
            pairs = tuple(canonical_labels(name, labels, self._defaults))
            if len(pairs) != len({k for k, _ in pairs}):  # pragma: no cover - dict keys are unique
                raise EncodeError(f"series {name!r}: duplicate label names")
            ref = SeriesRef(label_bytes(pairs), pairs)
            if len(self._cache) >= self._max_series:
                self._cache.clear()  # label churn; cheap to rebuild
            self._cache[raw] = ref
        return ref

    def _sample_parts(self, timestamp_ms: int) -> tuple[bytes, bytes]:
        parts = self._ts_cache.get(timestamp_ms)
        if parts is None:
            validate_timestamp(timestamp_ms)
            ts = b"\x10" + varint(timestamp_ms) if timestamp_ms else b""
            # Prefix for a sample whose value is present (9 bytes) and for one whose value is
            # all-zero bits (omitted by proto3).
            with_value = b"\x12" + varint(9 + len(ts)) + b"\x09"
            parts = (with_value, ts)
            if len(self._ts_cache) > 4096:
                self._ts_cache.clear()
            self._ts_cache[timestamp_ms] = parts
        return parts

    def encode_grouped(self, groups: Sequence[tuple[bytes, Sequence[tuple[float, int]]]]) -> bytes:
        """Serialise ``[(series key, [(value, timestamp_ms), ...]), ...]`` as a WriteRequest."""
        out = bytearray()
        pack = _pack_double
        for key, points in groups:
            body = bytearray(key)
            for value, ts in points:
                with_value, ts_bytes = self._sample_parts(ts)
                packed = pack(value)
                if packed != b"\x00\x00\x00\x00\x00\x00\x00\x00":
                    body += with_value
                    body += packed
                    body += ts_bytes
                else:
                    body += b"\x12"
                    body += varint(len(ts_bytes))
                    body += ts_bytes
            out += b"\x0a"
            out += varint(len(body))
            out += body
        return bytes(out)

    def encode(self, samples: Iterable[Sample]) -> bytes:
        """Group samples by series (first appearance order) and serialise."""
        groups: dict[bytes, list[tuple[float, int]]] = {}
        for s in samples:
            key = self.series(s.name, s.labels).key
            points = groups.get(key)
            if points is None:
                groups[key] = [(s.value, s.timestamp_ms)]
            else:
                points.append((s.value, s.timestamp_ms))
        return self.encode_grouped(list(groups.items()))


def build_write_request(
    samples: Iterable[Sample], default_labels: Mapping[str, str] | None = None
) -> pb.WriteRequest:
    """The reference: the same grouping as SeriesEncoder, built with protobuf classes."""
    defaults = dict(default_labels or {})
    request = pb.WriteRequest()
    by_series: dict[tuple[tuple[str, str], ...], pb.TimeSeries] = {}
    for s in samples:
        pairs = tuple(canonical_labels(s.name, s.labels, defaults))
        ts = by_series.get(pairs)
        if ts is None:
            ts = request.timeseries.add()
            for k, v in pairs:
                ts.labels.add(name=k, value=v)
            by_series[pairs] = ts
        ts.samples.add(value=s.value, timestamp=s.timestamp_ms)
    return request


def encode_with_protobuf(
    samples: Iterable[Sample], default_labels: Mapping[str, str] | None = None
) -> bytes:
    return bytes(build_write_request(samples, default_labels).SerializeToString())


def compress(payload: bytes) -> bytes:
    """Snappy *block* format, what remote write 1.0 requires (not the framed format)."""
    return bytes(snappy.compress(payload))


def decompress(body: bytes) -> bytes:
    return bytes(snappy.uncompress(body))


def decode(body: bytes, *, compressed: bool = True) -> pb.WriteRequest:
    request = pb.WriteRequest()
    request.ParseFromString(decompress(body) if compressed else body)
    return request
