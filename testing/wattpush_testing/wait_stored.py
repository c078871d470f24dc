"""Wait until a receiver holds the clients' samples past a run's last window.

The advisor reads each energy counter on both sides of a window's edges; clients push every
PUSH_INTERVAL_S, so right after a batch the last window's end may not be stored yet. This
polls (bounded) instead of sleeping a guess:

    python -m wattpush_testing.wait_stored --prometheus-url URL --manifest results/RUN.json \\
        --energy cpu [--energy gpu] [--timeout 60]

``--energy`` names the energy counters of the series contract (cpu: cpu-rapl-client's, gpu:
gpu-nvml-client's). Exit 0 once each has a sample stamped after the last window's end, 1
(naming what is missing) when the time runs out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from base_monitoring_client import contract

POLL_S = 0.25
ENERGY = {"cpu": contract.CPU_ENERGY.name, "gpu": contract.GPU_ENERGY.name}


def last_window_end_s(manifest: Path) -> float:
    windows = json.loads(manifest.read_text()).get("windows") or []
    if not windows:
        raise SystemExit(f"wait_stored: {manifest} lists no window")
    return max(int(w["end_ms"]) for w in windows) / 1000.0


def newest_sample_s(prometheus_url: str, metric: str) -> float | None:
    """The newest stored timestamp of ``metric`` (None: none yet, or the receiver is down)."""
    query = urllib.parse.urlencode({"query": f"max(timestamp({metric}))"})
    try:
        with urllib.request.urlopen(f"{prometheus_url}/api/v1/query?{query}", timeout=10) as r:
            result = json.load(r)["data"]["result"]
    except (OSError, urllib.error.URLError, ValueError, KeyError):
        return None
    return float(result[0]["value"][1]) if result else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wattpush_testing.wait_stored", description=__doc__)
    parser.add_argument("--prometheus-url", required=True)
    parser.add_argument("--manifest", required=True, type=Path)
    parser.add_argument("--energy", action="append", required=True, choices=sorted(ENERGY))
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    end_s = last_window_end_s(args.manifest)
    deadline = time.monotonic() + args.timeout
    while True:
        newest = {ENERGY[e]: newest_sample_s(args.prometheus_url, ENERGY[e]) for e in args.energy}
        behind = [m for m, t in newest.items() if t is None or t <= end_s]
        if not behind:
            return 0
        if time.monotonic() >= deadline:
            print(
                f"wait_stored: after {args.timeout:g} s, {args.prometheus_url} holds no sample "
                f"after the last window's end ({end_s:.3f}) of: {', '.join(behind)}; check the "
                "clients' logs",
                file=sys.stderr,
            )
            return 1
        time.sleep(POLL_S)


if __name__ == "__main__":
    sys.exit(main())
