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

import itertools
import operator
import struct
from array import array
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import snappy

from . import remote_write_pb2 as pb
from . import snappyblock
from .errors import EncodeError
from .sample import Sample, validate_series

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_pack_double = struct.Struct("<d").pack
#: a column's packer and its argument list (heads in place)
_Plan = tuple[struct.Struct, list[Any]]
#: one SeriesSet column for ``encode_sets``: (a key for its plan, its members' label bytes,
#: rows of values (one per member), each row's timestamp)
SetColumn = tuple[Hashable, Callable[[], Sequence[bytes]], Sequence[Sequence[float]], Sequence[int]]
# encode_sets: a plan's format holds this many items at most (about 32 bytes each), and this
# many plans are kept.
_MAX_PLAN_ITEMS = 1 << 16
_MAX_PLANS = 32


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
    """Label pairs in wire order: ``__name__`` included, sorted by name bytes, empty values
    omitted, ``labels`` overriding ``defaults``. The series was validated (``validate_series``)
    where it was made: a handle, or ``SeriesEncoder.series`` for Samples."""
    merged = {**defaults, **labels, "__name__": name}
    pairs = [(k, v) for k, v in merged.items() if v != ""]
    pairs.sort(key=lambda kv: kv[0].encode("utf-8"))
    return pairs


def label_bytes(pairs: Iterable[tuple[str, str]]) -> bytes:
    out = bytearray()
    for key, value in pairs:
        body = _field_len(0x0A, key.encode("utf-8")) + _field_len(0x12, value.encode("utf-8"))
        out += _field_len(0x0A, body)
    return bytes(out)


_ZERO_BITS = bytes(8)


