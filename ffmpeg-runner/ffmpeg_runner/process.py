"""One ffmpeg child: its own process group, progress and stderr read on named threads.

Stopping is layered: ``q`` on stdin (ffmpeg finishes the outputs and exits 0), then SIGTERM
to the child's process group, then SIGKILL, each after a grace period. Signals go only to the
group this object started, and only while its leader has not been reaped (so the id cannot
have been reused).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from .progress import ProgressParser, ProgressSnapshot, parse_final_frames

log = logging.getLogger(__name__)

STDERR_LINES_KEPT = 200
_PR_SET_PDEATHSIG = 1


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec hook: the child gets SIGTERM if the runner dies (even by SIGKILL), so a
    crashed runner leaves no encoder heating the machine. Linux only; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        # Runs in the forked child before exec: only async-signal-safe work here.
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the runner died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


class FfmpegProcess:
    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str,
        wake: threading.Event | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.cwd = cwd
        self.name = name
        self.wake = wake or threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._progress: ProgressSnapshot | None = None
        self._final_frames: dict[int, int] = {}
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES_KEPT)
        self._threads: list[threading.Thread] = []
        self.start_error: str | None = None
        self.escalated = False  # needed SIGTERM/SIGKILL to stop
        self._closed_streams = 0

    # -- life cycle -------------------------------------------------------------------------------

    def start(self) -> FfmpegProcess:
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self.cwd,
                start_new_session=True,  # own group: stop it without touching anything else
                # The hook makes one prctl call (no locks, no imports): safe next to threads.
                preexec_fn=_parent_death_signal(),  # noqa: PLW1509
            )
        except OSError as exc:
            self.start_error = f"cannot start {self.argv[0]}: {exc}"
            self.wake.set()
            return self
        assert self.proc.stdout is not None and self.proc.stderr is not None
        for suffix, stream, target in (
            ("progress", self.proc.stdout, self._read_progress),
            ("stderr", self.proc.stderr, self._read_stderr),
        ):
            thread = threading.Thread(
                target=target, args=(stream,), name=f"{self.name}-{suffix}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def poll(self) -> int | None:
        """Exit status (negative: killed by that signal), None while running."""
        if self.proc is None:
            return -1 if self.start_error else None
        return self.proc.poll()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float | None) -> int | None:
        if self.proc is None:
            return self.poll()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def request_quit(self) -> None:
        """Ask ffmpeg to finish (as pressing q): outputs are closed properly, exit code 0."""
        if self.proc is None or self.proc.stdin is None or not self.running():
            return
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.write(b"q")
            self.proc.stdin.flush()

    def signal_group(self, signum: int) -> bool:
        """Signal this child's process group; never anything once the leader is reaped."""
        if not self.running():
            return False
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signum)
        except ProcessLookupError:
            return False
        return True

    def stop(self, grace_s: float, *, graceful: bool = True) -> int | None:
        """Stop and reap: q (if graceful), then SIGTERM, then SIGKILL; returns the exit status."""
        stop_all([self], grace_s, graceful=graceful)
        return self.poll()

    @property
    def output_closed(self) -> bool:
        """ffmpeg closed stdout or stderr: it is exiting (or gone)."""
        with self._lock:
            return self._closed_streams > 0

    def join_readers(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)
        if self.proc is not None and self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    # -- readers ----------------------------------------------------------------------------------

    def _read_progress(self, stream: IO[bytes]) -> None:
        parser = ProgressParser()
        try:
            for raw in stream:
                snapshot = parser.feed(raw.decode("utf-8", "replace"))
                if snapshot is not None:
                    with self._lock:
                        self._progress = snapshot
        finally:
            stream.close()
            self._closed()

    def _closed(self) -> None:
        with self._lock:
            self._closed_streams += 1
        self.wake.set()

    def _read_stderr(self, stream: IO[bytes]) -> None:
        try:
            for raw in stream:
                for line in raw.decode("utf-8", "replace").replace("\r", "\n").splitlines():
                    if not line.strip():
                        continue
                    final = parse_final_frames(line)
                    with self._lock:
                        self._stderr.append(line)
                        if final is not None:
                            self._final_frames[final[0]] = final[1]
        finally:
            stream.close()
            self._closed()

    # -- results ----------------------------------------------------------------------------------

    @property
    def progress(self) -> ProgressSnapshot | None:
        with self._lock:
            return self._progress

    @property
    def final_frames(self) -> dict[int, int]:
        """Frames each output (by output file index) encoded, from ffmpeg's final statistics."""
        with self._lock:
            return dict(self._final_frames)

    def stderr_lines(self) -> list[str]:
        with self._lock:
            return list(self._stderr)

    def error_summary(self) -> str:
        """The lines ffmpeg logged as errors, else its last line."""
        if self.start_error:
            return self.start_error
        lines = self.stderr_lines()
        errors = [ln for ln in lines if "[error]" in ln or "[fatal]" in ln]
        picked = errors[-3:] if errors else lines[-1:]
        return " | ".join(ln.strip() for ln in picked) or "no message on stderr"


def _wait_all(processes: Sequence[FfmpegProcess], deadline: float) -> None:
    for process in processes:
        process.wait(max(0.0, deadline - time.monotonic()))


def stop_all(processes: Sequence[FfmpegProcess], grace_s: float, *, graceful: bool = True) -> None:
    """Stop several children together (each step for all, then one shared grace period)."""
    if graceful:
        for process in processes:
            process.request_quit()
        _wait_all(processes, time.monotonic() + grace_s)
    for signum in (signal.SIGTERM, signal.SIGKILL):
        running = [p for p in processes if p.running()]
        if not running:
            break
        for process in running:
            if graceful or signum == signal.SIGKILL:
                log.warning(
                    "%s: still running; %s to process group %s",
                    process.name,
                    signal.Signals(signum).name,
                    process.pid,
                )
            process.escalated = process.escalated or graceful or signum == signal.SIGKILL
            process.signal_group(signum)
        _wait_all(running, time.monotonic() + grace_s)
    for process in processes:
        if process.running():  # SIGKILL cannot be refused; reap it
            process.wait(None)
        process.join_readers(grace_s)
