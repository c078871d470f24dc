"""``python -m docker_overhead_client`` = the docker-overhead-client console script."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
