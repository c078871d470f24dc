"""Disk spool: atomic segments, bounded, oldest first, damage skipped and counted."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from base_monitoring_client.errors import SpoolError
from base_monitoring_client.spool import Batch, Spool


def make_spool(path: Path, max_bytes: int = 1 << 20) -> tuple[Spool, Counter[str]]:
    drops: Counter[str] = Counter()

    def on_drop(reason: str, n: int) -> None:
        drops[reason] += n

    return Spool(path, max_bytes, on_drop), drops


def drain(spool: Spool) -> list[bytes]:
    out = []
    while (batch := spool.peek()) is not None:
        out.append(batch.payload)
        spool.remove(batch)
    return out


def test_oldest_first_and_survives_reopen(tmp_path: Path) -> None:
    spool, _ = make_spool(tmp_path)
    for i in range(5):
        spool.append(Batch(f"p{i}".encode(), 10))
    assert len(spool) == 5
    assert spool.samples == 50
    spool.close()
    reopened, _ = make_spool(tmp_path)
    reopened.append(Batch(b"p5", 10))
    assert drain(reopened) == [f"p{i}".encode() for i in range(6)]
    assert reopened.nbytes == 0


def test_truncated_segment_is_skipped_and_counted_others_kept(tmp_path: Path) -> None:
    spool, _ = make_spool(tmp_path)
    for i in range(3):
        spool.append(Batch(f"payload-{i}".encode() * 10, 7))
    spool.close()
    segments = sorted(tmp_path.glob("*.seg"))
    data = segments[1].read_bytes()
    segments[1].write_bytes(data[: len(data) // 2])
    reopened, drops = make_spool(tmp_path)
    assert drain(reopened) == [b"payload-0" * 10, b"payload-2" * 10]
    assert drops["spool_corrupt"] == 7


def test_bad_checksum_is_detected(tmp_path: Path) -> None:
    spool, drops = make_spool(tmp_path)
    spool.append(Batch(b"abcdef", 3))
    segment = next(tmp_path.glob("*.seg"))
    data = bytearray(segment.read_bytes())
    data[-1] ^= 0xFF
    segment.write_bytes(bytes(data))
    assert spool.peek() is None
    assert drops["spool_corrupt"] == 3


def test_bounded_drops_oldest_segment(tmp_path: Path) -> None:
    spool, drops = make_spool(tmp_path, max_bytes=3 * (20 + 100))
    for i in range(5):
        spool.append(Batch(bytes([i]) * 100, 4))
    assert len(spool) == 3
    assert drops["spool_full"] == 8
    assert [p[0] for p in drain(spool)] == [2, 3, 4]


def test_prepend_puts_older_batches_in_front(tmp_path: Path) -> None:
    spool, _ = make_spool(tmp_path)
    spool.append(Batch(b"new", 1))
    spool.prepend([Batch(b"old1", 1), Batch(b"old2", 1)])
    spool.close()
    reopened, _ = make_spool(tmp_path)
    assert drain(reopened) == [b"old1", b"old2", b"new"]


def test_no_temp_files_left_and_leftover_temp_removed(tmp_path: Path) -> None:
    (tmp_path / ".00000000000000000009.tmp").write_bytes(b"half written")
    spool, _ = make_spool(tmp_path)
    spool.append(Batch(b"x", 1))
    assert not list(tmp_path.glob(".*.tmp"))


def test_one_process_per_spool_dir(tmp_path: Path) -> None:
    spool, _ = make_spool(tmp_path)
    with pytest.raises(SpoolError, match="give each client its own SPOOL_DIR"):
        make_spool(tmp_path)
    spool.close()
    make_spool(tmp_path)[0].close()


def test_unwritable_dir_names_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    with pytest.raises(SpoolError, match="SPOOL_DIR="):
        make_spool(blocker / "spool")
