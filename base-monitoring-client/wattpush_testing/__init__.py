"""Test support for wattpush components; not part of the wheel.

Receivers on loopback ports (``receivers``), the subprocess environment (``env``), the
``processes`` fixture (``fixtures``), the fake clock (``clock``) and ``collected()`` to run
one tick of a client by hand (``clients``).
"""

from __future__ import annotations

from .clients import collected
from .clock import FakeClock
from .env import process_env
from .receivers import (
    PrometheusProcess,
    ReceiverProcess,
    VictoriaMetricsProcess,
    free_port,
    stop_process,
    wait_until,
)

__all__ = [
    "FakeClock",
    "PrometheusProcess",
    "ReceiverProcess",
    "VictoriaMetricsProcess",
    "collected",
    "free_port",
    "process_env",
    "stop_process",
    "wait_until",
]
