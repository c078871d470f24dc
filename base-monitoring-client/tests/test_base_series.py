"""Series handles, frames, the columnar batcher and the stale tracker (no network)."""

from __future__ import annotations

import math
import struct
import time
from typing import Any

import pytest
from base_monitoring_client.batching import Batcher
from base_monitoring_client.client import MonitoringClient
from base_monitoring_client.config import ClientConfig
from base_monitoring_client.encoder import decompress, encode_with_protobuf
from base_monitoring_client.errors import EncodeError
from base_monitoring_client.pipeline import Pipeline
from base_monitoring_client.sample import STALE_NAN, Sample, float_bits, is_stale_marker
from base_monitoring_client.selfmetrics import Problems, SelfMetrics
from base_monitoring_client.series import SeriesTable
from base_monitoring_client.spool import Batch
from base_monitoring_client.stale import StaleTracker
from wattpush_testing import wait_until
from wattpush_testing.base import ScriptedTransport, points

NOW_MS = int(time.time() * 1000)
DEFAULTS = {"job": "j", "instance": "h"}
SUBNORMAL = struct.unpack("<d", struct.pack("<Q", 1))[0]
ODD_VALUES = [1.7976931348623157e308, SUBNORMAL, -0.0, math.inf, -math.inf, 0.0, STALE_NAN]


class Collector:
    """A Batcher with its emitted batches and drops."""

    def __init__(self, table: SeriesTable, max_samples: int = 100_000) -> None:
        self.batches: list[Batch] = []
        self.drops: dict[str, int] = {}
        self.batcher = Batcher(
            table.handles, self.batches.append, max_samples=max_samples, problems=Drops(self.drops)
        )


class Drops(Problems):
    """Drops into a dict, nothing logged."""

    def __init__(self, drops: dict[str, int]) -> None:
        super().__init__(SelfMetrics("test"))
        self.drops = drops

    def drop(self, reason: str, count: int) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + count

    def log_once(self, key: str, msg: str, *args: object, exc: bool = False) -> None:
        pass


# -- handles --------------------------------------------------------------------------------


def test_a_handle_is_validated_once_and_interned() -> None:
    table = SeriesTable(DEFAULTS)
    a = table.series("m", {"zone": "pkg", "empty": ""})
    assert table.series("m", {"zone": "pkg"}) is a  # an empty value is no label at all
    assert table.lookup("m", {"zone": "pkg"}) is a
    assert b"empty" not in a.key and b"zone" in a.key
    for name, labels in [("bad-name", {}), ("m", {"__name__": "x"}), ("m", {"1x": "v"})]:
        with pytest.raises(EncodeError):
            table.series(name, labels)
    with pytest.raises(EncodeError):
        table.series("m", {"zone": 3})  # type: ignore[dict-item]


def test_a_set_has_consecutive_ids_and_a_series_belongs_to_one_handle() -> None:
    table = SeriesTable(DEFAULTS)
    block = table.series_set("m", [{"i": str(i)} for i in range(4)])
    assert [h.id for h in block] == list(range(block.start, block.start + 4))
    assert table.lookup("m", {"i": "2"}) is block[2]  # Samples of a member find it
    with pytest.raises(EncodeError, match="already has a handle"):
        table.series_set("m", [{"i": "9"}, {"i": "1"}])
    with pytest.raises(ValueError, match="one value per member"):
        table.begin(NOW_MS)
        block.set([1.0, 2.0])


def test_bind_re_encodes_handles_made_before_it() -> None:
    table = SeriesTable()
    handle = table.series("m", {"zone": "pkg"})
    before = handle.key
    table.bind(DEFAULTS)
    assert handle.key != before and b"instance" in handle.key


# -- batcher: the wire format ---------------------------------------------------------------


def test_columns_and_singles_encode_byte_identical_to_protobuf() -> None:
    table = SeriesTable(DEFAULTS)
    block = table.series_set("power_watts", [{"zone": "pkg"}, {"zone": "core", "e": ""}])
    single = table.series("temp_celsius", {"gpu": "0"})
    out = Collector(table)
    reference: list[Sample] = []
    for tick, value in enumerate(ODD_VALUES):
        ts = NOW_MS + tick
        frame = table.begin(ts)
        block.set([value, -value])
        single.set(value)
        out.batcher.add(frame, NOW_MS)
        reference += [Sample("power_watts", {"zone": "pkg"}, value, ts)]
        reference += [Sample("power_watts", {"zone": "core"}, -value, ts)]
        reference += [Sample("temp_celsius", {"gpu": "0"}, value, ts)]
    out.batcher.flush()
    assert len(out.batches) == 1 and out.batches[0].samples == 3 * len(ODD_VALUES)
    assert decompress(out.batches[0].payload) == encode_with_protobuf(reference, DEFAULTS)


