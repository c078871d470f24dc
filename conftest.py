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
    path = str(ROOT / component)
    if path not in sys.path:
        sys.path.insert(0, path)
