"""Console script ``gpu-nvml-client``."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from base_monitoring_client import (
    ClientConfig,
    InvalidValue,
    MonitoringClient,
    Setting,
    parse_bool,
)
from base_monitoring_client.cli import run_client_main

from .client import GpuNvmlClient

_DEVICE_RE = re.compile(r"^(\d+|GPU-[0-9a-fA-F-]+)$")


def parse_devices(text: str) -> tuple[str, ...]:
    """``0,2`` or ``GPU-<uuid>,...``; empty means every GPU."""
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    bad = [item for item in items if not _DEVICE_RE.match(item)]
    if bad:
        raise InvalidValue(f"{', '.join(bad)} is neither a GPU index nor a GPU-<uuid>")
    return items


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "GPU_OPTIONAL",
        "false",
        parse_bool,
        "keep running idle (exit code 0) when there is no NVIDIA driver or GPU",
        "use true or false",
    ),
    Setting(
        "GPU_DEVICES",
        "",
        parse_devices,
        "GPUs to monitor: indices or UUIDs, comma-separated (empty = all)",
        "list indices or UUIDs as printed by `nvidia-smi -L`, e.g. 0,1 or GPU-5f2c...",
    ),
)


def make_client(config: ClientConfig, values: Mapping[str, Any]) -> MonitoringClient:
    return GpuNvmlClient(
        optional=bool(values.get("gpu_optional", False)),
        devices=tuple(values.get("gpu_devices", ())),
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_client_main(
        make_client,
        prog="gpu-nvml-client",
        description=(
            "Push per-GPU energy, power, utilisation and NVENC/NVDEC load read from NVML "
            "to a Prometheus remote-write receiver."
        ),
        settings=SETTINGS,
        argv=argv,
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
