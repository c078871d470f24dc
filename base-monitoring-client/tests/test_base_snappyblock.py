"""The hand-written snappy block of a one-sample column: it must decompress to exactly the
request ``encode_sets`` writes, stay close to the library's size, and be read by a real
receiver."""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Sequence
from pathlib import Path

import pytest
import snappy
from base_monitoring_client import snappyblock
from base_monitoring_client.config import ClientConfig
from base_monitoring_client.encoder import SeriesEncoder, compress, decompress, varint
from base_monitoring_client.pipeline import Pipeline
from base_monitoring_client.synthetic import SyntheticClient
from hypothesis import given, settings
from hypothesis import strategies as st
from wattpush_testing import PrometheusProcess, wait_until

NOW_MS = int(time.time() * 1000)


def column(
    enc: SeriesEncoder, name: str, labels: Sequence[dict[str, str]], rows: list, stamps: list
) -> tuple:
    keys = [enc.series(name, lab).key for lab in labels]
    return (name, lambda: keys, rows, stamps)


def both(enc: SeriesEncoder, columns: list, tail: bytes = b"") -> tuple[bytes, bytes]:
    """(hand-compressed body, the uncompressed request)."""
    return enc.encode_compressed(columns, tail), bytes(enc.encode_sets(columns, tail))


def test_elements_decode_with_the_library() -> None:
    """Literals of every length form and copies of every form, read back by snappy."""
    data = bytes(range(256)) * 300  # 76800 bytes, no repeats within 256
    for size in (1, 60, 61, 256, 257, 70000):
        block = varint(size) + snappyblock.literal(data[:size])
        assert snappy.uncompress(block) == data[:size], size
    for offset, length in ((1, 3), (7, 4), (2047, 11), (2048, 11), (300, 200), (70000, 70)):
        head = data[:offset]
        want = head + (head * (length // offset + 1))[:length]
        block = varint(len(want)) + snappyblock.literal(head) + snappyblock.copy(offset, length)
        assert snappy.uncompress(block) == want, (offset, length)
    with pytest.raises(ValueError, match="offset"):
        snappyblock.copy(0, 4)


labels_st = st.lists(
    st.dictionaries(
        st.sampled_from(["zone", "gpu", "container", "a"]),
        st.text("abcxyz0123456789-_é", max_size=30),
        max_size=3,
    ),
    min_size=1,
    max_size=40,
)
value_st = st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: v != 0.0)


@settings(max_examples=150, deadline=None)
@given(
    labels_st,
    labels_st,
    st.data(),
    st.sampled_from([NOW_MS, 1, 200, 1 << 40]),
    st.booleans(),
)
def test_any_one_sample_columns_decompress_to_the_request(
    first: list, second: list, data: st.DataObject, ts: int, with_tail: bool
) -> None:
    enc = SeriesEncoder({"job": "j", "instance": "h"})
    rows_a = [array("d", data.draw(st.lists(value_st, min_size=len(first), max_size=len(first))))]
    rows_b = [data.draw(st.lists(value_st, min_size=len(second), max_size=len(second)))]
    columns = [
        column(enc, "power_watts", first, rows_a, [ts]),
        column(enc, "temp_celsius", second, rows_b, [ts + 1]),
    ]
    tail = enc.encode_grouped([(enc.series("x", {}).key, [(1.5, ts)])]) if with_tail else b""
    body, raw = both(enc, columns, tail)
    assert snappy.uncompress(body) == raw
    assert decompress(enc.encode_compressed(columns, tail)) == raw  # plans reused


def test_what_a_plan_cannot_hold_takes_the_library() -> None:
    """A 0.0 (proto3 leaves it out), two samples a series: the request is still exact, and it
    is the library's compression, byte for byte."""
    enc = SeriesEncoder()
    labels = [{"i": str(i)} for i in range(5)]
    for rows, stamps in (
        ([array("d", [1.0, 0.0, 3.0, 4.0, 5.0])], [NOW_MS]),
        ([[1.0, 2.0, 0.0, 4.0, 5.0]], [NOW_MS]),
        ([[1.0] * 5, [2.0] * 5], [NOW_MS, NOW_MS + 1]),
    ):
        columns = [column(enc, "m", labels, rows, stamps)]
        body, raw = both(enc, columns)
        assert body == compress(raw)
    # -0.0 is written (its bits are not zero), and eight zero bytes across two values are no
    # 0.0: both planned, both exact
    for values in ([1.0, -0.0, 3.0, 4.0, 5.0], [2.0**-1070, 2.0, 3.0, 4.0, 5.0]):
        body, raw = both(enc, [column(enc, "m", labels, [array("d", values)], [NOW_MS])])
        assert snappy.uncompress(body) == raw and body != compress(raw)


def test_a_2000_series_request_is_within_a_quarter_of_the_librarys_size() -> None:
    client = SyntheticClient(2000)
    client.series_table.bind({"job": "bench", "instance": "host-1"})
    sset = client._set
    keys = lambda: [m.key for m in sset.members]  # noqa: E731
    row = array("d", [50.0 + 10.0 * math.sin(i * 0.37) for i in range(2000)])
    enc = SeriesEncoder()
    body, raw = both(enc, [(sset, keys, [row], [NOW_MS])])
    assert snappy.uncompress(body) == raw
    assert len(body) <= 1.25 * len(compress(raw)), (len(body), len(compress(raw)))
    assert len(body) < len(raw) / 4


def test_prometheus_stores_what_one_sample_columns_carry(tmp_path: Path) -> None:
    """A batch of exactly one tick (as many series as MAX_SAMPLES_PER_SEND) takes the
    hand-compressed path; a real receiver reads every value back."""
    series = 300
    with PrometheusProcess(tmp_path / "prom") as prom:
        config = ClientConfig(
            remote_write_url=prom.write_url,
            sample_interval_s=0.1,
            push_interval_s=0.2,
            max_samples_per_send=series,
            instance="snappyblock",
        )
        client = SyntheticClient(series)
        with Pipeline(client, config) as pipeline:
            wait_until(
                lambda: pipeline.metrics.get("monitoring_client_samples_sent_total") >= 3 * series,
                timeout=30,
            )
        assert pipeline.metrics.get("monitoring_client_samples_sent_total") >= 3 * series
        assert pipeline.metrics.get("monitoring_client_requests_total", code="204") >= 3
        assert pipeline.metrics.total("monitoring_client_samples_dropped_total") == 0
        query = 'synthetic_power_watts{instance="snappyblock"}[1h]'
        result = prom.query(query)
        assert len(result) == series
        for item in result:
            index = int(item["metric"]["series"])
            for stamp, value in item["values"]:
                want = SyntheticClient.value_at(index, round(float(stamp) * 1000))
                assert float(value) == pytest.approx(want, abs=1e-9), (index, stamp)
