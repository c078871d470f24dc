"""The pipeline's one life-cycle state, and the events its threads wait on."""

from __future__ import annotations

import enum
import math
import threading


class State(enum.IntEnum):
    """In order; a pipeline only moves forward."""

    NEW = 0
    RUNNING = 1
    #: stop() was called: sampling ends, the batcher sends what it holds.
    STOPPING = 2
    #: everything is in the outbox; the sender works until it is empty or the deadline passes.
    DRAINING = 3
    #: the shutdown budget is spent: the sender stops at once, the rest is spooled.
    GIVING_UP = 4
    STOPPED = 5


class Latch(threading.Event):
    """An Event that is set once and never cleared, whose ``wait`` is one lock acquire in C.

    The sampler waits on it every tick: ``Event.wait`` goes through several Python-level
    Condition methods, which cost about 30 us of CPU per wake-up on a busy host.
    """

    def __init__(self) -> None:
        super().__init__()
        self._gate = threading.Lock()
        self._gate.acquire()  # released by set(), for good
        self._guard = threading.Lock()
        self._open = False

    def set(self) -> None:
        super().set()
        with self._guard:
            if not self._open:
                self._open = True
                self._gate.release()

    def clear(self) -> None:
        raise RuntimeError("a Latch cannot be cleared")

    @property
    def gate(self) -> threading.Lock:
        """Held until set(): ``gate.acquire(True, timeout)`` is ``wait`` without a Python call
        (release it again after a True)."""
        return self._gate

    def wait(self, timeout: float | None = None) -> bool:
        if self._gate.acquire(True, -1 if timeout is None else max(0.0, timeout)):
            self._gate.release()  # open for the other waiters too
            return True
        return self.is_set()


class Lifecycle:
    def __init__(self) -> None:
        self.lock = threading.Lock()  # held by start()/stop()/push() for their checks
        self.state = State.NEW
        self.deadline = math.inf  # monotonic seconds; set when stop() starts
        self.stop_sampling = Latch()
        # Cuts a retry's backoff sleep short: at give-up, or when a drain starts while the
        # receiver is failing (one more attempt, then spool).
        self.wake_retry = threading.Event()

    def advance(self, state: State) -> None:
        self.state = max(self.state, state)
        if state >= State.STOPPING:
            self.stop_sampling.set()
        if state >= State.GIVING_UP:
            self.wake_retry.set()

    @property
    def draining(self) -> bool:
        return self.state >= State.DRAINING

    @property
    def given_up(self) -> bool:
        return self.state >= State.GIVING_UP