def _has_zero(row: Sequence[float]) -> bool:
    """Whether ``row`` holds a 0.0 (or -0.0). An array's bytes are searched for eight zero
    bytes first, in C; a match across two values is checked properly."""
    if type(row) is array and _ZERO_BITS not in row.tobytes():
        return False
    return 0.0 in row


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

    The fast path packs a whole batch with a handful of C calls: when every timestamp's varint
    has the same length (true for all ms timestamps from 1971 to 2109) each sample is a
    fixed-size record, so ``struct`` writes values and memoised timestamp bytes in one go and
    each series body is a slice of that buffer. Series holding a 0.0 value (proto3 omits it)
    and batches with mixed timestamp lengths take the per-sample path.

    Not thread-safe: one instance per encoding thread.
    """

    def __init__(self, default_labels: Mapping[str, str] | None = None, max_series: int = 100_000):
        self._defaults = dict(default_labels or {})
        self._max_series = max_series
        self._cache: dict[tuple[str, tuple[tuple[str, str], ...]], SeriesRef] = {}
        # id(labels dict) -> (that dict, a snapshot of it, {metric name: SeriesRef}). Holding the
        # dict keeps its id unique; the snapshot catches a dict mutated since it was cached.
        self._by_id: dict[int, tuple[dict[str, str], dict[str, str], dict[str, SeriesRef]]] = {}
        self._ts_cache: dict[int, bytes] = {}
        self._header_cache: dict[int, bytes] = {}
        self._structs: dict[tuple[int, int], struct.Struct] = {}
        self._plans: dict[tuple[Hashable, int, int], _Plan] = {}
        self._compressed_plans: dict[tuple[Hashable, int, int], snappyblock.ColumnPlan] = {}
        self._buf = bytearray()

    def series(self, name: str, labels: Mapping[str, str]) -> SeriesRef:
        """Resolve (and cache) a series. Raises EncodeError for invalid names/labels."""
        hit = self._by_id.get(id(labels))
        if hit is not None and hit[0] is labels and hit[1] == labels:
            ref = hit[2].get(name)
            if ref is not None:
                return ref
        ref = self._resolve(name, labels)
        if type(labels) is dict:
            if hit is None or hit[0] is not labels or hit[1] != labels:
                # Bounded relative to the live series, so clients that build fresh label dicts
                # every tick cannot pile up old ones.
                if len(self._by_id) >= max(1024, 2 * len(self._cache)):
                    self._by_id.clear()
                hit = (labels, dict(labels), {})
                self._by_id[id(labels)] = hit
            hit[2][name] = ref
        return ref

    def _resolve(self, name: str, labels: Mapping[str, str]) -> SeriesRef:
        raw = (name, tuple(labels.items()))
        ref = self._cache.get(raw)
        if ref is None:
            pairs = tuple(canonical_labels(name, validate_series(name, labels), self._defaults))
            if len(pairs) != len({k for k, _ in pairs}):  # pragma: no cover - dict keys are unique
                raise EncodeError(f"series {name!r}: duplicate label names")
            ref = SeriesRef(label_bytes(pairs), pairs)
            if len(self._cache) >= self._max_series:
                self._cache.clear()  # label churn; cheap to rebuild
                self._by_id.clear()
            self._cache[raw] = ref
        return ref

    def _timestamp_bytes(self, timestamp_ms: int) -> bytes:
        """Tag + varint of a timestamp (empty for 0, which proto3 omits)."""
        ts = self._ts_cache.get(timestamp_ms)
        if ts is None:
            validate_timestamp(timestamp_ms)
            ts = b"\x10" + varint(timestamp_ms) if timestamp_ms else b""
            if len(self._ts_cache) >= 4096:
                self._ts_cache.clear()
            self._ts_cache[timestamp_ms] = ts
        return ts

    def _header(self, body_len: int) -> bytes:
        header = self._header_cache.get(body_len)
        if header is None:
            header = b"\x0a" + varint(body_len)
            if len(self._header_cache) >= 4096:
                self._header_cache.clear()
            self._header_cache[body_len] = header
        return header

    def _records_struct(self, ts_len: int, count: int) -> struct.Struct:
        """Packs ``count`` (value, timestamp bytes + next record's prefix) pairs."""
        st = self._structs.get((ts_len, count))
        if st is None:
            st = struct.Struct("<" + f"d{ts_len + 3}s" * count)
            self._structs[(ts_len, count)] = st
        return st

    def _series_body(self, values: Sequence[float], stamps: Sequence[int]) -> bytes:
        """Per-sample encoding of one series' samples: handles every case."""
        body = bytearray()
        pack = _pack_double
        ts_bytes = self._timestamp_bytes
        for value, ts in zip(values, stamps, strict=True):
            tsb = ts_bytes(ts)
            packed = pack(value)
            if packed != b"\x00\x00\x00\x00\x00\x00\x00\x00":
                body += b"\x12"
                body += varint(9 + len(tsb))
                body += b"\x09"
                body += packed
            else:
                body += b"\x12"
                body += varint(len(tsb))
            body += tsb
        return bytes(body)

    def encode_columns(
        self,
        keys: Sequence[bytes],
        counts: Sequence[int],
        values: list[float],
        stamps: list[int],
    ) -> bytes:
        """WriteRequest of series ``keys[i]`` holding the next ``counts[i]`` (value, stamp)s."""
        ts_bytes = self._timestamp_bytes
        local = {ts: ts_bytes(ts) for ts in set(stamps)}
        lengths = {len(b) for b in local.values()}
        header = self._header
        parts: list[bytes | memoryview] = []
        if len(lengths) != 1 or 0 in lengths:
            # Mixed timestamp widths (or timestamp 0): per-sample path for everything.
            offset = 0
            for key, count in zip(keys, counts, strict=True):
                end = offset + count
                body = self._series_body(values[offset:end], stamps[offset:end])
                parts += (header(len(key) + len(body)), key, body)
                offset = end
            return b"".join(parts)
        ts_len = lengths.pop()
        prefix = b"\x12" + bytes((9 + ts_len,)) + b"\x09"
        record = 11 + ts_len
        total = len(values)
        # Record i = prefix + value + timestamp; written as prefix, then (value, timestamp +
        # prefix) pairs, so one trailing prefix is left over past total * record.
        tails = {ts: b + prefix for ts, b in local.items()}
        args: list[Any] = [None] * (2 * total)
        args[0::2] = values
        args[1::2] = map(tails.__getitem__, stamps)
        buf = bytearray(3 + total * record)
        buf[0:3] = prefix
        done = 0
        chunk = 1 << 10
        while done < total:
            while chunk > total - done:
                chunk >>= 1
            self._records_struct(ts_len, chunk).pack_into(
                buf, 3 + done * record, *args[2 * done : 2 * (done + chunk)]
            )
            done += chunk
        view = memoryview(buf)
        has_zero = 0.0 in values  # all-zero bits are omitted: those series go per-sample
        headers = self._header_cache
        offset = 0
        for key, count in zip(keys, counts, strict=True):
            end = offset + count
            if has_zero and 0.0 in values[offset:end]:
                body = self._series_body(values[offset:end], stamps[offset:end])
                parts += (header(len(key) + len(body)), key, body)
            else:
                body_len = len(key) + count * record
                parts += (
                    headers.get(body_len) or header(body_len),
                    key,
                    view[offset * record : end * record],
                )
            offset = end
        return b"".join(parts)

    def encode_set(
        self,
        set_key: Hashable,
        keys: Callable[[], Sequence[bytes]],
        rows: Sequence[Sequence[float]],
        stamps: Sequence[int],
    ) -> bytes:
        """WriteRequest of a column of series (``keys()``) holding ``rows[j][i]`` at
        ``stamps[j]``: what a ``SeriesSet`` sends (``encode_sets`` of one column, as bytes)."""
        return bytes(self.encode_sets([(set_key, keys, rows, stamps)]))

    def encode_sets(self, columns: Iterable[SetColumn], tail: bytes = b"") -> memoryview:
        """One WriteRequest of these ``SeriesSet`` columns, then ``tail`` (other series, already
        encoded), written into a buffer this encoder keeps: the view is valid until the next
        call.

        Remote write repeats every series' labels in every request, so with one or a few
        samples per series per request (the default batch size at 2000 series) the per-series
        work dominates; here it is planned once per set and row count (each series' header,
        label bytes and first sample prefix, and a format that interleaves them with the values
        and timestamp bytes) and packed with one ``struct`` call per column. The buffer is
        reused because a fresh quarter-megabyte per request came back from the kernel as
        page faults. Columns holding a 0.0 (proto3 omits it), timestamps of mixed varint
        widths and very large plans take ``encode_columns``.
        """
        end = 0
        for set_key, keys, rows, stamps in columns:
            end = self._pack_set(end, set_key, keys, rows, stamps)
        if tail:
            end = self._write(end, tail)
        return memoryview(self._buf)[:end]

    def encode_compressed(self, columns: Sequence[SetColumn], tail: bytes = b"") -> bytes:
        """The request ``encode_sets`` writes, snappy-compressed. Columns of one sample a
        series (the usual batch at the default size) are packed from their compressed plan
        (``snappyblock.ColumnPlan``) and ``tail`` is compressed by the library, under one
        preamble: the body is a fifth larger than the library's compression of it would be,
        and costs well under half the CPU. Its uncompressed bytes are the same.

        Any other column (more samples a series, a 0.0, which proto3 omits, a timestamp of
        another width, too large a plan) makes the whole request take ``encode_sets`` and
        one compression."""
        packs: list[tuple[snappyblock.ColumnPlan, Sequence[float], bytes]] = []
        for set_key, keys, rows, stamps in columns:
            if len(rows) != 1:
                return compress(self.encode_sets(columns, tail))
            tsb = self._timestamp_bytes(stamps[0])
            plan = self._compressed_plans.get((set_key, 1, len(tsb)))
            if plan is None and self._plannable([tsb], len(tsb), 1, keys):
                plan = self._compressed_plan(set_key, keys(), len(tsb))
            if plan is None or _has_zero(rows[0]):
                return compress(self.encode_sets(columns, tail))
            packs.append((plan, rows[0], tsb))
        rest = snappyblock.compressed_elements(tail) if tail else b""
        preamble = varint(sum(plan.raw_size for plan, _, _ in packs) + len(tail))
        end = len(preamble)
        buf = self._reserve(end + sum(plan.size for plan, _, _ in packs) + len(rest))
        buf[:end] = preamble  # the block's length preamble: the size uncompressed
        for plan, row, tsb in packs:
            plan.pack_into(buf, end, row, tsb)
            end += plan.size
        buf[end : end + len(rest)] = rest
        return bytes(memoryview(buf)[: end + len(rest)])

    def _compressed_plan(
        self, set_key: Hashable, keys: Sequence[bytes], ts_len: int
    ) -> snappyblock.ColumnPlan:
        prefix = b"\x12" + bytes((9 + ts_len,)) + b"\x09"
        heads = [self._header(len(key) + 11 + ts_len) + key + prefix for key in keys]
        if len(self._compressed_plans) >= _MAX_PLANS:
            self._compressed_plans.clear()  # as _plans
        plan = snappyblock.ColumnPlan(heads, ts_len)
        self._compressed_plans[(set_key, 1, ts_len)] = plan
        return plan

    def _reserve(self, size: int) -> bytearray:
        buf = self._buf
        if len(buf) < size:
            grown = bytearray(max(size, 2 * len(buf)))
            grown[: len(buf)] = buf
            self._buf = buf = grown  # a new one: a view handed out earlier may still live
        return buf

    def _write(self, end: int, data: bytes) -> int:
        self._reserve(end + len(data))[end : end + len(data)] = data
        return end + len(data)

    def _pack_set(
        self,
        end: int,
        set_key: Hashable,
        keys: Callable[[], Sequence[bytes]],
        rows: Sequence[Sequence[float]],
        stamps: Sequence[int],
    ) -> int:
        count = len(rows)
        tsbs = [self._timestamp_bytes(ts) for ts in stamps]
        ts_len = len(tsbs[0]) if tsbs else 0
        plan = self._plans.get((set_key, count, ts_len))
        if plan is None and self._plannable(tsbs, ts_len, count, keys):
            plan = self._plan(set_key, keys(), count, ts_len)
        if plan is None or any(map(_has_zero, rows)):
            return self._write(end, self._encode_set_slowly(keys(), rows, stamps))
        packer, args = plan  # args: the heads in place, values and timestamps overwritten here
        n = len(args) // (1 + 2 * count)
        stride = 1 + 2 * count
        prefix = b"\x12" + bytes((9 + ts_len,)) + b"\x09"
        for j, row in enumerate(rows):
            args[1 + 2 * j :: stride] = row
            tail = tsbs[j] + prefix if j < count - 1 else tsbs[j]
            args[2 + 2 * j :: stride] = [tail] * n
        packer.pack_into(self._reserve(end + packer.size), end, *args)
        return end + packer.size

    def _plannable(
        self, tsbs: list[bytes], ts_len: int, count: int, keys: Callable[[], Sequence[bytes]]
    ) -> bool:
        """Fixed-size records (one timestamp width, no timestamp 0) and a format of bounded
        size (memory): otherwise the general path."""
        if not ts_len or any(len(b) != ts_len for b in tsbs):
            return False
        return len(keys()) * (1 + 2 * count) <= _MAX_PLAN_ITEMS

    def _plan(self, set_key: Hashable, keys: Sequence[bytes], count: int, ts_len: int) -> _Plan:
        """The struct of a column and its argument list, with each series' head (header,
        label bytes, first sample prefix) in place; kept, like the buffer, so that a request
        allocates no large list."""
        record = 11 + ts_len
        prefix = b"\x12" + bytes((9 + ts_len,)) + b"\x09"
        heads = [self._header(len(key) + count * record) + key + prefix for key in keys]
        samples = f"d{ts_len + 3}s" * (count - 1) + f"d{ts_len}s"
        fmt = "<" + "".join(f"{len(head)}s{samples}" for head in heads)
        args: list[Any] = [None] * (len(heads) * (1 + 2 * count))
        args[0 :: 1 + 2 * count] = heads
        if len(self._plans) >= _MAX_PLANS:
            self._plans.clear()  # sets come and go, or row counts vary: rebuilt when needed
        plan = self._plans[(set_key, count, ts_len)] = (struct.Struct(fmt), args)
        return plan

    def _encode_set_slowly(
        self, keys: Sequence[bytes], rows: Sequence[Sequence[float]], stamps: Sequence[int]
    ) -> bytes:
        n = len(keys)
        values: list[float] = []
        if len(rows) == 1:
            values += rows[0]
        else:  # series-major: every value of member 0, then member 1, ...
            values += itertools.chain.from_iterable(zip(*rows, strict=True))
        return self.encode_columns(keys, [len(rows)] * n, values, list(stamps) * n)

    def encode_grouped(self, groups: Sequence[tuple[bytes, Sequence[tuple[float, int]]]]) -> bytes:
        """Serialise ``[(series key, [(value, timestamp_ms), ...]), ...]`` as a WriteRequest."""
        keys: list[bytes] = []
        counts: list[int] = []
        flat: list[tuple[float, int]] = []
        for key, points in groups:
            keys.append(key)
            before = len(flat)
            flat += points
            counts.append(len(flat) - before)
        return self.encode_columns(keys, counts, list(map(_first, flat)), list(map(_second, flat)))

    def encode(self, samples: Iterable[Sample]) -> bytes:
        """Group samples by series (first appearance order) and serialise."""
        batch = samples if isinstance(samples, list) else list(samples)
        # Group by label-dict identity first (one dict lookup per sample), then resolve each
        # group's series once. Every group holds its dict, so ids stay unique meanwhile.
        by_id: dict[int, list[Any]] = {}
        by_name_id: dict[tuple[str, int], list[Any]] = {}
        order: list[list[Any]] = []
        for s in batch:
            labels = s.labels
            group = by_id.get(id(labels))
            if group is None:
                group = [labels, s.name, [s]]
                by_id[id(labels)] = group
                order.append(group)
            elif group[1] == s.name:
                group[2].append(s)
            else:  # one label dict shared by several metrics
                name_key = (s.name, id(labels))
                group = by_name_id.get(name_key)
                if group is None:
                    group = [labels, s.name, [s]]
                    by_name_id[name_key] = group
                    order.append(group)
                else:
                    group[2].append(s)
        keys: list[bytes] = []
        seen: set[bytes] = set()
        by_id_cache = self._by_id
        for group in order:
            labels = group[0]
            hit = by_id_cache.get(id(labels))  # series() inlined: one call per series adds up
            ref = hit[2].get(group[1]) if hit is not None and hit[0] is labels else None
            if ref is None or hit is None or hit[1] != labels:
                ref = self.series(group[1], labels)
            key = ref.key
            if key in seen:
                # Equal labels in distinct dicts: group sample by sample to keep their order.
                return self._encode_by_sample(batch)
            seen.add(key)
            keys.append(key)
        flat = [s for group in order for s in group[2]]
        return self.encode_columns(
            keys,
            [len(group[2]) for group in order],
            list(map(_value, flat)),
            list(map(_timestamp, flat)),
        )

    def _encode_by_sample(self, samples: list[Sample]) -> bytes:
        groups: dict[bytes, list[tuple[float, int]]] = {}
        for s in samples:
            key = self.series(s.name, s.labels).key
            points = groups.get(key)
            if points is None:
                groups[key] = [(s.value, s.timestamp_ms)]
            else:
                points.append((s.value, s.timestamp_ms))
        return self.encode_grouped(list(groups.items()))


_first = operator.itemgetter(0)
_second = operator.itemgetter(1)
_value = operator.attrgetter("value")
_timestamp = operator.attrgetter("timestamp_ms")


def build_write_request(
    samples: Iterable[Sample], default_labels: Mapping[str, str] | None = None
) -> pb.WriteRequest:
    """The reference: the same grouping as SeriesEncoder, built with protobuf classes."""
    defaults = dict(default_labels or {})
    request = pb.WriteRequest()
    by_series: dict[tuple[tuple[str, str], ...], pb.TimeSeries] = {}
    for s in samples:
        pairs = tuple(canonical_labels(s.name, validate_series(s.name, s.labels), defaults))
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


def compress(payload: bytes | memoryview) -> bytes:
    """Snappy *block* format, what remote write 1.0 requires (not the framed format)."""
    return bytes(snappy.compress(payload))


def decompress(body: bytes) -> bytes:
    return bytes(snappy.uncompress(body))


def decode(body: bytes, *, compressed: bool = True) -> pb.WriteRequest:
    request = pb.WriteRequest()
    request.ParseFromString(decompress(body) if compressed else body)
    return request


def split_request(body: bytes) -> tuple[tuple[bytes, int], tuple[bytes, int]] | None:
    """A compressed request cut in two (``(body, samples)`` each): the first half of its
    samples in series-major order, then the rest, so that sending the halves in order keeps
    every series in time order. None for a single sample or a body that cannot be read.

    For a receiver's 413 only (rare): it goes through the protobuf classes."""
    try:
        request = decode(body)
    except Exception:
        return None
    flat = [(ts, sample) for ts in request.timeseries for sample in ts.samples]
    if len(flat) < 2:
        return None
    cut = len(flat) // 2

    def build(part: list[tuple[pb.TimeSeries, pb.Sample]]) -> bytes:
        out = pb.WriteRequest()
        current: tuple[pb.TimeSeries, pb.TimeSeries] | None = None
        for series, sample in part:
            if current is None or current[0] is not series:
                copy = out.timeseries.add()
                copy.labels.extend(series.labels)
                current = (series, copy)
            current[1].samples.add(value=sample.value, timestamp=sample.timestamp)
        return compress(out.SerializeToString())

    return (build(flat[:cut]), cut), (build(flat[cut:]), len(flat) - cut)
