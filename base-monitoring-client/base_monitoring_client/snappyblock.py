"""Snappy block format written by hand, for a set column whose request layout repeats.

A column's request differs from the previous one only in its values and timestamps: every
series' head (header, label bytes, sample prefix) is the same bytes at the same place. So its
compressed form is planned once (``ColumnPlan``): each head is a copy from the head of the
series before plus a short literal of what differs (usually one label value); each value an
8-byte literal; each timestamp a copy from the series before, as a column's members share
their timestamps. A request is then one ``struct`` pack of the plan: no compression pass over
a body of about 100 bytes of labels a series, the largest fixed cost of a request at the
default batch size (bench/README.md).

A block is a length preamble (the varint of the uncompressed size) and elements: a literal
(tag, bytes) or a copy (tag, offset back from where it stands, length). Offsets count back
from the copy itself, so streams that reference only their own bytes concatenate into one
block under one preamble: columns, and a tail compressed by the library.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import snappy

_LITERAL, _COPY1, _COPY2, _COPY4 = 0, 1, 2, 3
# A copy shorter than this costs as much as a literal of the same bytes: left in the literal.
_MIN_COPY = 4


def literal_tag(length: int) -> bytes:
    """The tag (and length bytes) of a literal of ``length`` >= 1 bytes."""
    n = length - 1
    if n < 60:
        return bytes((n << 2 | _LITERAL,))
    size = (n.bit_length() + 7) // 8  # 1-4 bytes of length follow
    return bytes(((59 + size) << 2 | _LITERAL,)) + n.to_bytes(size, "little")


def literal(data: bytes) -> bytes:
    return literal_tag(len(data)) + data if data else b""


def copy(offset: int, length: int) -> bytes:
    """Copy elements repeating ``length`` bytes from ``offset`` bytes back (64 at most each)."""
    if offset < 1:
        raise ValueError(f"a copy's offset must be at least 1, not {offset}")
    out = bytearray()
    while length > 0:
        n = min(length, 64)
        if 4 <= n <= 11 and offset < 2048:
            out += bytes(((offset >> 8) << 5 | (n - 4) << 2 | _COPY1, offset & 0xFF))
        elif offset < 1 << 16:
            out += bytes(((n - 1) << 2 | _COPY2,)) + offset.to_bytes(2, "little")
        else:
            out += bytes(((n - 1) << 2 | _COPY4,)) + offset.to_bytes(4, "little")
        length -= n
    return bytes(out)


def elements(compressed: bytes) -> memoryview:
    """A library-compressed block without its preamble: elements to append to another block."""
    pos = 0
    while compressed[pos] & 0x80:
        pos += 1
    return memoryview(compressed)[pos + 1 :]


def compressed_elements(raw: bytes | memoryview) -> memoryview:
    return elements(bytes(snappy.compress(raw)))


class _Chunk:
    """Constant bytes being built: literals as they come, adjacent copies with one offset
    merged into one."""

    def __init__(self) -> None:
        self.out = bytearray()
        self._copy: tuple[int, int] | None = None  # (offset, length) not yet written

    def copy(self, offset: int, length: int) -> None:
        if self._copy is not None and self._copy[0] == offset:
            self._copy = (offset, self._copy[1] + length)
            return
        self._flush()
        self._copy = (offset, length)

    def add(self, data: bytes) -> None:
        self._flush()
        self.out += data

    def _flush(self) -> None:
        if self._copy is not None:
            self.out += copy(*self._copy)
            self._copy = None

    def take(self) -> bytes:
        self._flush()
        out, self.out = bytes(self.out), bytearray()
        return out


def _common_prefix(a: bytes, b: bytes) -> int:
    """Length of the common start of ``a`` and ``b`` (a binary search over slices: C compares)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


class ColumnPlan:
    """The compressed elements of a column of ``len(heads)`` series holding one sample each,
    its timestamp ``ts_len`` bytes long (tag included): constant bytes with a slot for each
    value and, in the first series only, one for the timestamp.

    ``heads[i]``: series i's header, label bytes and sample prefix (0x12, length, 0x09);
    series i is its head, its value (8 bytes) and the timestamp. ``raw_size``: the bytes the
    plan stands for.

    One sample a series only (the default batch size at 2000 series): with more, a series'
    values repeat over time, which only a real compressor finds.
    """

    def __init__(self, heads: Sequence[bytes], ts_len: int):
        sizes = [len(head) + 8 + ts_len for head in heads]
        self.raw_size = sum(sizes)
        chunk = _Chunk()
        # the first series: nothing before it to copy from
        chunk.add(literal(heads[0]) + literal_tag(8 + ts_len))
        fmt = [f"<{len(chunk.out)}sd{ts_len}s"]
        args: list[Any] = [chunk.take(), 0.0, b""]
        for i in range(1, len(heads)):
            head, prev = heads[i], heads[i - 1]
            back = sizes[i - 1]  # from this series' start to the previous one's
            same = sizes[i]  # from the end of this head to the end of the previous one
            start = _common_prefix(head, prev)
            end = _common_prefix(head[start:][::-1], prev[start:][::-1])
            start = start if start >= _MIN_COPY else 0
            end = end if end >= _MIN_COPY else 0
            if start:
                chunk.copy(back, start)
            middle = head[start : len(head) - end]
            if end:
                chunk.add(literal(middle))
                chunk.copy(same, end)
                middle = b""
            # what differs in the head, when nothing is copied after it, joins the value's
            # literal: one tag fewer
            chunk.add(literal_tag(len(middle) + 8) + middle)
            const = chunk.take()
            fmt.append(f"{len(const)}sd")
            args += (const, 0.0)
            chunk.copy(same, ts_len)  # the previous series' timestamp: the same
        tail = chunk.take()
        fmt.append(f"{len(tail)}s")
        args.append(tail)
        self.struct = struct.Struct("".join(fmt))
        self.args = args
        self.size = self.struct.size

    def pack_into(self, buf: bytearray, offset: int, row: Sequence[float], ts: bytes) -> None:
        """Write the column's elements for values ``row`` (one a series) and the timestamp's
        bytes ``ts`` at ``buf[offset:]``."""
        args = self.args
        args[1] = row[0]
        args[2] = ts
        args[4::2] = row[1:]
        self.struct.pack_into(buf, offset, *args)
