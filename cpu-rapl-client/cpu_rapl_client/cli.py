"""Console script ``cpu-rapl-client``."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from base_monitoring_client import (
    ClientConfig,
    MonitoringClient,
    Setting,
    parse_bool,
    parse_choice,
    parse_float,
    parse_path,
)
from base_monitoring_client.cli import run_client_main

from .client import BACKENDS, CpuRaplClient
from .estimate import CpuPowerModel

SETTINGS: tuple[Setting, ...] = (
    Setting("RAPL_POWERCAP_DIR", "/sys/class/powercap", parse_path,
            "powercap root holding intel-rapl / intel-rapl-mmio / amd-rapl zones",
            "point it at /sys/class/powercap, or at a read-only bind mount of "
            "/sys/devices/virtual/powercap such as /host/powercap"),
    Setting("RAPL_BACKEND", "sysfs", parse_choice(*BACKENDS),
            "sysfs (own reader), pyjoules (needs the pyjoules extra) or estimated (model only)",
            "use sysfs unless you need pyJoules"),
    Setting("HOST_PROC", "/proc", parse_path,
            "proc root whose stat file feeds the CPU-time estimate",
            "point it at /proc or a bind mount of the host's /proc"),
    Setting("ESTIMATE_FALLBACK", "true", parse_bool,
            "estimate power from CPU time when no RAPL counter is readable (false = exit 3)",
            "use true or false"),
    Setting("ESTIMATE_IDLE_WATTS_PER_CORE", "0.74", parse_float(0.0, 1000.0),
            "estimate: watts per logical CPU when idle",
            "use watts per logical CPU between 0 and 1000, e.g. 0.74"),
    Setting("ESTIMATE_DYNAMIC_WATTS_PER_CORE", "2.76", parse_float(0.0, 1000.0),
            "estimate: extra watts per fully busy logical CPU",
            "use watts per logical CPU between 0 and 1000, e.g. 2.76"),
    Setting("RAPL_RESCAN_INTERVAL_S", "30", parse_float(0.0, 86400.0),
            "look for zones that appear (or become readable) this often; 0 = never",
            "use a number of seconds >= 0, e.g. 30"),
    Setting("RAPL_MAX_ZONE_WATTS", "1000", parse_float(positive=True, max_value=1e6),
            "a backwards step implying more power than this is a counter reset, not a wrap",
            "use a number of watts above the largest zone's peak power, e.g. 1000"),
)  # fmt: skip


def make_client(config: ClientConfig, values: Mapping[str, Any]) -> MonitoringClient:
    return CpuRaplClient(
        values["rapl_powercap_dir"],
        values["host_proc"],
        backend=values["rapl_backend"],
        estimate_fallback=values["estimate_fallback"],
        model=CpuPowerModel(
            values["estimate_idle_watts_per_core"], values["estimate_dynamic_watts_per_core"]
        ),
        rescan_interval_s=values["rapl_rescan_interval_s"],
        max_zone_watts=values["rapl_max_zone_watts"],
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_client_main(
        make_client,
        prog="cpu-rapl-client",
        description=(
            "Push CPU energy and power from RAPL powercap counters (intel-rapl, "
            "intel-rapl-mmio, amd-rapl) to a Prometheus remote-write receiver."
        ),
        settings=SETTINGS,
        argv=argv,
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
