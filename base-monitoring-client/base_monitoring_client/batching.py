"""Batcher: frames in, encoded remote-write batches out.

Values stay in columns from the client to the encoder. A ``SeriesSet`` column is checked with
one slice of the per-series last-timestamp array and kept as it came; single values go through
a per-sample check. One encode per batch, with each series' cached label bytes.

Checks (each drop counted with its reason): a timestamp must increase per series
(``out_of_order``) and lie in (0, now + 10 min] (``invalid_timestamp``), because Prometheus
rejects the whole request for one bad sample.
"""

from __future__ import annotations

import functools
from array import array
from collections.abc import Callable
from typing import Any

from .encoder import SeriesEncoder, compress
from .series import Frame, Series, SeriesSet
from .spool import Batch

# A sample more than this far ahead of the wall clock is refused before sending: Prometheus
# rejects the whole request for one such sample.
MAX_FUTURE_MS = 10 * 60 * 1000
_NEVER = -(1 << 63)

DropFn = Callable[[str, int], None]
LogOnceFn = Callable[..., None]


def _member_keys(sset: SeriesSet, lo: int, hi: int) -> list[bytes]:
    return [member.key for member in sset.members[lo:hi]]


class Batcher:
    """Not thread-safe: owned by the batcher thread. ``emit`` receives each full batch."""

    def __init__(
        self,
        handles: dict[int, Series],
        emit: Callable[[Batch], None],
        *,
        max_samples: int,
        drop: DropFn,
        log_once: LogOnceFn,
    ) -> None:
        self._handles = handles
        self._emit = emit
        self._max = max_samples
        self._drop = drop
        self._log_once = log_once
        self._encoder = SeriesEncoder()
        self._last = array("q")
        # (set, lo, hi) -> (value columns, their timestamps); a slice when a frame was split.
        self._columns: dict[tuple[SeriesSet, int, int], tuple[list[Any], list[int]]] = {}
        self._singles: dict[int, tuple[list[float], list[int]]] = {}
        # Ids of the members whose column waits in this batch (the keys of _columns as ids):
        # a single of one of them flushes first. A set, as a single is checked per sample.
        self._column_ids: set[int] = set()
        self.count = 0

    def _grow(self, stop: int) -> None:
        if stop > len(self._last):
            self._last.extend(array("q", [_NEVER]) * (stop - len(self._last) + 4096))

    # -- input --------------------------------------------------------------------------------

    def add(self, frame: Frame, now_ms: int) -> None:
        horizon = now_ms + MAX_FUTURE_MS
        for series_set, values, ts in frame.sets:
            self._add_column(series_set, values, ts, horizon)
        if frame.ids:
            self._add_singles(frame.ids, frame.values, frame.stamps, horizon)

    def _add_column(self, sset: SeriesSet, values: array[float], ts: int, horizon: int) -> None:
        start, stop = sset.start, sset.stop
        n = stop - start
        if not n:
            return
        self._grow(stop)
        last = self._last
        if type(ts) is not int or ts <= 0 or ts > horizon:
            self._bad_timestamp(sset.members[0].name, ts, n)
            return
        if max(last[start:stop]) >= ts or (
            self._singles and not self._singles.keys().isdisjoint(sset.idset)
        ):
            # Some member already has this timestamp (or singles of it wait in this batch):
            # sample by sample, which keeps per-series order.
            self._add_singles(array("q", range(start, stop)), values, array("q", [ts]) * n,
                              horizon)  # fmt: skip
            return
        last[start:stop] = array("q", [ts]) * n
        if self.count and self.count + n > self._max:
            self.flush()
        lo = 0
        while lo < n:
            hi = min(n, lo + self._max - self.count)
            key = (sset, lo, hi)
            group = self._columns.get(key)
            if group is None:
                group = self._columns[key] = ([], [])
                self._column_ids.update(range(start + lo, start + hi))
            group[0].append(values if hi - lo == n else values[lo:hi])
            group[1].append(ts)
            self.count += hi - lo
            if self.count >= self._max:
                self.flush()
            lo = hi

    def _add_singles(
        self, ids: array[int], values: array[float], stamps: array[int], horizon: int
    ) -> None:
        if ids:
            self._grow(max(ids) + 1)
        last = self._last
        singles = self._singles  # flush() starts new dicts: re-read after each
        column_ids = self._column_ids if not self._column_ids.isdisjoint(ids) else None
        for sid, value, ts in zip(ids, values, stamps, strict=True):
            if ts <= last[sid]:
                self._drop("out_of_order", 1)
                name = self._name(sid)
                self._log_once(
                    f"ooo:{name}",
                    "dropping samples of %s whose timestamps do not increase "
                    "(logged once per metric)",
                    name,
                )
                continue
            if ts <= 0 or ts > horizon:
                self._bad_timestamp(self._name(sid), ts, 1)
                continue
            if column_ids is not None and sid in self._column_ids:
                self.flush()  # its set's column waits in this batch: keep the series in order
                singles = self._singles
            last[sid] = ts
            group = singles.get(sid)
            if group is None:
                singles[sid] = ([value], [ts])
            else:
                group[0].append(value)
                group[1].append(ts)
            self.count += 1
            if self.count >= self._max:
                self.flush()
                singles = self._singles

    def _name(self, sid: int) -> str:
        handle = self._handles.get(sid)
        return handle.name if handle is not None else f"series #{sid}"

    def _bad_timestamp(self, name: str, ts: object, count: int) -> None:
        self._drop("invalid_timestamp", count)
        self._log_once(f"ts:{name}", "dropping %s: timestamp %r ms is out of range", name, ts)

    # -- output -------------------------------------------------------------------------------

    def flush(self) -> None:
        """Encode what is pending as one batch and emit it."""
        if not self.count:
            return
        encoder = self._encoder
        parts: list[bytes] = []
        for (sset, lo, hi), (rows, tss) in self._columns.items():
            keys_of = functools.partial(_member_keys, sset, lo, hi)
            parts.append(encoder.encode_set((sset, lo, hi), keys_of, rows, tss))
        keys: list[bytes] = []
        counts: list[int] = []
        values: list[float] = []
        stamps: list[int] = []
        handles = self._handles
        for sid, (vals, tss) in self._singles.items():
            keys.append(handles[sid].key)
            counts.append(len(vals))
            values += vals
            stamps += tss
        count = self.count
        self._columns = {}
        self._column_ids = set()
        self._singles = {}
        self.count = 0
        if keys:
            parts.append(encoder.encode_columns(keys, counts, values, stamps))
        payload = compress(b"".join(parts))
        self._emit(Batch(payload, count))
