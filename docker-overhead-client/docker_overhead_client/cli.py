"""Console script ``docker-overhead-client``."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

from base_monitoring_client.cli import run_client

from .client import DockerOverheadClient


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    return run_client(DockerOverheadClient, argv, env)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
