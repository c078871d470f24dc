"""Series handles: a series is validated and its label bytes encoded once, not per sample.

A client declares a series once (``client.handle(name, labels)``) or a whole block at once
(``client.handle_set(name, label_sets)``), the way prometheus/client_python caches a
``labels()`` child. Each tick it only sets values; the framework keeps them in columns
(``Frame``) and encodes each batch with the cached label bytes.

Every handle has a process-wide integer id; the members of a ``SeriesSet`` have consecutive
ids, so per-series bookkeeping (last timestamp, staleness) is array slicing and set arithmetic.

A series that has ended for good (a finished window, a removed container) is released
(``client.release(handle)``) after its last value or stale marker: its name and labels can be
declared again, and the pipeline drops the handle once every frame that may carry it is encoded,
so clients that make series as they go do not grow without bound.
"""

from __future__ import annotations

import itertools
import math
import threading
from array import array
from collections.abc import Iterable, Mapping, Sequence
from math import isnan
from typing import Any

from .encoder import canonical_labels, label_bytes
from .errors import EncodeError
from .sample import STALE_NAN, Sample, is_stale_marker, validate_series

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_ids = itertools.count()
_ids_lock = threading.Lock()


def _allocate(count: int) -> int:
    """First of ``count`` consecutive ids, unique in this process."""
    with _ids_lock:
        first = next(_ids)
        for _ in range(count - 1):
            next(_ids)
    return first


class _Released:
    """Stands in for the table of a released handle: setting it again is an error."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    @property
    def frame(self) -> Frame:
        raise EncodeError(
            f"{self.what} was released; declare the series again with handle() to set it"
        )


class Series:
    """Handle of one series. ``set()`` records a value in the current tick's frame."""

    __slots__ = ("_table", "id", "key", "labels", "name", "owner")

    def __init__(
        self, table: SeriesTable, sid: int, name: str, labels: dict[str, str], key: bytes
    ) -> None:
        self._table: SeriesTable | _Released = table
        self.id = sid
        self.name = name
        self.labels = labels
        self.key = key  # wire label bytes (default labels included): the series' identity
        self.owner: SeriesSet | None = None

    def set(self, value: float, timestamp_ms: int | None = None) -> None:
        """Record ``value`` at the tick's time (or ``timestamp_ms``). For use in collect()."""
        self._table.frame.add(self.id, value, timestamp_ms)

    def stale(self, timestamp_ms: int | None = None) -> None:
        """End the series now: Prometheus' stale marker."""
        self._table.frame.add(self.id, STALE_NAN, timestamp_ms)

    def __repr__(self) -> str:
        return f"Series({self.name!r}, {self.labels!r})"


class SeriesSet:
    """A fixed, ordered block of series set together: ``set(values)`` takes one value each.

    Values are copied into the frame as one ``array('d')``: no Python object per sample.
    """

    __slots__ = ("_fill", "_table", "idset", "members", "start", "stop")

    def __init__(self, table: SeriesTable, members: list[Series]) -> None:
        self._table: SeriesTable | _Released = table
        self.members = tuple(members)
        self.start = members[0].id if members else 0
        self.stop = self.start + len(members)
        self.idset = frozenset(range(self.start, self.stop))
        self._fill = array("q", [0])

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self) -> Any:
        return iter(self.members)

    def __getitem__(self, index: int) -> Series:
        return self.members[index]

    @property
    def keys(self) -> list[bytes]:
        return [m.key for m in self.members]

    def set(self, values: Sequence[float] | array[float], timestamp_ms: int | None = None) -> None:
        """One value per member, in member order, at the tick's time (or ``timestamp_ms``)."""
        column = values if isinstance(values, array) and values.typecode == "d" else None
        column = array("d", values) if column is None else array("d", column)
        if len(column) != len(self.members):
            raise ValueError(
                f"{len(column)} values for a set of {len(self.members)} series; "
                "pass one value per member"
            )
        self._table.frame.add_set(self, column, timestamp_ms)

    def stale(self, timestamp_ms: int | None = None) -> None:
        """End every member now."""
        self.set(array("d", [STALE_NAN]) * len(self.members), timestamp_ms)