def test_frame_extend_is_a_run_of_adds() -> None:
    from array import array

    table = SeriesTable(DEFAULTS)
    handles = [table.series("m", {"i": str(i)}) for i in range(len(ODD_VALUES))]
    ids = [h.id for h in handles]
    one_by_one = table.begin(NOW_MS)
    for h, v in zip(handles, ODD_VALUES, strict=True):
        h.set(v)
    at_once = table.begin(NOW_MS)
    at_once.extend(ids, ODD_VALUES)
    assert at_once.ids == one_by_one.ids and at_once.stamps == one_by_one.stamps
    assert [float_bits(v) for v in at_once.values] == [float_bits(v) for v in ODD_VALUES]
    assert at_once.stale_ids == one_by_one.stale_ids == {ids[-1]}
    assert at_once.live_ids() == one_by_one.live_ids()
    later = table.begin(NOW_MS)
    later.extend(ids[:2], [math.inf, -math.inf], NOW_MS + 5)  # NaN sum, yet no stale marker
    assert later.stale_ids == set() and list(later.stamps) == [NOW_MS + 5] * 2
    for bad_ids, bad_values in [
        (ids[:2], [1.0, "x"]),
        (ids[:2], [1.0]),
        ([ids[0], None], [1.0, 2.0]),
    ]:
        with pytest.raises((TypeError, ValueError)):
            later.extend(bad_ids, bad_values)  # type: ignore[arg-type]
    assert len(later) == 2 and later.values == array("d", [math.inf, -math.inf])  # unchanged


def test_exact_value_bits_survive_the_columns() -> None:
    from base_monitoring_client.encoder import decode

    table = SeriesTable(DEFAULTS)
    block = table.series_set("v", [{"k": str(i)} for i in range(len(ODD_VALUES))])
    out = Collector(table)
    frame = table.begin(NOW_MS)
    block.set(ODD_VALUES)
    out.batcher.add(frame, NOW_MS)
    out.batcher.flush()
    got = [s.value for ts in decode(out.batches[0].payload).timeseries for s in ts.samples]
    assert [float_bits(v) for v in got] == [float_bits(v) for v in ODD_VALUES]
    assert is_stale_marker(got[-1])


def test_a_repeated_timestamp_in_a_column_is_dropped_per_sample_and_counted() -> None:
    table = SeriesTable(DEFAULTS)
    block = table.series_set("m", [{"i": str(i)} for i in range(3)])
    out = Collector(table)
    for ts in (NOW_MS, NOW_MS, NOW_MS - 1, 0, NOW_MS + 24 * 3600 * 1000, NOW_MS + 1):
        frame = table.begin(ts)
        block.set([1.0, 2.0, 3.0])
        out.batcher.add(frame, NOW_MS)
    out.batcher.flush()
    assert out.drops == {"out_of_order": 6, "invalid_timestamp": 6}
    assert sum(b.samples for b in out.batches) == 6


def test_a_member_single_newer_than_its_sets_column_still_drops_an_older_column_value() -> None:
    """A column newer than the set's last column is not read member by member, unless a
    single since is newer than it: then the member that has it still drops the older sample."""
    table = SeriesTable(DEFAULTS)
    block = table.series_set("m", [{"i": str(i)} for i in range(4)])
    out = Collector(table)
    frame = table.begin(NOW_MS)
    block.set([1.0, 2.0, 3.0, 4.0])
    out.batcher.add(frame, NOW_MS)
    frame = table.begin(NOW_MS + 50)
    block[2].set(30.0)  # member 2 alone, at +50
    out.batcher.add(frame, NOW_MS)
    for ts in (NOW_MS + 20, NOW_MS + 100):  # +20: older than member 2's last
        frame = table.begin(ts)
        block.set([5.0, 6.0, 7.0, 8.0])
        out.batcher.add(frame, NOW_MS)
    out.batcher.flush()
    assert out.drops == {"out_of_order": 1}
    got = sorted((k, t) for b in out.batches for k, _, t in points(b.payload) if "i=2" in k)
    assert [t - NOW_MS for _, t in got] == [0, 50, 100]
    assert sum(b.samples for b in out.batches) == 4 + 1 + 3 + 4


