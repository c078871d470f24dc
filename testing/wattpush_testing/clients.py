"""Driving a client by hand in unit tests."""

from __future__ import annotations

from base_monitoring_client.client import MonitoringClient
from base_monitoring_client.sample import Sample


def collected(client: MonitoringClient, now_ns: int) -> list[Sample]:
    """One tick of ``client``: what it set through handles, then the Samples it returned."""
    table = client.series_table
    frame = table.begin(now_ns // 1_000_000)
    returned = client.collect(now_ns)
    table.begin(0)  # later set() calls must not land in this frame
    return table.samples(frame) + list(returned or [])