class Frame:
    """The values of one tick (or one push), in columns.

    ``ids``/``values``/``stamps`` hold the series set one at a time; ``sets`` holds whole
    ``SeriesSet`` columns ``(set, values, timestamp_ms)``. ``tick`` numbers the frames of
    ``SeriesTable.begin()`` (1, 2, ...); other frames (pushes) have 0.
    """

    __slots__ = ("ids", "sets", "stale_ids", "stamps", "tick", "timestamp_ms", "values")

    def __init__(self, timestamp_ms: int, tick: int = 0) -> None:
        self.timestamp_ms = timestamp_ms
        self.tick = tick
        self.ids: array[int] = array("q")
        self.values: array[float] = array("d")
        self.stamps: array[int] = array("q")
        self.sets: list[tuple[SeriesSet, array[float], int]] = []
        self.stale_ids: set[int] = set()

    def add(self, sid: int, value: float, timestamp_ms: int | None = None) -> None:
        self.values.append(value)
        try:
            self.stamps.append(self.timestamp_ms if timestamp_ms is None else timestamp_ms)
        except (TypeError, OverflowError):
            self.values.pop()  # keep the columns aligned
            raise
        self.ids.append(sid)
        if isnan(value) and is_stale_marker(value):
            self.stale_ids.add(sid)

    def extend(
        self, ids: Sequence[int], values: Sequence[float], timestamp_ms: int | None = None
    ) -> None:
        """``add`` for many series at once (at one timestamp), in the same order: a client
        that sets dozens of single series per tick saves a Python call per value."""
        # Everything converted first: a bad id, value or timestamp changes nothing.
        new_ids = array("q", ids)
        new_values = array("d", values)
        if len(new_ids) != len(new_values):
            raise ValueError(f"{len(new_ids)} ids for {len(new_values)} values")
        stamp = array("q", [self.timestamp_ms if timestamp_ms is None else timestamp_ms])
        self.ids += new_ids
        self.values += new_values
        self.stamps += stamp * len(new_values)
        if isnan(sum(new_values)):  # some value is NaN (or +inf and -inf): look closer
            self.stale_ids.update(
                sid for sid, v in zip(new_ids, new_values, strict=True) if is_stale_marker(v)
            )

    def add_set(
        self, series_set: SeriesSet, values: array[float], timestamp_ms: int | None
    ) -> None:
        self.sets.append(
            (series_set, values, self.timestamp_ms if timestamp_ms is None else timestamp_ms)
        )

    def __len__(self) -> int:
        n = len(self.ids)
        for series_set, _, _ in self.sets:
            n += len(series_set.members)
        return n

    def live_ids(self) -> frozenset[int] | set[int]:
        """Ids of the series this frame carries a (non-stale) value for."""
        if not self.ids and len(self.sets) == 1:
            return self.sets[0][0].idset  # the common case: no copy
        out: set[int] = set(self.ids)
        out -= self.stale_ids
        for series_set, values, _ in self.sets:
            if values and math.isnan(values[0]) and is_stale_marker(values[0]):
                continue  # SeriesSet.stale() ended the whole set
            out |= series_set.idset
        return out


