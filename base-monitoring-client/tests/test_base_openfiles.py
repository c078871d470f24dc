"""OpenFiles: kept-open descriptors read with pread, and what happens when the file goes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from base_monitoring_client.openfiles import OpenFiles, read_once


def test_pseudo_files_stay_open_and_are_read_fresh() -> None:
    files = OpenFiles()
    first = files.read("/proc/self/stat", 4096)
    assert first is not None and len(files) == 1  # procfs: kept open
    sum(range(200_000))  # burn a little CPU so utime can move
    again = files.read("/proc/self/stat", 4096)
    assert again is not None and again.startswith(first.split(b")")[0])
    files.forget("/proc/self/stat")
    assert len(files) == 0
    files.close()


def test_regular_files_removed_replaced_and_recreated(tmp_path: Path) -> None:
    path = tmp_path / "cpuacct.usage"
    path.write_text("100\n")
    files = OpenFiles()
    assert files.read(str(path), 64) == b"100\n"
    assert len(files) == 1
    path.write_text("250\n")  # rewritten in place: the kept descriptor sees it
    assert files.read(str(path), 64) == b"250\n"
    tmp = tmp_path / ".new"
    tmp.write_text("300\n")
    os.replace(tmp, path)  # renamed over: the old inode would still say 250
    assert files.read(str(path), 64) == b"300\n"
    path.unlink()  # an unlinked file would still read through the old descriptor
    assert files.read(str(path), 64) is None
    assert len(files) == 0
    path.write_text("5\n")  # recreated, as a restarted container's cgroup
    assert files.read(str(path), 64) == b"5\n"
    files.close()


def test_pread_raises_what_open_raises(tmp_path: Path) -> None:
    files = OpenFiles()
    path = tmp_path / "energy_uj"
    path.write_text("7\n")
    assert files.pread(str(path), 64) == b"7\n"
    path.unlink()
    with pytest.raises(FileNotFoundError):
        files.pread(str(path), 64)
    with pytest.raises(IsADirectoryError):
        files.pread(str(tmp_path), 64)
    assert len(files) == 0  # nothing that failed is kept
    files.close()


def test_a_reaped_process_is_gone_not_stale() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    path = f"/proc/{child.pid}/stat"
    files = OpenFiles()
    try:
        data = files.read(path, 4096)
        assert data is not None and data.startswith(f"{child.pid} (".encode())
        assert len(files) == 1
    finally:
        child.kill()
        child.wait()
    # The kept descriptor now fails with ESRCH; reopening finds no such process.
    assert files.read(path, 4096) is None
    assert len(files) == 0
    with pytest.raises(FileNotFoundError):
        files.pread(path, 4096)
    files.close()


def _cgroup_parent() -> tuple[Path, str] | None:
    """A cgroup directory this process may create children in, and a file every child has."""
    root = Path("/sys/fs/cgroup")
    candidates = [(root, "cpu.stat"), (root / "cpuacct", "cpuacct.usage")]
    for parent, name in candidates:
        if (parent / name).exists() and os.access(parent, os.W_OK):
            return parent, name
    return None


def test_a_removed_kernel_cgroup_is_gone_not_stale() -> None:
    found = _cgroup_parent()
    if found is None:
        pytest.skip("needs a writable cgroup hierarchy (root)")
    parent, name = found
    cgroup = parent / f"wattpush-openfiles-test-{os.getpid()}"
    try:
        cgroup.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot create a cgroup here: {exc.strerror}")
    files = OpenFiles()
    try:
        assert files.read(str(cgroup / name), 4096)
        assert len(files) == 1
    finally:
        cgroup.rmdir()
    # The kept descriptor now fails with ENODEV; reopening finds no such file.
    assert files.read(str(cgroup / name), 4096) is None
    assert len(files) == 0
    files.close()


def test_bounded_and_retained_by_path() -> None:
    files = OpenFiles(max_open=2)
    for p in ("/proc/self/stat", "/proc/self/statm", "/proc/self/status"):
        assert files.read(p, 4096)
    assert len(files) == 2
    files.retain({"/proc/self/statm"})
    assert len(files) == 1
    files.close()
    assert len(files) == 0


def test_watched_regular_files_are_checked_once_per_round(tmp_path: Path) -> None:
    a, b, c = (tmp_path / name for name in ("a", "b", "c"))
    for path in (a, b, c):
        path.write_text("1\n")
    (tmp_path / "alias").symlink_to(a)  # two paths, one inode: both must notice
    files = OpenFiles(watch=True)
    paths = [str(p) for p in (a, b, c, tmp_path / "alias")]
    files.refresh()
    assert [files.read(p, 64) for p in paths] == [b"1\n"] * 4
    a.write_text("2\n")  # in place: no event needed, the descriptor sees it
    tmp = tmp_path / ".b"
    tmp.write_text("3\n")
    os.replace(tmp, b)  # renamed over
    c.unlink()
    files.refresh()  # the round starts: b and c are forgotten, a and alias kept
    assert len(files) == 2
    assert [files.read(p, 64) for p in paths] == [b"2\n", b"3\n", None, b"2\n"]
    a.unlink()
    a.write_text("4\n")  # recreated: a new inode behind both paths
    files.refresh()
    assert files.read(paths[0], 64) == b"4\n"
    assert files.read(paths[3], 64) == b"4\n"
    files.close()


def test_a_file_replaced_between_open_and_watch_is_still_noticed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from base_monitoring_client import openfiles

    path = tmp_path / "energy_uj"
    path.write_text("1\n")
    real_watch = openfiles._Inotify.watch
    replaced: list[int] = []

    def replace_first(self: openfiles._Inotify, fd: int) -> int:
        if not replaced:  # a writer renames over the file just before the watch is added
            tmp = tmp_path / ".energy_uj"
            tmp.write_text("2\n")
            os.replace(tmp, path)
            replaced.append(fd)
        return real_watch(self, fd)

    monkeypatch.setattr(openfiles._Inotify, "watch", replace_first)
    files = OpenFiles(watch=True)
    files.refresh()
    assert files.read(str(path), 64) == b"1\n"  # read before the rename
    files.refresh()  # no event will come for the old inode
    assert files.read(str(path), 64) == b"2\n"
    tmp = tmp_path / ".energy_uj"
    tmp.write_text("3\n")
    os.replace(tmp, path)  # the reopened file is watched: this one is an event
    files.refresh()
    assert files.read(str(path), 64) == b"3\n"
    files.close()


def test_without_inotify_regular_files_fall_back_to_an_fstat_per_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from base_monitoring_client import openfiles

    def unavailable() -> None:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(openfiles, "_Inotify", unavailable)
    path = tmp_path / "memory.current"
    path.write_text("10\n")
    files = OpenFiles(watch=True)
    files.refresh()
    assert files.read(str(path), 64) == b"10\n"
    tmp = tmp_path / ".new"
    tmp.write_text("20\n")
    os.replace(tmp, path)
    assert files.read(str(path), 64) == b"20\n"  # noticed without a refresh()
    files.close()


def test_watched_pseudo_files_need_no_watch() -> None:
    files = OpenFiles(watch=True)
    files.refresh()
    assert files.read("/proc/self/stat", 4096)
    assert files.read("/proc/self/statm", 4096)
    before = len(os.listdir("/proc/self/fd"))
    files.close()
    assert len(os.listdir("/proc/self/fd")) == before - 2  # no inotify was made for them


def test_read_many_reads_in_order_and_a_reaped_process_reads_none() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    paths = ["/proc/self/stat", f"/proc/{child.pid}/stat", "/proc/self/statm"]
    sizes = [4096, 4096, 256]
    files = OpenFiles()
    try:
        for _ in range(3):  # the first call opens, the next ones read through the plan
            out = files.read_many(paths, sizes)
            assert out[0] is not None and out[0].startswith(f"{os.getpid()} (".encode())
            assert out[1] is not None and out[1].startswith(f"{child.pid} (".encode())
            assert out[2] is not None and len(out[2].split()) == 7
    finally:
        child.kill()
        child.wait()
    # The plan's pread of the dead process fails: every path is read one by one instead.
    out = files.read_many(paths, sizes)
    assert out[1] is None and out[0] is not None and out[2] is not None
    assert len(files) == 2
    assert files.read_many(paths, sizes)[1] is None
    files.close()


def test_read_many_sees_replaced_regular_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("1\n")
    b.write_text("2\n")
    paths, sizes = [str(a), str(b)], [64, 64]
    for watch in (True, False):
        files = OpenFiles(watch=watch)
        files.refresh()
        assert files.read_many(paths, sizes) == [b"1\n", b"2\n"]
        files.refresh()
        assert files.read_many(paths, sizes) == [b"1\n", b"2\n"]
        # Replaced under the kept descriptor: inotify (at refresh) or the per-read link check
        # must reopen it, plan or no plan.
        (tmp_path / "new").write_text("3\n")
        os.replace(tmp_path / "new", b)
        files.refresh()
        assert files.read_many(paths, sizes) == [b"1\n", b"3\n"]
        b.write_text("2\n")
        files.close()


def test_read_once_reads_a_prefix_and_says_none_for_a_file_that_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "stat"
    path.write_bytes(b"1234 (ffmpeg) R 1 2 3")
    assert read_once(path, 4) == b"1234"
    assert read_once(str(path)) == b"1234 (ffmpeg) R 1 2 3"
    path.unlink()
    assert read_once(path) is None
    assert read_once(tmp_path) is None  # a directory: EISDIR on read, closed, None
