"""The hand encoder writes exactly the bytes protobuf writes, for any input."""

from __future__ import annotations

import math
import struct

import pytest
from base_monitoring_client import remote_write_pb2 as pb
from base_monitoring_client.encoder import (
    SeriesEncoder,
    canonical_labels,
    compress,
    decode,
    decompress,
    encode_with_protobuf,
    varint,
)
from base_monitoring_client.errors import EncodeError
from base_monitoring_client.sample import STALE_NAN, STALE_NAN_BITS, Sample, float_bits
from hypothesis import given, settings
from hypothesis import strategies as st

label_names = st.from_regex(r"\A[a-zA-Z_][a-zA-Z0-9_]{0,12}\Z").filter(
    lambda n: not n.startswith("__")
)
metric_names = st.from_regex(r"\A[a-zA-Z_:][a-zA-Z0-9_:]{0,20}\Z")
label_values = st.text(max_size=12)  # any unicode, empty included (omitted on the wire)
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, STALE_NAN, 5e-324, -1.7976931348623157e308]
)
timestamps = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1) | st.sampled_from(
    [0, 1, 127, 128, 1_795_427_169_904]
)
samples = st.builds(
    Sample,
    name=metric_names,
    labels=st.dictionaries(label_names, label_values, max_size=5),
    value=floats,
    timestamp_ms=timestamps,
)
defaults = st.dictionaries(label_names, label_values, max_size=3)


@settings(max_examples=150, deadline=None)
@given(st.lists(samples, max_size=30), defaults)
def test_hand_encoder_is_byte_identical_to_protobuf(batch: list[Sample], default: dict) -> None:
    assert SeriesEncoder(default).encode(batch) == encode_with_protobuf(batch, default)


@settings(max_examples=50, deadline=None)
@given(st.lists(samples, min_size=1, max_size=20))
def test_encoder_cache_reuse_gives_same_bytes(batch: list[Sample]) -> None:
    encoder = SeriesEncoder({"job": "j"})
    first = encoder.encode(batch)
    assert encoder.encode(batch) == first  # second pass hits the caches


@settings(max_examples=80, deadline=None)
@given(st.lists(samples, min_size=1, max_size=20))
def test_values_and_timestamps_round_trip_bit_exact(batch: list[Sample]) -> None:
    decoded = decode(compress(SeriesEncoder().encode(batch)))
    got = [(s.value, s.timestamp) for ts in decoded.timeseries for s in ts.samples]
    # grouping keeps per-series order; compare per series
    expected: dict[tuple[tuple[str, str], ...], list[tuple[int, int]]] = {}
    for s in batch:
        key = tuple(canonical_labels(s.name, s.labels))
        expected.setdefault(key, []).append((float_bits(s.value), s.timestamp_ms))
    flat = [p for points in expected.values() for p in points]
    assert [(float_bits(v), t) for v, t in got] == flat


def test_labels_sorted_by_bytes_with_name_where_its_bytes_put_it() -> None:
    pairs = canonical_labels("m", {"zone": "pkg", "Alpha": "1", "_x": "2", "a": "3"})
    assert [k for k, _ in pairs] == ["Alpha", "__name__", "_x", "a", "zone"]


def test_empty_label_values_are_omitted_and_sample_labels_override_defaults() -> None:
    pairs = canonical_labels("m", {"job": "mine", "empty": ""}, {"job": "x", "instance": "h"})
    assert pairs == [("__name__", "m"), ("instance", "h"), ("job", "mine")]


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        ("1bad", {}),
        ("bad-name", {}),
        ("ok", {"bad-label": "v"}),
        ("ok", {"__name__": "x"}),
        ("ok", {"0x": "v"}),
    ],
)
def test_invalid_names_are_refused_before_sending(name: str, labels: dict) -> None:
    with pytest.raises(EncodeError):
        SeriesEncoder().series(name, labels)


def test_stale_marker_bits_survive_encoding() -> None:
    request = decode(compress(SeriesEncoder().encode([Sample.stale("m", {}, 1000)])))
    value = request.timeseries[0].samples[0].value
    assert math.isnan(value)
    assert struct.unpack("<Q", struct.pack("<d", value))[0] == STALE_NAN_BITS


def test_int64_timestamps_and_varints() -> None:
    assert varint(0) == b"\x00"
    assert varint(300) == b"\xac\x02"
    assert len(varint(-1)) == 10
    big = (1 << 63) - 1
    request = decode(compress(SeriesEncoder().encode([Sample("m", {}, 1.0, big)])))
    assert request.timeseries[0].samples[0].timestamp == big


def test_snappy_is_the_block_format() -> None:
    body = compress(b"x" * 1000)
    assert not body.startswith(b"\xff\x06\x00\x00sNaPpY")  # framed stream identifier
    assert decompress(body) == b"x" * 1000


def test_series_grouping_keeps_first_appearance_order() -> None:
    batch = [
        Sample("b", {}, 1.0, 1),
        Sample("a", {}, 2.0, 1),
        Sample("b", {}, 3.0, 2),
    ]
    request = pb.WriteRequest()
    request.ParseFromString(SeriesEncoder().encode(batch))
    names = [ts.labels[0].value for ts in request.timeseries]
    assert names == ["b", "a"]
    assert [s.value for s in request.timeseries[0].samples] == [1.0, 3.0]
