"""The peer: a minimal sampling client on the prometheus-remote-writer package.

N synthetic series (the same values as base-monitoring-client's synthetic collector) sampled
every --interval seconds on a drift-free schedule, sent every --push seconds with
``RemoteWriter.send``. Runs until SIGTERM; used by bench/client_cpu_bench.py.
"""

from __future__ import annotations

import argparse
import math
import signal
import threading
import time

from prometheus_remote_writer import RemoteWriter


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--push", type=float, default=1.0)
    ap.add_argument("--instance", default="prw-peer")
    args = ap.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    base = {"__name__": "synthetic_power_watts", "job": "prw-peer", "instance": args.instance}
    items = [
        {"metric": {**base, "series": str(i)}, "values": [], "timestamps": []}
        for i in range(args.series)
    ]
    writer = RemoteWriter(args.url, sort_labels=True)
    start = time.monotonic()
    tick = 0
    next_push = start + args.push
    while not stop.wait(max(0.0, start + tick * args.interval - time.monotonic())):
        ts = time.time_ns() // 1_000_000
        for i, item in enumerate(items):
            item["values"].append(50.0 + 10.0 * math.sin(ts / 1000.0 + i))
            item["timestamps"].append(ts)
        if time.monotonic() >= next_push:
            writer.send(items)
            for item in items:
                item["values"], item["timestamps"] = [], []
            next_push += args.push
        tick = max(tick + 1, math.floor((time.monotonic() - start) / args.interval) + 1)
    rest = [item for item in items if item["values"]]
    if rest:
        writer.send(rest)


if __name__ == "__main__":
    main()
