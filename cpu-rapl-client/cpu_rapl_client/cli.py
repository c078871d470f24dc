"""Console script ``cpu-rapl-client``."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

from base_monitoring_client.cli import run_client

from .client import CpuRaplClient


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    return run_client(CpuRaplClient, argv, env)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
