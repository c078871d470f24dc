"""CPU per sample of the client pipeline alone: no network, no receiver, per thread.

The synthetic collector with --series series at 10 Hz, one batch per second, sent to a
transport that answers 204 at once, in this process. After a warm-up, the CPU of the process
(getrusage) and of each thread (/proc/self/task/<tid>/schedstat) over --seconds, per sample
sent. What it isolates is the framework's own work (sampling, batching, encoding, the outbox,
the sender) without Prometheus or a socket; what it cannot remove is the host's other load, so
compare trees side by side (two processes at once) rather than one after the other.

    .venv/bin/python bench/pipeline_cpu_bench.py                      # this checkout
    PYTHONPATH=/tmp/before/base-monitoring-client .venv/bin/python bench/pipeline_cpu_bench.py

Nothing is asserted. It starts no process.
"""

from __future__ import annotations

import argparse
import resource
import sys
import threading
from collections.abc import Sequence

from base_monitoring_client.config import ClientConfig
from base_monitoring_client.pipeline import Pipeline
from base_monitoring_client.synthetic import SyntheticClient
from base_monitoring_client.transport import Outcome


class Accepting:
    """A transport whose receiver takes everything at once."""

    def post(self, body: bytes, timeout_s: float | None = None) -> Outcome:
        return Outcome(204)

    def close(self) -> None:
        pass


def process_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def thread_cpu_s() -> dict[str, float]:
    """Time on CPU of every live thread, by name (scheduler ns)."""
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            with open(f"/proc/self/task/{thread.native_id}/schedstat") as f:
                out[thread.name] = int(f.read().split()[0]) / 1e9
        except OSError:
            continue
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=15.0, help="measured window")
    ap.add_argument("--warmup", type=float, default=3.0)
    args = ap.parse_args(argv)
    config = ClientConfig(
        remote_write_url="http://127.0.0.1:9/api/v1/write",
        sample_interval_s=0.1,
        push_interval_s=1.0,
        max_samples_per_send=args.series * 10,
        instance="pipeline-bench",
    )
    pipeline = Pipeline(SyntheticClient(args.series), config, transport=Accepting())
    sent = "monitoring_client_samples_sent_total"
    pipeline.start()
    try:
        threading.Event().wait(args.warmup)
        cpu0, threads0, sent0 = process_cpu_s(), thread_cpu_s(), pipeline.metrics.get(sent)
        threading.Event().wait(args.seconds)
        cpu1, threads1, sent1 = process_cpu_s(), thread_cpu_s(), pipeline.metrics.get(sent)
    finally:
        pipeline.stop()
    n = sent1 - sent0
    per_thread = " ".join(
        f"{name}={(threads1[name] - threads0[name]) / n * 1e6:.3f}"
        for name in sorted(threads1)
        if name in threads0 and name != "MainThread"
    )
    print(f"{(cpu1 - cpu0) / n * 1e6:.3f} us/sample ({int(n)} samples; {per_thread})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
