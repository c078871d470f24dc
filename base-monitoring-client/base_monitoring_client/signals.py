"""SIGTERM and SIGINT as a request to stop: one helper for every command-line entry point."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """While inside ``with``, SIGTERM and SIGINT call ``on_signal(signum)`` instead of ending
    the process; ``received`` lists the signals that came, ``first`` the first one.

    On leaving, the previous handlers come back, or with ``ignore_after`` both signals are
    ignored: a process whose shutdown is done must not turn exit 0 into 143 on a repeated
    SIGTERM while the interpreter finalises. Outside the main thread (where Python cannot
    install handlers), or with ``install=False``, nothing is installed.
    """

    def __init__(
        self,
        on_signal: Callable[[int], None],
        *,
        install: bool = True,
        ignore_after: bool = False,
    ) -> None:
        self._on_signal = on_signal
        self._install = install
        self._ignore_after = ignore_after
        self._previous: dict[int, Any] = {}
        self.received: list[int] = []

    @property
    def installed(self) -> bool:
        """True while this object's handlers are in place (main thread, ``install=True``)."""
        return bool(self._previous)

    @property
    def first(self) -> int | None:
        return self.received[0] if self.received else None

    @property
    def first_name(self) -> str:
        """The first signal's name (``SIGTERM``); empty when none came."""
        return signal.Signals(self.received[0]).name if self.received else ""

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        self._on_signal(signum)

    def __enter__(self) -> StopSignals:
        if self._install and threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, previous in self._previous.items():
            if self._ignore_after:
                signal.signal(signum, signal.SIG_IGN)
            else:
                # None: the handler was not installed from Python; the default is the nearest.
                signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()
