"""Test support for wattpush components; not part of the wheel, never imported by a component.

Receivers on loopback ports (``receivers``), the subprocess environment (``env``), the
``processes`` fixture (``fixtures``), the fake clock (``clock``) and ``collected()`` to run
one tick of a client by hand (``clients``). Per component, imported by module: ``base``
(scripted transport), ``faults`` (misbehaving receiver, client process), ``rapl`` (powercap
trees), ``nvml`` (fake NVML), ``gpu`` (GPU client helpers), ``docker`` (fake Engine API and
host trees, answers from ``golden/docker``), ``ffmpeg`` (runner helpers). For the e2e scripts:
``gpu_check`` (e2e/gpu_check.sh's plan, dry-run GPU and summary) and ``wait_stored`` (wait
until a receiver holds the clients' samples past a run). Test folders are not packages:
helpers for tests go here, not beside the tests.
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
