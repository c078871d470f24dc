"""One ffmpeg child: its own process group, progress and stderr read on named threads.

Progress reports are kept with the monotonic time they arrived, so a window edge can be placed
between the report before it and the one after it (``edge()``). The child is reaped with
``wait4`` (never by ``Popen``): the exit status goes to ``Popen.returncode`` as Popen would set
it, and the rusage of exactly this child gives its CPU time at exit (``exit_cpu_s``, all
threads), which the window accounting uses once /proc no longer has the process.

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
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from base_monitoring_client.clock import SYSTEM_CLOCK, Clock

from .progress import (
    NO_PROGRESS,
    ProgressEdge,
    ProgressParser,
    ProgressSnapshot,
    TimedSnapshot,
    parse_final_frames,
)

log = logging.getLogger(__name__)

STDERR_LINES_KEPT = 200
# Reports kept to place an edge that is asked for just after a report arrived (the runner asks
# at the edge itself, so the bracket is among the last two).
RECENT_REPORTS_KEPT = 8
_MAX_POLL_DELAY_S = 0.05  # the reaping loop's longest pause where pidfd is missing (as Popen's)
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
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.argv = list(argv)
        self.clock = clock
        self.cwd = cwd
        self.name = name
        self.wake = wake or threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._progress: ProgressSnapshot | None = None
        self._recent: collections.deque[TimedSnapshot] = collections.deque(
            maxlen=RECENT_REPORTS_KEPT
        )
        self._edges: list[ProgressEdge] = []  # edges still waiting for the report after them
        self._reap_lock = threading.Lock()
        self.exit_cpu_s: float | None = None  # CPU time at exit (wait4's rusage), once reaped
        self._final_frames: dict[int, int] = {}
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES_KEPT)
        self._threads: list[threading.Thread] = []
        self.start_error: str | None = None
        self.escalated = False  # needed SIGTERM/SIGKILL to stop
        self._closed_streams = 0

    # -- life cycle -------------------------------------------------------------------------------

    def start(self) -> FfmpegProcess:
        # Nothing is encoded before the process exists: the anchor of an edge that comes
        # before the first report.
        self._recent.append(TimedSnapshot(self.clock.monotonic(), NO_PROGRESS))
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
        self._reap(os.WNOHANG)
        return self.proc.returncode

    def running(self) -> bool:
        return self.proc is not None and self.poll() is None

    @property
    def reaped(self) -> bool:
        """The child has exited and been reaped: its pid may name another process now."""
        return self.proc is not None and self.proc.returncode is not None

    def wait(self, timeout: float | None) -> int | None:
        """Wait up to ``timeout`` seconds (None: for ever) for the exit; the status or None."""
        if self.proc is None:
            return self.poll()
        if self.proc.returncode is None:
            self._wait_exited(timeout)
        return self.poll()

    def _reap(self, flags: int) -> bool:
        """Reap the child if it has exited (``flags=os.WNOHANG``: without blocking); True
        once reaped. ``wait4`` returns the rusage of exactly this child: its CPU time at exit
        (all threads), which /proc cannot give once the child is gone."""
        proc = self.proc
        assert proc is not None
        with self._reap_lock:
            if proc.returncode is not None:
                return True
            try:
                pid, status, usage = os.wait4(proc.pid, flags)
            except ChildProcessError:
                # Reaped behind our back (it should not happen): Popen records what it can.
                proc.poll()
                return proc.returncode is not None
            if pid == 0:
                return False
            proc.returncode = os.waitstatus_to_exitcode(status)
            self.exit_cpu_s = usage.ru_utime + usage.ru_stime
            return True

    def _wait_exited(self, timeout: float | None) -> None:
        """Block until the child has exited (not reaping it) or ``timeout`` passed: on a pidfd
        where the kernel has them, else in short pauses as ``Popen.wait`` does."""
        assert self.proc is not None
        try:
            pidfd = os.pidfd_open(self.proc.pid)
        except (AttributeError, OSError):
            pidfd = -1
        if pidfd >= 0:
            try:
                poller = select.poll()
                poller.register(pidfd, select.POLLIN)
                poller.poll(None if timeout is None else max(0, round(timeout * 1000)))
            finally:
                os.close(pidfd)
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.0005
        while not self._reap(os.WNOHANG):
            remaining = _MAX_POLL_DELAY_S if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, _MAX_POLL_DELAY_S)

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
                    timed = TimedSnapshot(self.clock.monotonic(), snapshot)
                    with self._lock:
                        self._progress = snapshot
                        self._recent.append(timed)
                        if self._edges:
                            self._edges = [e for e in self._edges if not e.offer(timed)]
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

    def edge(self, t_s: float) -> ProgressEdge:
        """A window edge at monotonic ``t_s`` (now, or just past): the report before it is
        known now; the reader thread fills in the first report after it when that arrives
        (for the end edge: the next periodic report, or the final one after ``q``)."""
        edge = ProgressEdge(t_s)
        with self._lock:
            for timed in self._recent:  # oldest first
                edge.offer(timed)
            if edge.after is None:
                self._edges.append(edge)
        return edge

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
