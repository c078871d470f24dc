"""Where the test helpers used to live; kept so existing imports work.

They are in the ``wattpush_testing`` package now, which is not part of the wheel: import
from there in new code.
"""

from __future__ import annotations

from wattpush_testing.clients import collected
from wattpush_testing.receivers import (
    PrometheusProcess,
    ReceiverProcess,
    VictoriaMetricsProcess,
    free_port,
    stop_process,
    wait_until,
)

__all__ = [
    "PrometheusProcess",
    "ReceiverProcess",
    "VictoriaMetricsProcess",
    "collected",
    "free_port",
    "stop_process",
    "wait_until",
]
