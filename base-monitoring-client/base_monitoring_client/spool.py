"""Disk spool: batches that cannot be sent yet, one atomic segment file per batch.

Segment layout: magic(8) | samples u32 | payload length u32 | crc32 u32 | payload.
A segment is written to a temp name, fsynced and renamed, so a crash leaves either the whole
segment or none. A damaged segment (truncated, bad checksum) is skipped and counted; the
others are kept. Oldest first, by sequence number in the file name.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import SpoolError

log = logging.getLogger(__name__)

MAGIC = b"WPSPOOL1"
_HEADER = struct.Struct("<8sIII")
SUFFIX = ".seg"


@dataclass(slots=True)
class Batch:
    """One remote-write request body (snappy-compressed) and how many samples it carries."""

    payload: bytes
    samples: int
    seq: int | None = None  # spool sequence number when it lives in the spool

    @property
    def nbytes(self) -> int:
        return _HEADER.size + len(self.payload)


class Spool:
    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        on_drop: Callable[[str, int], None] = lambda reason, n: None,
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._on_drop = on_drop
        self._lock = threading.Lock()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(self.directory / ".lock", "a+b")  # noqa: SIM115 - held open
        except OSError as exc:
            raise SpoolError(
                f"SPOOL_DIR={self.directory}: cannot create or open it ({exc.strerror}); "
                "point SPOOL_DIR at a directory this user can write, or unset it"
            ) from exc
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._lock_file.close()
            raise SpoolError(
                f"SPOOL_DIR={self.directory} is in use by another client process; "
                "give each client its own SPOOL_DIR"
            ) from exc
        for stale_tmp in self.directory.glob(".*.tmp"):
            stale_tmp.unlink(missing_ok=True)
        # seq -> (bytes on disk, samples or -1 when the header is not read yet)
        self._segments: dict[int, tuple[int, int]] = {}
        for path in self.directory.glob("*" + SUFFIX):
            try:
                seq = int(path.stem)
            except ValueError:
                continue
            self._segments[seq] = (path.stat().st_size, self._read_count(path))
        self._next_seq = max(self._segments, default=1 << 40) + 1
        self._bytes = sum(size for size, _ in self._segments.values())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()

    @staticmethod
    def _read_count(path: Path) -> int:
        try:
            with path.open("rb") as f:
                head = f.read(_HEADER.size)
            if len(head) == _HEADER.size and head[:8] == MAGIC:
                return int(_HEADER.unpack(head)[1])
        except OSError:
            pass
        return 0

    def _path(self, seq: int) -> Path:
        # Sequence numbers can go below zero when older batches are put in front.
        return self.directory / f"{seq:020d}{SUFFIX}"

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes

    @property
    def samples(self) -> int:
        with self._lock:
            return sum(max(0, n) for _, n in self._segments.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._segments)

    def prepend(self, batches: list[Batch]) -> None:
        """Store batches that are older than everything spooled (kept in the given order)."""
        for batch in reversed(batches):
            with self._lock:
                seq = min(self._segments, default=self._next_seq) - 1
            self.append(batch, seq=seq)

    def append(self, batch: Batch, seq: int | None = None) -> None:
        size = batch.nbytes
        if size > self.max_bytes:
            self._on_drop("spool_full", batch.samples)
            log.error(
                "a batch of %d bytes is larger than SPOOL_MAX_BYTES=%d; dropped. "
                "Raise SPOOL_MAX_BYTES or lower MAX_SAMPLES_PER_SEND",
                size,
                self.max_bytes,
            )
            return
        with self._lock:
            if seq is not None and self._bytes + size > self.max_bytes:
                # A batch put in front is the oldest of all: it is the one to give up.
                self._on_drop("spool_full", batch.samples)
                log.warning("spool full (SPOOL_MAX_BYTES=%d): dropped oldest batch", self.max_bytes)
                return
            while self._segments and self._bytes + size > self.max_bytes:
                oldest = min(self._segments)
                old_size, old_samples = self._segments.pop(oldest)
                self._bytes -= old_size
                self._path(oldest).unlink(missing_ok=True)
                self._on_drop("spool_full", max(0, old_samples))
                log.warning(
                    "spool full (SPOOL_MAX_BYTES=%d): dropped oldest segment %d (%d samples)",
                    self.max_bytes,
                    oldest,
                    old_samples,
                )
            if seq is None:
                seq = self._next_seq
                self._next_seq += 1
            tmp = self.directory / f".{seq:020d}.tmp"
            header = _HEADER.pack(
                MAGIC, batch.samples, len(batch.payload), zlib.crc32(batch.payload)
            )
            try:
                with tmp.open("wb") as f:
                    f.write(header)
                    f.write(batch.payload)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self._path(seq))
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                self._on_drop("spool_write_error", batch.samples)
                log.error("cannot write spool segment in %s: %s", self.directory, exc.strerror)
                return
            self._segments[seq] = (size, batch.samples)
            self._bytes += size

    def peek(self) -> Batch | None:
        """The oldest readable batch (damaged segments before it are removed and counted)."""
        while True:
            with self._lock:
                if not self._segments:
                    return None
                seq = min(self._segments)
            path = self._path(seq)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                data = b""
            except OSError as exc:
                log.error("cannot read spool segment %s: %s", path, exc.strerror)
                data = b""
            batch = self._parse(data, seq)
            if batch is not None:
                return batch
            with self._lock:
                entry = self._segments.pop(seq, None)
                if entry is not None:
                    self._bytes -= entry[0]
            path.unlink(missing_ok=True)
            lost = max(0, entry[1]) if entry else 0
            self._on_drop("spool_corrupt", lost)
            log.error("spool segment %s is damaged (truncated or bad checksum); skipped", path)

    @staticmethod
    def _parse(data: bytes, seq: int) -> Batch | None:
        if len(data) < _HEADER.size:
            return None
        magic, samples, length, crc = _HEADER.unpack_from(data)
        payload = data[_HEADER.size :]
        if magic != MAGIC or len(payload) != length or zlib.crc32(payload) != crc:
            return None
        return Batch(payload, samples, seq)

    def remove(self, batch: Batch) -> None:
        if batch.seq is None:
            return
        with self._lock:
            entry = self._segments.pop(batch.seq, None)
            if entry is not None:
                self._bytes -= entry[0]
        self._path(batch.seq).unlink(missing_ok=True)