def test_a_set_larger_than_a_batch_is_split_and_batches_never_exceed_the_cap() -> None:

    table = SeriesTable(DEFAULTS)
    block = table.series_set("m", [{"i": str(i)} for i in range(25)])
    out = Collector(table, max_samples=10)
    for tick in range(3):
        frame = table.begin(NOW_MS + tick)
        block.set([float(i) for i in range(25)])
        out.batcher.add(frame, NOW_MS)
    out.batcher.flush()
    assert all(b.samples <= 10 for b in out.batches)
    got = [p for b in out.batches for p in points(b.payload)]
    assert sorted((k, t) for k, _, t in got) == sorted(
        (f"m,i={i},instance=h,job=j", NOW_MS + tick) for i in range(25) for tick in range(3)
    )
    per_series: dict[str, list[int]] = {}
    for key, _, t in got:
        per_series.setdefault(key, []).append(t)
    assert all(stamps == sorted(stamps) for stamps in per_series.values())


def test_a_single_value_of_a_set_member_keeps_its_order_within_a_batch() -> None:

    table = SeriesTable(DEFAULTS)
    block = table.series_set("m", [{"i": "0"}, {"i": "1"}])
    out = Collector(table)
    frame = table.begin(NOW_MS)
    block.set([1.0, 2.0])
    block[0].set(3.0, NOW_MS + 5)
    out.batcher.add(frame, NOW_MS)
    out.batcher.flush()
    got = [(k, v, t) for b in out.batches for k, v, t in points(b.payload) if "i=0" in k]
    assert got == [
        ("m,i=0,instance=h,job=j", 1.0, NOW_MS),
        ("m,i=0,instance=h,job=j", 3.0, NOW_MS + 5),
    ]


def test_only_a_single_of_a_waiting_column_splits_the_batch() -> None:
    table = SeriesTable(DEFAULTS)
    block = table.series_set("host", [{"mode": m} for m in ("user", "idle")])
    others = [table.series("c", {"i": str(i)}) for i in range(3)]
    out = Collector(table)
    for tick in range(5):  # a column and unrelated singles, tick after tick: one batch
        frame = table.begin(NOW_MS + tick)
        block.set([1.0, 2.0])
        frame.extend([h.id for h in others], [3.0, 4.0, 5.0])
        out.batcher.add(frame, NOW_MS)
    frame = table.begin(NOW_MS + 5)
    block[1].set(9.0)  # a single of a member whose column waits: flushed first
    out.batcher.add(frame, NOW_MS)
    out.batcher.flush()
    assert [b.samples for b in out.batches] == [25, 1]


# -- staleness ------------------------------------------------------------------------------


def test_stale_tracker_is_set_arithmetic_on_ids() -> None:
    tracker = StaleTracker()
    first = frozenset({1, 2, 3})
    assert tracker.update(first) == frozenset()
    assert tracker.update(first) == frozenset()  # the same set: no work
    assert tracker.update({1, 3}) == {2}
    tracker.forget({3})
    assert tracker.update({4}) == {1}


class BlinkingHandles(MonitoringClient):
    """A handle set every tick, one handle only for the first three ticks."""

    name = "blinking"

    def __init__(self) -> None:
        self.tick = 0
        self.block = self.handle_set("kept", [{"i": "0"}, {"i": "1"}])
        self.gone = self.handle("gone", {"gpu": "0"})

    def collect(self, now_ns: int) -> None:
        self.tick += 1
        self.block.set([1.0, 2.0])
        if self.tick <= 3:
            self.gone.set(5.0)


def test_auto_stale_with_handles_ends_a_missing_series_once() -> None:

    transport = ScriptedTransport()
    config = ClientConfig(sample_interval_s=0.02, push_interval_s=60, instance="h")
    client = BlinkingHandles()
    with Pipeline(client, config, transport=transport) as pipeline:
        assert wait_until(lambda: client.tick >= 8, timeout=5)
        assert pipeline.flush(timeout=5)
    got = [p for body in transport.requests for p in points(body) if p[0].startswith("gone,")]
    values = [v for _, v, _ in got]
    assert values[:3] == [5.0, 5.0, 5.0] and len(values) == 4
    assert is_stale_marker(values[3]) and got[3][2] > got[2][2]
    kept = [p for body in transport.requests for p in points(body) if p[0].startswith("kept,")]
    assert not any(is_stale_marker(v) for _, v, _ in kept)


