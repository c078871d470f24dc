"""Property checks aimed at the fixed-width batch path of SeriesEncoder (realistic same-width
ms timestamps, zeros, shared and separate-but-equal label dicts, mutated dicts, chunk sizes)."""

from __future__ import annotations

from base_monitoring_client.encoder import SeriesEncoder, encode_with_protobuf
from base_monitoring_client.sample import STALE_NAN, Sample
from hypothesis import given, settings
from hypothesis import strategies as st

values = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, STALE_NAN, 0, 1]
)
# same varint width mostly (realistic ms), sometimes other widths
stamps = st.integers(1_700_000_000_000, 1_800_000_000_000) | st.integers(1, 300) | st.just(0)
label_sets = st.lists(
    st.dictionaries(
        st.sampled_from(["a", "b", "zone", "gpu"]), st.sampled_from(["", "x", "y", "é"]), max_size=3
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(
    label_sets,
    st.lists(
        st.tuples(st.integers(0, 5), st.sampled_from(["m", "n"]), values, stamps, st.booleans()),
        max_size=60,
    ),
    st.booleans(),
)
def test_fast_path_identical(dicts, picks, uniform):
    batch = []
    base = 1_795_427_169_904
    for i, name, v, ts, fresh in picks:
        labels = dicts[i % len(dicts)]
        if fresh:
            labels = dict(labels)  # equal labels in a distinct dict
        batch.append(Sample(name, labels, v, base + i if uniform else ts))
    enc = SeriesEncoder({"job": "j"})
    assert enc.encode(batch) == encode_with_protobuf(batch, {"job": "j"})
    assert enc.encode(batch) == encode_with_protobuf(batch, {"job": "j"})  # warm caches
    groups = {}
    for s in batch:
        groups.setdefault(enc.series(s.name, s.labels).key, []).append((s.value, s.timestamp_ms))
    assert enc.encode_grouped(list(groups.items())) == encode_with_protobuf(batch, {"job": "j"})


def test_mutated_label_dict_is_noticed():
    labels = {"zone": "a"}
    enc = SeriesEncoder()
    s1 = [Sample("m", labels, 1.0, 1_795_427_169_904)]
    assert enc.encode(s1) == encode_with_protobuf(s1)
    labels["zone"] = "b"
    s2 = [Sample("m", labels, 1.0, 1_795_427_170_004)]
    assert enc.encode(s2) == encode_with_protobuf(s2)
    assert enc.series("m", labels).pairs == (("__name__", "m"), ("zone", "b"))


def test_big_batches_all_chunk_sizes():
    enc = SeriesEncoder({"job": "j"})
    labels = [{"s": str(i)} for i in range(7)]
    for n in (1, 2, 3, 1023, 1024, 1025, 2000, 2047, 3001):
        batch = [
            Sample("m", labels[i % 7], float(i % 5) - 1.0, 1_795_427_169_904 + i // 7)
            for i in range(n)
        ]
        assert enc.encode(batch) == encode_with_protobuf(batch, {"job": "j"})


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 7),
    st.lists(st.tuples(st.lists(values, min_size=7, max_size=7), stamps), min_size=1, max_size=5),
    st.booleans(),
)
def test_set_column_plan_identical(members, rows, uniform):
    """encode_set (a SeriesSet column, planned once per set and row count) writes the bytes
    protobuf writes, also for zeros, mixed timestamp widths and a plan used again."""
    enc = SeriesEncoder({"job": "j"})
    names = [{"gpu": str(i), "zone": "x" * i} for i in range(members)]
    keys = [enc.series("m", labels).key for labels in names]
    base = 1_795_427_169_904
    stamps_ms = [base + 100 * j if uniform else ts for j, (_, ts) in enumerate(rows)]
    table = [[row[i] for i in range(members)] for row, _ in rows]
    expected = encode_with_protobuf(
        [
            Sample("m", names[i], table[j][i], stamps_ms[j])
            for i in range(members)
            for j in range(len(rows))
        ],
        {"job": "j"},
    )
    for _ in range(2):  # the second time from the cached plan
        assert enc.encode_set("set", lambda: keys, table, stamps_ms) == expected


def test_set_column_plan_follows_row_count_and_timestamp_width():
    enc = SeriesEncoder()
    labels = [{"i": str(i)} for i in range(3)]
    keys = [enc.series("m", x).key for x in labels]
    for stamps_ms in ([1_795_427_169_904], [1_795_427_169_904, 1_795_427_170_004], [5, 6]):
        table = [[1.5 + i + j for i in range(3)] for j in range(len(stamps_ms))]
        expected = encode_with_protobuf(
            [Sample("m", labels[i], table[j][i], ts) for i in range(3)
             for j, ts in enumerate(stamps_ms)]
        )  # fmt: skip
        assert enc.encode_set("same set", lambda: keys, table, stamps_ms) == expected


def test_sets_and_other_series_in_one_reused_buffer():
    """encode_sets: two set columns then the other series' bytes, equal to protobuf's request
    of all of them; a bigger request while an earlier view is still held does not fail."""
    enc = SeriesEncoder()
    a = [{"a": str(i)} for i in range(3)]
    b = [{"b": str(i)} for i in range(50)]
    keys_a = [enc.series("m", x).key for x in a]
    keys_b = [enc.series("n", x).key for x in b]
    ts = 1_795_427_169_904
    single = [Sample("s", {"z": "1"}, 2.5, ts)]
    small = enc.encode_sets([("a", lambda: keys_a, [[1.0, 2.0, 3.0]], [ts])])
    held = bytes(small)
    rows_b = [[float(i + j + 1) for i in range(50)] for j in range(2)]
    view = enc.encode_sets(
        [
            ("a", lambda: keys_a, [[1.0, 2.0, 3.0]], [ts]),
            ("b", lambda: keys_b, rows_b, [ts, ts + 100]),
        ],
        enc.encode(single),
    )
    expected = encode_with_protobuf(
        [Sample("m", a[i], float(i + 1), ts) for i in range(3)]
        + [Sample("n", b[i], rows_b[j][i], ts + 100 * j) for i in range(50) for j in range(2)]
        + single
    )
    assert bytes(view) == expected
    assert bytes(small) == held  # the buffer grew into a new one: the old view is intact
