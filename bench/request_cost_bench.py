"""What one remote-write request costs the client, at 2000 series and 10 Hz into a local
Prometheus: per stage thread, and the POST alone.

``stages``: the pipeline in this process (``SyntheticClient`` with --series handles, a real
Prometheus), for each MAX_SAMPLES_PER_SEND given: each stage thread's time on CPU over the
window (``/proc/self/task/<tid>/schedstat``, ns from the scheduler), per sent sample. The
difference between two batch sizes, divided by the extra requests, is the cost of a request.

``posts``: --requests encoded requests of --series series (one sample each, ~32 KB at 2000)
POSTed in a loop, CPU per request (``time.thread_time``): through ``HttpClientTransport``, and
through ``http.client`` on a connection to the same receiver, as it was sent before.

Nothing is asserted. Every process started here is stopped.

    .venv/bin/python bench/request_cost_bench.py stages --max-samples-per-send 2000,20000
    .venv/bin/python bench/request_cost_bench.py posts
    PYTHONPATH=/tmp/fw/before/base-monitoring-client .venv/bin/python \
        bench/request_cost_bench.py stages        # another checkout's framework
"""

from __future__ import annotations

import argparse
import http.client
import math
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from base_monitoring_client.config import ClientConfig
from base_monitoring_client.encoder import SeriesEncoder, compress
from base_monitoring_client.pipeline import Pipeline
from base_monitoring_client.synthetic import SyntheticClient
from wattpush_testing import PrometheusProcess


def thread_cpu_ns() -> dict[str, int]:
    out: dict[str, int] = {}
    for thread in threading.enumerate():
        try:
            stat = Path(f"/proc/self/task/{thread.native_id}/schedstat").read_text()
        except OSError:
            continue
        out[thread.name] = int(stat.split()[0])
    return out


def stages(prom: PrometheusProcess, args: argparse.Namespace) -> None:
    for max_samples in (int(x) for x in args.max_samples_per_send.split(",")):
        config = ClientConfig(
            remote_write_url=prom.write_url,
            sample_interval_s=0.1,
            push_interval_s=1.0,
            max_samples_per_send=max_samples,
            instance=f"stages-{max_samples}-{time.monotonic_ns()}",
        )
        with Pipeline(SyntheticClient(args.series), config) as pipeline:
            time.sleep(args.warmup)
            sent = "monitoring_client_samples_sent_total"
            before, sent0 = thread_cpu_ns(), pipeline.metrics.get(sent)
            requests0 = pipeline.metrics.total("monitoring_client_requests_total")
            time.sleep(args.duration)
            after, sent1 = thread_cpu_ns(), pipeline.metrics.get(sent)
            requests = pipeline.metrics.total("monitoring_client_requests_total") - requests0
        samples = sent1 - sent0
        print(f"MAX_SAMPLES_PER_SEND={max_samples}: {samples:.0f} samples, {requests:.0f} requests")
        for name in ("sampler", "batcher", "sender"):
            cpu_s = (after[name] - before[name]) / 1e9
            print(f"  {name:8s} {cpu_s * 1e3:7.1f} ms  {cpu_s / samples * 1e6:.3f} us/sample")


def bodies(series: int, count: int, start_ms: int) -> list[bytes]:
    client = SyntheticClient(series)
    client.series_table.bind({"job": "request-cost", "instance": f"posts-{start_ms}"})
    keys = [member.key for member in client.series_table.handles.values()]
    encoder = SeriesEncoder()
    return [
        compress(
            encoder.encode_columns(
                keys,
                [1] * series,
                [50.0 + math.sin(i + j) for j in range(series)],
                [start_ms + 100 * i] * series,
            )
        )
        for i in range(count)
    ]


def posts(prom: PrometheusProcess, args: argparse.Namespace) -> None:
    # Imported here: ``stages`` also runs on older trees (PYTHONPATH), which lack the module.
    from base_monitoring_client.transport import HttpClientTransport

    config = ClientConfig(remote_write_url=prom.write_url)
    transport = HttpClientTransport(config, "wattpush/bench")
    start_ms = int(time.time() * 1000) - 600_000
    for round_ in range(args.rounds):
        batch = bodies(args.series, args.requests, start_ms)
        start_ms += 100 * args.requests
        began = time.thread_time()
        for body in batch:
            assert transport.post(body).status == 204
        ours = (time.thread_time() - began) / len(batch)
        batch = bodies(args.series, args.requests, start_ms)
        start_ms += 100 * args.requests
        conn = http.client.HTTPConnection(transport._host, transport._port, timeout=10)
        began = time.thread_time()
        for body in batch:
            conn.request("POST", transport._target, body, transport._headers)
            response = conn.getresponse()
            response.read()
            assert response.status == 204
        stdlib = (time.thread_time() - began) / len(batch)
        conn.close()
        print(
            f"round {round_ + 1}: {len(batch[0])} bytes a request; CPU per POST: "
            f"HttpClientTransport {ours * 1e6:.0f} us, http.client {stdlib * 1e6:.0f} us"
        )
    transport.close()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("part", choices=["stages", "posts"])
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--max-samples-per-send", default="2000,20000", help="stages: comma list")
    ap.add_argument("--duration", type=float, default=10.0, help="stages: window, seconds")
    ap.add_argument("--warmup", type=float, default=3.0, help="stages: seconds before it")
    ap.add_argument("--requests", type=int, default=100, help="posts: requests a round")
    ap.add_argument("--rounds", type=int, default=2, help="posts: rounds")
    args = ap.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="wattpush-request-cost-") as tmp,
        PrometheusProcess(Path(tmp) / "prom") as prom,
    ):
        (stages if args.part == "stages" else posts)(prom, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
