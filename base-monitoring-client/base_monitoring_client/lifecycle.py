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


class Lifecycle:
    def __init__(self) -> None:
        self.lock = threading.Lock()  # held by start()/stop()/push() for their checks
        self.state = State.NEW
        self.deadline = math.inf  # monotonic seconds; set when stop() starts
        self.stop_sampling = threading.Event()
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