def test_frame_builder_ends_a_series_that_goes_missing_after_identical_ticks() -> None:
    from base_monitoring_client.sampling import FrameBuilder

    table = SeriesTable(DEFAULTS)
    a, b = table.series("a", {}), table.series("b", {})
    builder = FrameBuilder(table, True, Problems(SelfMetrics("test")))

    def tick(ts: int, *handles: object) -> list[tuple[str, bool]]:
        frame = table.begin(ts)
        for h in handles:
            h.set(1.0)  # type: ignore[attr-defined]
        builder.finish_tick(frame)
        return [(s.name, is_stale_marker(s.value)) for s in table.samples(frame)]

    for n in range(4):  # the same series tick after tick
        assert tick(NOW_MS + n, a, b) == [("a", False), ("b", False)]
    assert tick(NOW_MS + 4, b, a) == [("b", False), ("a", False)]  # reordered: none ended
    assert tick(NOW_MS + 5, a) == [("a", False), ("b", True)]
    assert tick(NOW_MS + 6, a) == [("a", False)]  # ended once
    assert tick(NOW_MS + 7, a, b) == [("a", False), ("b", False)]
    assert tick(NOW_MS + 8, a, b) == [("a", False), ("b", False)]
    assert tick(NOW_MS + 9, b) == [("b", False), ("a", True)]


# -- releasing handles ----------------------------------------------------------------------


def test_a_released_handle_can_be_declared_again_and_refuses_new_values() -> None:
    table = SeriesTable(DEFAULTS)
    labels = {"w": "1"}
    a = table.series("m", labels)
    assert table.lookup("m", labels) is a  # cached on the dict's identity
    block = table.series_set("b", [{"i": "0"}, {"i": "1"}])
    frame = table.begin(NOW_MS)
    a.set(1.0)
    a.stale(NOW_MS + 1)
    table.release(a)
    table.release(block)
    with pytest.raises(EncodeError, match="released"):
        a.set(2.0)
    with pytest.raises(EncodeError, match="released"):
        block.set([1.0, 2.0])
    again = table.lookup("m", labels)
    assert again is not a and again.id != a.id and again.key == a.key
    assert table.series("m", labels) is again
    assert len(table.series_set("b", [{"i": "0"}, {"i": "1"}])) == 2  # free to join a set again
    # Frames made before may still carry the released handle: it stays until forget().
    first, marker = table.samples(frame)
    assert (first.name, first.value, marker.name) == ("m", 1.0, "m") and marker.is_stale
    assert table.released_before(frame.tick) == []
    gone = table.released_before(frame.tick + 1)
    assert {h.id for h in gone} == {a.id, *(m.id for m in block)}
    assert table.released_before(frame.tick + 1) == []  # taken once
    table.forget(gone)
    assert a.id not in table.handles and again.id in table.handles
    assert not any(m.id in table.handles for m in block)


class Ephemeral(MonitoringClient):
    """A new series every tick, released after its last value (like the runner's windows).

    With ``auto_stale`` the framework ends each series (in the next tick); without, the
    client sends the stale marker itself before releasing."""

    name = "ephemeral"

    def __init__(self, auto_stale: bool) -> None:
        self.auto_stale = auto_stale
        self.tick = 0
        self.live: Any = None
        self.sizes: list[int] = []

    def collect(self, now_ns: int) -> None:
        self.tick += 1
        self.sizes.append(len(self.series_table.handles))
        if self.live is not None and not self.auto_stale:
            self.live.stale()
            self.release(self.live)
        self.live = self.handle("ephemeral", {"n": str(self.tick)})
        self.live.set(1.0)
        if self.auto_stale:
            self.release(self.live)  # set and released at once: the framework's marker follows


@pytest.mark.parametrize("auto_stale", [False, True])
def test_released_handles_are_forgotten_once_sent_and_every_series_still_ends(
    auto_stale: bool,
) -> None:
    transport = ScriptedTransport()
    config = ClientConfig(sample_interval_s=0.005, push_interval_s=0.05, instance="h")
    client = Ephemeral(auto_stale)
    with Pipeline(client, config, transport=transport) as pipeline:
        assert wait_until(lambda: client.tick >= 150, timeout=30)
        assert pipeline.flush(timeout=5)
        assert pipeline._threads["batcher"].is_alive()
    # Bounded by what a few batches hold, not by the number of series ever made.
    assert max(client.sizes[-50:]) < 60 < client.tick
    got: dict[str, list[float]] = {}
    for body in transport.requests:
        for key, value, _ in points(body):
            if key.startswith("ephemeral,"):
                got.setdefault(key, []).append(value)
    ended = [values for values in got.values() if len(values) == 2]
    assert len(ended) >= 140
    assert all(v[0] == 1.0 and is_stale_marker(v[1]) for v in ended)
    assert all(len(values) <= 2 for values in got.values())
