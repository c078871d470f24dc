"""Disk spool: batches that cannot be sent yet, one atomic segment file per batch.

Segment layout: magic(8) | samples u32 | payload length u32 | crc32 u32 | payload, in a file
named ``<seq>.<samples>.seg`` (older versions wrote ``<seq>.seg``; both are read). A segment is
written to a temp name, fsynced and renamed, so a crash leaves either the whole segment or
none. Oldest first, by sequence number.

Nothing in the directory can stop the sender: an entry that is not a segment (a directory, a
stranger's file) or a damaged segment (truncated, empty, bad checksum) is moved to
``quarantine/`` with a counted reason, and the samples a damaged segment held (known from its
name) are counted as lost. A segment that was sent but cannot be deleted (an immutable
directory) is marked as sent in place, so that no later run sends it again.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import logging
import os
import re
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import SpoolError

log = logging.getLogger(__name__)

MAGIC = b"WPSPOOL1"
#: the magic of a segment sent but not deletable: skipped and deleted at the next start
SENT_MAGIC = b"WPSPOOLS"
_HEADER = struct.Struct("<8sIII")
SUFFIX = ".seg"
QUARANTINE_DIR = "quarantine"
_LOCK_NAME = ".lock"
_SEGMENT_RE = re.compile(r"^(-?\d+)(?:\.(\d+))?\.seg$")

#: quarantine reasons (the label of monitoring_client_spool_quarantined_total)
FOREIGN = "foreign"
DAMAGED = "damaged"


class Stored(enum.Enum):
    """What ``Spool.append`` did with a batch."""

    STORED = "stored"
    #: given up for good and counted (larger than the spool, or the oldest when full)
    DROPPED = "dropped"
    #: not written (the disk refused it): not counted, the caller decides
    FAILED = "failed"


@dataclass(slots=True)
class Batch:
    """One remote-write request body (snappy-compressed) and how many samples it carries."""

    payload: bytes
    samples: int
    seq: int | None = None  # spool sequence number when it lives in the spool

    @property
    def nbytes(self) -> int:
        return _HEADER.size + len(self.payload)


@dataclass(slots=True)
class _Segment:
    size: int  # bytes on disk
    samples: int  # -1: unknown (an old-style name whose header cannot be read)
    name: str


class Spool:
    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        on_drop: Callable[[str, int], None] = lambda reason, n: None,
        on_quarantine: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._on_drop = on_drop
        self._on_quarantine = on_quarantine
        self._lock = threading.Lock()
        self._said: set[str] = set()  # problems already logged (each once per process)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(self.directory / _LOCK_NAME, "a+b")  # noqa: SIM115 - held
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
        self._segments: dict[int, _Segment] = {}
        try:
            self._scan()
        except OSError as exc:
            self.close()
            raise SpoolError(
                f"SPOOL_DIR={self.directory}: cannot list it ({exc.strerror}); point SPOOL_DIR "
                "at a directory this user can read and write"
            ) from exc
        self._next_seq = max(self._segments, default=1 << 40) + 1
        self._bytes = sum(s.size for s in self._segments.values())

    def _scan(self) -> None:
        """Take stock of the directory: segments are kept, leftovers of a crash (temp files,
        segments marked sent) deleted, everything else moved aside."""
        for entry in os.scandir(self.directory):
            name = entry.name
            if name in (_LOCK_NAME, QUARANTINE_DIR):
                continue
            path = Path(entry.path)
            if name.startswith(".") and name.endswith(".tmp") and entry.is_file():
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            match = _SEGMENT_RE.match(name)
            if match is None or not entry.is_file(follow_symlinks=False):
                self._quarantine(path, FOREIGN, "not a spool segment")
                continue
            head = _read_head(path)
            if head[:8] == SENT_MAGIC:
                self._delete_sent(path)
                continue
            samples = int(match[2]) if match[2] is not None else _count_in(head)
            self._segments[int(match[1])] = _Segment(entry.stat().st_size, samples, name)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()

    def _path(self, seq: int, samples: int) -> Path:
        # Sequence numbers can go below zero when older batches are put in front.
        return self.directory / f"{seq:020d}.{samples}{SUFFIX}"

    @property
    def nbytes(self) -> int:
        with self._lock:
            return self._bytes

    @property
    def samples(self) -> int:
        with self._lock:
            return sum(max(0, s.samples) for s in self._segments.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._segments)

    # -- writing ----------------------------------------------------------------------------------

    def prepend(self, batches: list[Batch]) -> int:
        """Store batches that are older than everything spooled (kept in the given order);
        returns how many of their samples were stored."""
        results = self.prepend_results(batches)
        return sum(b.samples for b, r in zip(batches, results, strict=True) if r is Stored.STORED)

    def prepend_results(self, batches: list[Batch]) -> list[Stored]:
        """``prepend``, saying what became of each batch."""
        results = [self.append(batch, front=True) for batch in reversed(batches)]
        return results[::-1]

    def fits(self, batch: Batch) -> bool:
        """Whether ``batch`` can be added without dropping anything."""
        with self._lock:
            return self._bytes + batch.nbytes <= self.max_bytes

    def append(self, batch: Batch, *, front: bool = False) -> Stored:
        """Write ``batch`` as the newest segment (``front``: as the oldest); on success
        ``batch.seq`` is set. When the spool is full the oldest segments make room (dropped
        and counted); a batch put in front is itself the oldest."""
        size = batch.nbytes
        if size > self.max_bytes:
            self._on_drop("spool_full", batch.samples)
            self._say(
                "too-big",
                "a batch of %d bytes (%d samples) is larger than SPOOL_MAX_BYTES=%d: dropped; "
                "raise SPOOL_MAX_BYTES or lower MAX_SAMPLES_PER_SEND",
                size,
                batch.samples,
                self.max_bytes,
            )
            return Stored.DROPPED
        with self._lock:
            if front and self._bytes + size > self.max_bytes:
                # A batch put in front is the oldest of all: it is the one to give up.
                self._on_drop("spool_full", batch.samples)
                log.warning(
                    "spool full (SPOOL_MAX_BYTES=%d): dropped the oldest batch (%d samples)",
                    self.max_bytes,
                    batch.samples,
                )
                return Stored.DROPPED
            while self._segments and self._bytes + size > self.max_bytes:
                oldest = min(self._segments)
                segment = self._segments.pop(oldest)
                self._bytes -= segment.size
                self._discard(self.directory / segment.name)
                self._on_drop("spool_full", max(0, segment.samples))
                log.warning(
                    "spool full (SPOOL_MAX_BYTES=%d): dropped the oldest segment %d (%d samples)",
                    self.max_bytes,
                    oldest,
                    segment.samples,
                )
            if front:
                seq = min(self._segments, default=self._next_seq) - 1
            else:
                seq = self._next_seq
                self._next_seq += 1
            path = self._path(seq, batch.samples)
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
                os.replace(tmp, path)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                self._say(
                    f"write:{exc.errno}",
                    "cannot write a spool segment in %s (%s); batches stay in memory while "
                    "there is room (logged once per kind of error)",
                    self.directory,
                    exc.strerror or exc,
                )
                return Stored.FAILED
            self._segments[seq] = _Segment(size, batch.samples, path.name)
            self._bytes += size
            batch.seq = seq
            return Stored.STORED

    # -- reading and removing ---------------------------------------------------------------------

    def peek(self) -> Batch | None:
        """The oldest readable batch; damaged segments before it are moved aside and their
        samples counted as lost (``spool_corrupt``). Never raises."""
        while True:
            with self._lock:
                if not self._segments:
                    return None
                seq = min(self._segments)
                segment = self._segments[seq]
            path = self.directory / segment.name
            why = ""
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                data, why = None, "deleted by someone else"
            except OSError as exc:
                data, why = b"", f"unreadable: {exc.strerror or exc}"
            batch = None
            if data:
                batch, why = _parse(data, seq)
            elif data is not None and not why:
                why = "empty file"
            if batch is not None:
                return batch
            with self._lock:
                if self._segments.pop(seq, None) is not None:
                    self._bytes -= segment.size
            lost = max(0, segment.samples)
            self._on_drop("spool_corrupt", lost)
            count = f"{lost} samples" if segment.samples >= 0 else "an unknown number of samples"
            if data is None:
                log.error("spool segment %s vanished (%s): %s lost", path, why, count)
            else:
                self._quarantine(path, DAMAGED, f"{why}: {count} lost")

    def remove(self, batch: Batch) -> None:
        """``batch`` is sent (or given up): its segment goes. Never raises."""
        if batch.seq is None:
            return
        with self._lock:
            segment = self._segments.pop(batch.seq, None)
            if segment is not None:
                self._bytes -= segment.size
        if segment is not None:
            self._discard(self.directory / segment.name)

    def _discard(self, path: Path) -> None:
        """Delete a segment that must never be sent (again); where the directory does not let
        us (chattr +i, read-only mount), mark it as sent in place."""
        try:
            path.unlink()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            cause = exc.strerror or str(exc)
        try:
            with path.open("r+b") as f:
                f.write(SENT_MAGIC)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            self._say(
                "mark",
                "cannot delete spool segment %s (%s) nor mark it as sent (%s): a restart "
                "would send it again; make SPOOL_DIR writable",
                path,
                cause,
                exc.strerror or exc,
            )
            return
        self._say(
            "undeletable",
            "cannot delete sent spool segments in %s (%s): they are marked as sent and "
            "deleted at the next start (logged once)",
            self.directory,
            cause,
        )

    def _delete_sent(self, path: Path) -> None:
        with contextlib.suppress(OSError):
            path.unlink()

    def _quarantine(self, path: Path, reason: str, detail: str) -> None:
        """Move ``path`` into quarantine/ (counted under ``reason``); where it cannot be
        moved it is left in place and skipped."""
        self._on_quarantine(reason)
        target_dir = self.directory / QUARANTINE_DIR
        target = target_dir / path.name
        try:
            target_dir.mkdir(exist_ok=True)
            n = 1
            while target.exists():
                target = target_dir / f"{path.name}.{n}"
                n += 1
            os.replace(path, target)
        except OSError as exc:
            log.error(
                "spool: %s is %s (%s) and cannot be moved aside (%s); it is skipped",
                path,
                "damaged" if reason == DAMAGED else "not a spool segment",
                detail,
                exc.strerror or exc,
            )
            return
        log.error(
            "spool: %s is %s (%s); moved to %s",
            path,
            "damaged" if reason == DAMAGED else "not a spool segment",
            detail,
            target,
        )

    def _say(self, key: str, msg: str, *args: object) -> None:
        if key not in self._said:
            self._said.add(key)
            log.error(msg, *args)


def _read_head(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(_HEADER.size)
    except OSError:
        return b""


def _count_in(head: bytes) -> int:
    """Samples from a segment header; -1 when the header is not readable."""
    if len(head) == _HEADER.size and head[:8] == MAGIC:
        return int(_HEADER.unpack(head)[1])
    return -1


def _parse(data: bytes, seq: int) -> tuple[Batch | None, str]:
    """The batch in a segment's bytes, or None and what is wrong with them."""
    if len(data) < _HEADER.size:
        return None, f"truncated header ({len(data)} bytes)"
    magic, samples, length, crc = _HEADER.unpack_from(data)
    payload = data[_HEADER.size :]
    if magic != MAGIC:
        return None, "bad header"
    if len(payload) != length:
        return None, f"truncated ({len(payload)} of {length} payload bytes)"
    if zlib.crc32(payload) != crc:
        return None, "bad checksum"
    return Batch(payload, samples, seq), ""