class SeriesTable:
    """The handles of one client: interned by (name, labels), keys with the default labels.

    Creating a handle takes a lock; looking one up for a ``Sample`` is a dict hit on the
    identity of the sample's label dict. ``bind()`` sets the default labels (job, instance,
    EXTRA_LABELS) and re-encodes the keys of handles made before.
    """

    def __init__(self, default_labels: Mapping[str, str] | None = None) -> None:
        self._defaults = dict(default_labels or {})
        self._lock = threading.Lock()
        self._interned: dict[tuple[str, tuple[tuple[str, str], ...]], Series] = {}
        # id(labels dict) -> (that dict, a snapshot of it, {metric name: Series}). Holding the
        # dict keeps its id unique; the snapshot catches a dict mutated since it was cached.
        self._by_id: dict[int, tuple[Mapping[str, str], dict[str, str], dict[str, Series]]] = {}
        #: handle id -> handle, for every handle of this table (released ones until forgotten)
        self.handles: dict[int, Series] = {}
        self.frame = Frame(0)
        self._tick = 0
        # (tick it was released in, handle), oldest first
        self._released: list[tuple[int, Series]] = []

    @property
    def default_labels(self) -> dict[str, str]:
        return dict(self._defaults)

    def bind(self, default_labels: Mapping[str, str]) -> None:
        with self._lock:
            self._defaults = dict(default_labels)
            for handle in self._interned.values():
                handle.key = self._key(handle.name, handle.labels)

    def _key(self, name: str, labels: Mapping[str, str]) -> bytes:
        return label_bytes(canonical_labels(name, labels, self._defaults))

    @staticmethod
    def _identity(name: str, labels: Mapping[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
        return name, tuple(sorted((k, v) for k, v in labels.items() if v != ""))

    def series(self, name: str, labels: Mapping[str, str] | None = None) -> Series:
        """The handle of a series, created (and validated) on first use."""
        clean = validate_series(name, labels or {})
        ident = self._identity(name, clean)
        handle = self._interned.get(ident)
        if handle is not None:
            return handle
        with self._lock:
            handle = self._interned.get(ident)
            if handle is None:
                handle = Series(self, _allocate(1), name, clean, self._key(name, clean))
                self._interned[ident] = handle
                self.handles[handle.id] = handle
        return handle

    def series_set(
        self, name: str | Sequence[str], label_sets: Iterable[Mapping[str, str]]
    ) -> SeriesSet:
        """A block of new series with consecutive ids. ``name`` is one metric name for all, or
        one per label set. A series that already has a handle cannot join a set."""
        raw = list(label_sets)
        names = [name] * len(raw) if isinstance(name, str) else list(name)
        if len(names) != len(raw):
            raise ValueError(f"{len(names)} names for {len(raw)} label sets")
        labels = [validate_series(n, ls) for n, ls in zip(names, raw, strict=True)]
        idents = [self._identity(n, ls) for n, ls in zip(names, labels, strict=True)]
        if len(set(idents)) != len(idents):
            raise EncodeError(f"series set of {names[0]!r}: a series appears twice")
        with self._lock:
            taken = [i for i in idents if i in self._interned]
            if taken:
                raise EncodeError(
                    f"series {taken[0][0]} {dict(taken[0][1])} already has a handle; "
                    "a series belongs to one handle"
                )
            first = _allocate(len(labels))
            members = [
                Series(self, first + k, n, ls, self._key(n, ls))
                for k, (n, ls) in enumerate(zip(names, labels, strict=True))
            ]
            result = SeriesSet(self, members)
            for ident, member in zip(idents, members, strict=True):
                member.owner = result
                self._interned[ident] = member
                self.handles[member.id] = member
        return result

    def lookup(self, name: str, labels: Mapping[str, str]) -> Series:
        """The handle for a Sample's (name, labels); cached on the label dict's identity."""
        hit = self._by_id.get(id(labels))
        if hit is not None and hit[0] is labels and hit[1] == labels:
            handle = hit[2].get(name)
            if handle is not None:
                return handle
        handle = self.series(name, labels)
        if type(labels) is dict:
            if hit is None or hit[0] is not labels or hit[1] != labels:
                # Bounded, so clients that build fresh label dicts each tick cannot pile them up.
                if len(self._by_id) >= max(1024, 2 * len(self._interned)):
                    self._by_id.clear()
                hit = (labels, dict(labels), {})
                self._by_id[id(labels)] = hit
            hit[2][name] = handle
        return handle

    def samples(self, frame: Frame) -> list[Sample]:
        """The frame as Sample objects (for tests and debugging; not the hot path)."""
        out: list[Sample] = []
        for series_set, values, ts in frame.sets:
            out += (
                Sample(m.name, m.labels, v, ts)
                for m, v in zip(series_set.members, values, strict=True)
            )
        handles = self.handles
        for sid, value, ts in zip(frame.ids, frame.values, frame.stamps, strict=True):
            handle = handles[sid]
            out.append(Sample(handle.name, handle.labels, value, ts))
        return out

    def begin(self, timestamp_ms: int) -> Frame:
        """Start the frame that ``set()`` calls write into until the next ``begin``."""
        self._tick += 1
        frame = Frame(timestamp_ms, self._tick)
        self.frame = frame
        return frame

    # -- releasing handles ------------------------------------------------------------------------

    def release(self, handle: Series | SeriesSet) -> None:
        """The series (every member of a set) has ended: call it in ``collect()`` after its
        last ``set()``/``stale()``. Its name and labels can be declared again (as a new series
        to the batcher, which then no longer checks its timestamps against the old one's);
        setting the released handle raises EncodeError. The handle itself stays in
        ``handles`` until ``forget()``: frames made before may still carry it."""
        members = list(handle.members) if isinstance(handle, SeriesSet) else [handle]
        with self._lock:
            for member in members:
                ident = self._identity(member.name, member.labels)
                if self._interned.get(ident) is member:
                    del self._interned[ident]
                member._table = _Released(repr(member))
                self._released.append((self._tick, member))
            if isinstance(handle, SeriesSet):
                name = members[0].name if members else ""
                handle._table = _Released(f"the series set of {name!r}")
            self._by_id.clear()  # it may map a label dict to a released handle

    def released_before(self, tick: int) -> list[Series]:
        """Take the handles released in ticks before ``tick``: once frame ``tick`` is with the
        batcher, no later frame carries them (a stale marker the framework adds for a series
        missing from a tick is in the first tick frame after it)."""
        with self._lock:
            released = self._released
            n = 0
            while n < len(released) and released[n][0] < tick:
                n += 1
            if not n:
                return []
            self._released = released[n:]
        return [handle for _, handle in released[:n]]

    def forget(self, handles: Iterable[Series]) -> None:
        """Drop released handles for good (after every frame that carries them was encoded)."""
        with self._lock:
            for handle in handles:
                self.handles.pop(handle.id, None)

    def add_samples(self, frame: Frame, samples: Iterable[Sample]) -> list[tuple[Sample, str]]:
        """Append Samples to ``frame`` through their handles; returns the invalid ones."""
        bad: list[tuple[Sample, str]] = []
        lookup = self.lookup
        add = frame.add
        for s in samples:
            try:
                handle = lookup(s.name, s.labels)
            except EncodeError as exc:
                bad.append((s, str(exc)))
                continue
            ts = s.timestamp_ms
            if type(ts) is not int or not _INT64_MIN <= ts <= _INT64_MAX:
                bad.append((s, f"series {s.name!r}: timestamp {ts!r} is not an int64"))
                continue
            try:
                add(handle.id, s.value, ts)
            except TypeError:
                bad.append((s, f"series {s.name!r}: value {s.value!r} is not a number"))
        return bad
