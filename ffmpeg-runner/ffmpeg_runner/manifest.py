"""The results manifest ``<output-dir>/<run_id>.json``, rewritten atomically after every window.

A full disk must not cost the finished windows: beside the manifest the runner keeps a reserve
file (``.<run_id>.json.reserve``, at least twice the manifest's size) that it deletes when a
write fails for lack of space, so that the manifest with every finished window and then its
final status (``failed``, with the reason) still fit. The reserve goes when the run ends.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import re
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from base_monitoring_client.hostinfo import read_host_info

from .contract import RepeatRecord, RunManifest, SearchRecord, WindowRecord
from .errors import ManifestWriteError, OutputDirError

RUN_STATUSES = ("running", "completed", "interrupted", "failed")
# A run id names the manifest file.
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: the reserve kept beside a manifest: at least this, and at least twice the manifest
RESERVE_MIN_BYTES = 256 * 1024
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def new_run_id(now_s: float | None = None) -> str:
    """``20261123T101500Z-3f9a``: sortable by start time, unique enough per host."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now_s is None else now_s))
    return f"{stamp}-{secrets.token_hex(2)}"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def host_facts(
    proc_root: Path = Path("/proc"),
    etc_root: Path = Path("/etc"),
    sys_root: Path = Path("/sys"),
    instance: str = "",
) -> dict[str, Any]:
    """The manifest's ``host``; ``instance`` is the runner's instance label (the advisor joins a
    run's windows to that host's power series by it; in a pod the hostname is the pod's)."""
    info = read_host_info(proc_root, sys_root)
    os_name = platform.system()
    for line in _read(etc_root / "os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            os_name = line.partition("=")[2].strip().strip('"')
            break
    hostname = socket.gethostname()
    return {
        "hostname": hostname,
        "instance": instance or hostname,
        "cpu_model": info.cpu_model,
        "cores": info.cores,
        "virtualized": info.virtualized,
        "hypervisor": info.hypervisor,
        "kernel": platform.release(),
        "os": os_name,
    }


def check_output_dir(directory: Path) -> None:
    """OUTPUT_DIR must take files: refused at start with the fix, not with a traceback at the
    first window."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe.", suffix=".tmp", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputDirError(
            f"OUTPUT_DIR={directory}: cannot write there ({exc.strerror or exc}); point "
            "OUTPUT_DIR (or --output-dir) at a directory this user can write"
        ) from None


def write_json_atomic(path: Path, document: Any) -> None:
    """Write to a temp file in the same directory, fsync, then os.replace: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class Manifest:
    """The run's ``RunManifest`` (the contract's) kept on disk at ``path``: written whole and
    atomically at the start, after every window and at the end.

    A write that fails raises ``ManifestWriteError``; one that failed for lack of space and
    succeeded on the reserve raises it too (after saving): the run must end."""

    def __init__(self, path: Path, run: RunManifest) -> None:
        self.path = path
        self.run = run
        self._lock = threading.Lock()
        self.reserve_path = path.with_name(f".{path.name}.reserve")
        self._reserved = 0  # bytes of the reserve file

    @property
    def windows(self) -> list[WindowRecord]:
        return self.run.windows

    @property
    def status(self) -> str:
        return self.run.status

    def to_json(self) -> dict[str, Any]:
        return self.run.to_json()

    def add_window(self, window: WindowRecord) -> None:
        with self._lock:
            self.run.windows.append(window)
            self._write()

    def set_repeats(self, records: list[RepeatRecord]) -> None:
        """How many repeats each scenario got and why (written with the next window)."""
        with self._lock:
            self.run.repeats = records

    def set_search(self, records: Sequence[SearchRecord], started_ms: int | None = None) -> None:
        """The run's target-quality searches (``started_ms``: when their probes began, the
        run's real start), written at once."""
        with self._lock:
            self.run.search = list(records)
            if started_ms is not None:
                self.run.started_ms = started_ms
            self._write()

    def finish(self, status: str, ended_ms: int, error: str | None = None) -> None:
        """The final write (the reserve is released after it)."""
        with self._lock:
            self.run.status = status
            self.run.ended_ms = ended_ms
            if error:
                self.run.error = error
            try:
                self._write()
            finally:
                self._release_reserve()

    def write(self) -> None:
        with self._lock:
            self._write()

    def _write(self) -> None:
        document = self.run.to_json()
        try:
            write_json_atomic(self.path, document)
        except OSError as exc:
            if exc.errno not in _NO_SPACE or not self._release_reserve():
                raise ManifestWriteError(
                    f"cannot write the manifest {self.path} ({exc.strerror or exc}); it holds "
                    f"the windows written before"
                ) from None
            try:
                write_json_atomic(self.path, document)
            except OSError as again:
                raise ManifestWriteError(
                    f"the disk of {self.path} is full ({again.strerror or again}), even after "
                    "giving back the runner's reserve; the manifest holds the windows "
                    "written before"
                ) from None
            raise ManifestWriteError(
                f"the disk of {self.path} is full ({exc.strerror}): the run stops; the "
                f"windows finished so far ({len(self.run.windows)}) are in the manifest; free "
                "space in OUTPUT_DIR and run the rest again"
            ) from None
        self._keep_reserve(len(json.dumps(document, indent=2)))

    def _keep_reserve(self, manifest_bytes: int) -> None:
        """Grow the reserve to twice the manifest (never below RESERVE_MIN_BYTES)."""
        want = max(RESERVE_MIN_BYTES, 2 * manifest_bytes)
        if self._reserved >= want:
            return
        try:
            with self.reserve_path.open("ab") as f:
                os.posix_fallocate(f.fileno(), 0, want)
            self._reserved = want
        except OSError:  # no room for all of it: the next full disk may cost the last window
            with contextlib.suppress(OSError):
                self._reserved = self.reserve_path.stat().st_size

    def _release_reserve(self) -> bool:
        """Delete the reserve; True when there was one to give back."""
        had = self._reserved > 0
        with contextlib.suppress(OSError):
            self.reserve_path.unlink()
        self._reserved = 0
        return had
