"""Repository-wide pytest set-up: component directories on sys.path, marker handling."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
for component in (
    "base-monitoring-client",
    "cpu-rapl-client",
    "gpu-nvml-client",
    "docker-overhead-client",
    "ffmpeg-runner",
    "advisor",
):
    # The package root, and the tests folder for test helper modules (unique names, e.g.
    # base_fakes.py, because every tests folder shares one import namespace).
    for path in (str(ROOT / component), str(ROOT / component / "tests")):
        if path not in sys.path:
            sys.path.insert(0, path)
