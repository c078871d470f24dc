"""Remote-write benchmarks: wattpush against its peers, measured in the same run.

(a) encode + snappy per CPU-second: wattpush ``SeriesEncoder`` vs the protobuf generated
    classes (``encode_with_protobuf``) vs the ``prometheus-remote-writer`` package's own
    encode path (its protobuf classes, ``_convert_to_timeseries`` + ``_build_message``).
(b) end to end into one local Prometheus: wattpush ``Pipeline.push`` + ``flush`` vs
    ``prometheus-remote-writer``'s ``RemoteWriter.send`` in batches of 2000 samples.
(c) the ``base-monitoring-client --collector synthetic --series 50`` process pushing to that
    Prometheus at 10 Hz: CPU %, RSS, and sampling lag computed from the stored timestamps.

Prints tables to stdout and asserts nothing about timings. ``python bench/remote_write_bench.py
--help`` lists the knobs; ``--quick`` runs everything in about 20 seconds.
"""

from __future__ import annotations

import argparse
import gc
import logging
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import snappy
from base_monitoring_client import __version__ as wattpush_version
from base_monitoring_client import remote_write_pb2 as pb
from base_monitoring_client.client import MonitoringClient
from base_monitoring_client.config import ClientConfig
from base_monitoring_client.encoder import SeriesEncoder, compress, encode_with_protobuf
from base_monitoring_client.hostinfo import read_host_info
from base_monitoring_client.pipeline import Pipeline
from base_monitoring_client.sample import Sample
from google.protobuf import __version__ as protobuf_version
from google.protobuf.internal import api_implementation
from prometheus_remote_writer import RemoteWriter
from wattpush_testing import PrometheusProcess, stop_process

DEFAULTS = {"job": "bench", "instance": "bench-host"}
TICK_MS = 100
BATCH = 2000
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- workload -----------------------------------------------------------------------------------


@dataclass
class Workload:
    """Batches of BATCH samples: every tick each series gets one sample at the tick's time."""

    title: str
    metric: str
    labels: list[dict[str, str]]
    batches: list[list[Sample]]

    @property
    def samples(self) -> int:
        return sum(len(b) for b in self.batches)


def series_labels(count: int) -> list[dict[str, str]]:
    """4-6 labels per series once job and instance are added."""
    out = []
    for i in range(count):
        labels = {"host": f"node-{i % 7}", "series": str(i)}
        if i % 3 >= 1:
            labels["zone"] = ("package", "core", "uncore", "dram")[i % 4]
        if i % 3 == 2:
            labels["socket"] = str(i % 2)
        out.append(labels)
    return out


def make_workload(
    series: int,
    batches: int,
    *,
    metric: str = "bench_power_watts",
    start_ms: int = 1_795_427_169_900,
    zero_every: int = 0,
    seed: int = 1,
) -> Workload:
    rnd = random.Random(seed)
    labels = series_labels(series)
    out: list[list[Sample]] = []
    tick = 0
    current: list[Sample] = []
    while len(out) < batches:
        ts = start_ms + tick * TICK_MS
        for i, lab in enumerate(labels):
            zero = zero_every and i % zero_every == 0
            current.append(Sample(metric, lab, 0.0 if zero else rnd.uniform(1.0, 400.0), ts))
            if len(current) == BATCH:
                out.append(current)
                current = []
                if len(out) == batches:
                    break
        tick += 1
    title = f"{series} series" + (f", every {zero_every}th series 0.0" if zero_every else "")
    return Workload(title, metric, labels, out)


def grouped(encoder: SeriesEncoder, batch: list[Sample]) -> list[tuple[bytes, list[Any]]]:
    """What the pipeline's batcher hands to encode_grouped."""
    groups: dict[bytes, list[tuple[float, int]]] = {}
    for s in batch:
        groups.setdefault(encoder.series(s.name, s.labels).key, []).append(
            (s.value, s.timestamp_ms)
        )
    return list(groups.items())


def prw_items(batch: list[Sample], defaults: dict[str, str]) -> list[dict[str, Any]]:
    """The batch in prometheus-remote-writer's input format (one MetricItem per series)."""
    items: dict[tuple[str, int], dict[str, Any]] = {}
    for s in batch:
        item = items.get((s.name, id(s.labels)))
        if item is None:
            metric = {"__name__": s.name, **defaults, **s.labels}
            item = {"metric": metric, "values": [], "timestamps": []}
            items[(s.name, id(s.labels))] = item
        item["values"].append(s.value)
        item["timestamps"].append(s.timestamp_ms)
    return list(items.values())


def decoded(body: bytes) -> list[tuple[tuple[tuple[str, str], ...], list[tuple[float, int]]]]:
    request = pb.WriteRequest()
    request.ParseFromString(snappy.uncompress(body))
    return [
        (
            tuple((lab.name, lab.value) for lab in ts.labels),
            [(s.value, s.timestamp) for s in ts.samples],
        )
        for ts in request.timeseries
    ]


# -- (a) encode + compress ----------------------------------------------------------------------


def rate_per_cpu_second(fn: Callable[[Any], object], inputs: Sequence[Any], samples: int) -> float:
    gc.collect()  # start every run from the same heap state
    start = time.process_time()
    for item in inputs:
        fn(item)
    return samples / (time.process_time() - start)


Candidate = tuple[Callable[[Any], object], Sequence[Any]]


def encode_candidates(wl: Workload, writer: RemoteWriter) -> dict[str, Candidate]:
    """Each encoder with its native input for the workload's batches, checked for equality."""
    encoder = SeriesEncoder(DEFAULTS)
    groups = [grouped(encoder, b) for b in wl.batches]
    items = [prw_items(b, DEFAULTS) for b in wl.batches]

    def ours(batch: list[Sample]) -> bytes:
        return compress(encoder.encode(batch))

    def ours_grouped(batch: list[tuple[bytes, list[Any]]]) -> bytes:
        return compress(encoder.encode_grouped(batch))

    def reference(batch: list[Sample]) -> bytes:
        return compress(encode_with_protobuf(batch, DEFAULTS))

    def peer(batch_items: list[dict[str, Any]]) -> bytes:
        timeseries, _ = writer._convert_to_timeseries(batch_items)  # what its send() runs
        return bytes(writer._build_message(timeseries))  # serialise + snappy

    # Same bytes / same message before timing anything.
    first = ours(wl.batches[0])
    assert first == reference(wl.batches[0]) == ours_grouped(groups[0])
    assert decoded(peer(items[0])) == decoded(first), "peer wrote a different message"
    return {
        "wattpush encode(samples)": (ours, wl.batches),
        "wattpush encode_grouped": (ours_grouped, groups),
        "protobuf classes": (reference, wl.batches),
        "prometheus-remote-writer": (peer, items),
    }


def bench_encode(series_counts: Sequence[int], batches: int, repeats: int) -> list[list[str]]:
    workloads = [make_workload(n, batches) for n in series_counts]
    workloads.append(make_workload(200, batches, zero_every=4))
    writer = RemoteWriter("http://127.0.0.1:9/unused", sort_labels=True)
    rows = []
    for wl in workloads:
        candidates = encode_candidates(wl, writer)
        gc.freeze()  # the bench's own inputs are not what a collection should be timing
        rates: dict[str, list[float]] = {name: [] for name in candidates}
        for fn, inputs in candidates.values():
            fn(inputs[0])  # warm caches
        for _ in range(repeats):  # interleaved so machine noise hits every candidate alike
            for name, (fn, inputs) in candidates.items():
                rates[name].append(rate_per_cpu_second(fn, inputs, wl.samples))
        med = {name: statistics.median(r) for name, r in rates.items()}
        for name, value in med.items():
            rows.append(
                [
                    wl.title,
                    name,
                    f"{value / 1e6:.2f}",
                    f"{min(rates[name]) / 1e6:.2f}-{max(rates[name]) / 1e6:.2f}",
                    f"{value / med['prometheus-remote-writer']:.1f}x",
                    f"{value / med['protobuf classes']:.1f}x",
                ]
            )
    return rows


# -- (b) end to end -------------------------------------------------------------------------------


class _PushOnly(MonitoringClient):
    name = "wattpush-bench"


def stored_count(prom: PrometheusProcess, selector: str, start_s: float, end_s: float) -> int:
    window = math.ceil(end_s - start_s) + 2
    result = prom.query(f"sum(count_over_time({selector}[{window}s]))", at=end_s + 1)
    return int(float(result[0]["value"][1])) if result else 0


def push_wattpush(prom: PrometheusProcess, wl: Workload, series: int) -> tuple[float, float, str]:
    """Event-style Pipeline.push of one tick at a time, then flush: (wall s, CPU s, note)."""
    samples = [s for b in wl.batches for s in b]
    config = ClientConfig(
        remote_write_url=prom.write_url,
        push_interval_s=1.0,
        max_samples_per_send=BATCH,
        queue_capacity=len(samples) + BATCH,  # measure throughput, not the overflow policy
        instance="bench",
    )
    pipeline = Pipeline(_PushOnly(), config)
    pipeline.start()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for i in range(0, len(samples), series):
        pipeline.push(samples[i : i + series], timeout=60)
    flushed = pipeline.flush(timeout=300)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    dropped = int(pipeline.metrics.total("monitoring_client_samples_dropped_total"))
    pipeline.stop()
    return wall, cpu, ("flushed" if flushed else "FLUSH TIMED OUT") + f", {dropped} dropped"


def push_prw(prom: PrometheusProcess, wl: Workload) -> tuple[float, float, str]:
    """RemoteWriter.send of one 2000-sample batch at a time (its input prepared untimed)."""
    items = [prw_items(b, {**DEFAULTS, "job": "prw-bench"}) for b in wl.batches]
    with RemoteWriter(prom.write_url, sort_labels=True) as writer:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for batch_items in items:
            writer.send(batch_items)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return wall, cpu, "-"


def bench_end_to_end(
    prom: PrometheusProcess, total: int, series: int, repeats: int
) -> list[list[str]]:
    """Both senders get the same samples (own metric names per run), timestamps ending now."""
    batches = max(1, total // BATCH)
    ticks = math.ceil(batches * BATCH / series)
    runs: dict[str, list[tuple[float, float, str, int]]] = {"wattpush": [], "prw": []}
    for r in range(repeats):
        start_ms = int(time.time() * 1000) - ticks * TICK_MS
        for peer in ("wattpush", "prw") if r % 2 == 0 else ("prw", "wattpush"):
            metric = f"bench_{peer}_r{r}_watts"
            wl = make_workload(series, batches, metric=metric, start_ms=start_ms)
            if peer == "wattpush":
                wall, cpu, note = push_wattpush(prom, wl, series)
            else:
                wall, cpu, note = push_prw(prom, wl)
            last_ms = wl.batches[-1][-1].timestamp_ms
            stored = stored_count(prom, metric, start_ms / 1000, last_ms / 1000)
            runs[peer].append((wall, cpu, note, stored))
    count = batches * BATCH
    median_wall = {peer: statistics.median(r[0] for r in rs) for peer, rs in runs.items()}
    rows = []
    for peer, title in (
        ("wattpush", "wattpush Pipeline.push+flush"),
        ("prw", "prometheus-remote-writer send"),
    ):
        rs = runs[peer]
        rates = [count / r[0] for r in rs]
        rows.append(
            [
                title,
                f"{count}",
                f"{median_wall[peer]:.2f}",
                f"{count / median_wall[peer] / 1e3:.0f} ({min(rates) / 1e3:.0f}-"
                f"{max(rates) / 1e3:.0f})",
                f"{statistics.median(r[1] for r in rs) / count * 1e6:.2f}",
                "/".join(str(r[3]) for r in rs),
                f"{median_wall['prw'] / median_wall[peer]:.1f}x",
                "; ".join(sorted({r[2] for r in rs})),
            ]
        )
    return rows


# -- (c) the client process -------------------------------------------------------------------


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def proc_status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def grid_lags_ms(stamps_ms: Sequence[int]) -> tuple[list[int], int]:
    """Lag of each tick behind an ideal TICK_MS grid, and the number of grid points missed.

    The grid's origin is unknown; the least-late tick defines it (lag 0), so the figures are
    lags relative to the best tick (timestamps are whole milliseconds: +-1 ms).
    """
    base = stamps_ms[0]
    index = [round((t - base) / TICK_MS) for t in stamps_ms]
    offsets = [t - TICK_MS * k for t, k in zip(stamps_ms, index, strict=True)]
    origin = min(offsets)
    missed = index[-1] + 1 - len(set(index))
    return [o - origin for o in offsets], missed


def bench_client_process(
    prom: PrometheusProcess, duration: float, series: int, workdir: Path
) -> list[list[str]]:
    exe = Path(sys.executable).parent / "base-monitoring-client"
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "base_monitoring_client"]
    instance = f"bench-proc-{os.getpid()}"
    env = {
        **os.environ,
        "REMOTE_WRITE_URL": prom.write_url,
        "SAMPLE_INTERVAL_S": "0.1",
        "INSTANCE": instance,
        "LOG_LEVEL": "warning",
    }
    log_path = workdir / "client.log"  # a file, not a pipe nobody drains while it runs
    spawned = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*command, "--collector", "synthetic", "--series", str(series)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    warmup = min(5.0, duration / 4)
    rss: list[int] = []
    try:
        time.sleep(warmup)  # imports and the first push are start-up, not steady state
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"client exited early ({proc.returncode}): {tail}")
        wall0, cpu0 = time.monotonic(), proc_cpu_seconds(proc.pid)
        start_s = time.time()
        while time.monotonic() - wall0 < duration:
            rss.append(proc_status_kib(proc.pid, "VmRSS"))
            time.sleep(1.0)
        total_cpu = proc_cpu_seconds(proc.pid)
        wall, cpu = time.monotonic() - wall0, total_cpu - cpu0
        lifetime = time.monotonic() - spawned
        end_s = time.time()
        peak = proc_status_kib(proc.pid, "VmHWM")
        threads = proc_status_kib(proc.pid, "Threads")
    finally:
        exit_code = stop_process(proc)
    selector = f'synthetic_power_watts{{instance="{instance}",series="0"}}'
    values = prom.raw_samples(selector, start_s, end_s)
    stamps = sorted(round(float(t) * 1000) for t, _ in values[0]["values"]) if values else []
    lags, missed = grid_lags_ms(stamps) if stamps else ([], 0)
    total = prom.query(
        f'sum(count_over_time(synthetic_power_watts{{instance="{instance}"}}'
        f"[{int((end_s - start_s) * 1000)}ms]))",
        at=end_s,
    )
    pushed_lag = prom.query(
        f'max_over_time(monitoring_client_sampling_lag_seconds{{instance="{instance}"}}'
        f"[{int((end_s - start_s) * 1000)}ms])",
        at=end_s,
    )
    skipped = prom.query(
        f'monitoring_client_skipped_ticks_total{{instance="{instance}"}}', at=end_s + 5
    )
    return [
        ["window (steady state, after warm-up)", f"{wall:.1f} s (warm-up {warmup:.0f} s)"],
        ["CPU (utime+stime, /proc/<pid>/stat)", f"{cpu / wall * 100:.2f} % of one core"],
        ["CPU incl. start-up (whole life so far)", f"{total_cpu / lifetime * 100:.2f} %"],
        [
            "RSS (VmRSS, sampled 1/s) mean / max",
            f"{statistics.mean(rss) / 1024:.1f} / {max(rss) / 1024:.1f} MiB",
        ],
        ["RSS peak (VmHWM)", f"{peak / 1024:.1f} MiB"],
        ["threads", f"{threads}"],
        ["samples stored in window (all series)", total[0]["value"][1] if total else "0"],
        ["ticks stored for series 0 / expected", f"{len(stamps)} / ~{round(wall * 10)}"],
        [
            "sampling lag p50 / p99 / max (stored ts vs 100 ms grid)",
            f"{percentile(lags, 50):.0f} / {percentile(lags, 99):.0f} / "
            f"{max(lags, default=0):.0f} ms",
        ],
        ["grid points missing (skipped ticks) in window", f"{missed}"],
        [
            "pushed self-metric: max sampling_lag / skipped_ticks_total",
            f"{float(pushed_lag[0]['value'][1]) * 1000 if pushed_lag else float('nan'):.1f} ms / "
            f"{skipped[0]['value'][1] if skipped else '?'}",
        ],
        ["exit code after SIGTERM", f"{exit_code}"],
    ]


# -- output ---------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    line = "  ".join("-" * w for w in widths)
    fmt = ["  ".join(f"{c!s:<{w}}" for c, w in zip(r, widths, strict=True)) for r in rows]
    head = "  ".join(f"{h:<{w}}" for h, w in zip(headers, widths, strict=True))
    return "\n".join([head, line, *fmt])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--parts", default="a,b,c", help="which parts to run (default a,b,c)")
    parser.add_argument("--quick", action="store_true", help="smaller runs (about a minute)")
    parser.add_argument("--repeats", type=int, default=None, help="(a) repeats (default 7)")
    parser.add_argument("--batches", type=int, default=None, help="(a) batches per repeat")
    parser.add_argument("--series", default="50,200,500", help="(a) series counts")
    parser.add_argument("--e2e-samples", type=int, default=None, help="(b) samples per peer")
    parser.add_argument("--duration", type=float, default=None, help="(c) seconds (default 60)")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    repeats = args.repeats or (3 if args.quick else 7)
    batches = args.batches or (5 if args.quick else 20)
    e2e = args.e2e_samples or (60_000 if args.quick else 200_000)
    duration = args.duration or (15.0 if args.quick else 60.0)
    logging.basicConfig(level=logging.WARNING)

    print(f"wattpush {wattpush_version} remote-write benchmark")
    print(
        f"python {platform.python_version()}, protobuf {protobuf_version} "
        f"({api_implementation.Type()}), {os.cpu_count()} CPUs: {read_host_info().cpu_model}, "
        f"load average {os.getloadavg()[0]:.2f} at start"
    )
    print("figures are medians of interleaved repeats; other load on the machine shifts them")
    if "a" in parts:
        print(
            f"\n(a) encode + snappy, samples per CPU-second (time.process_time), batches of "
            f"{BATCH} samples, {batches} batches x {repeats} repeats; ratio = vs the peer"
        )
        rows = bench_encode([int(x) for x in args.series.split(",")], batches, repeats)
        print(
            table(
                ["workload", "encoder", "M samples/s", "range", "vs prw", "vs pb"],
                rows,
            )
        )
        print(
            "wattpush encode(samples) starts from Sample objects (it also groups by series);\n"
            "prometheus-remote-writer (prw) and encode_grouped start from samples already\n"
            "grouped per series (their native input). prw runs with sort_labels=True, as\n"
            "remote write requires; every encoder's output decodes to the same message."
        )
    if parts & {"b", "c"}:
        if shutil.which("prometheus") is None:
            print("\n(b), (c) skipped: prometheus is not installed (make setup)")
            return 0
        with (
            tempfile.TemporaryDirectory(prefix="wattpush-bench-") as tmp,
            PrometheusProcess(Path(tmp) / "prom") as prom,
        ):
            if "b" in parts:
                print(
                    f"\n(b) end to end into one local Prometheus 2.x ({prom.write_url}), "
                    f"{e2e} samples each, 200 series, median of runs"
                )
                rows = bench_end_to_end(prom, e2e, 200, 1 if args.quick else 3)
                print(
                    table(
                        [
                            "sender",
                            "samples",
                            "wall s",
                            "k samples/s (range)",
                            "CPU us/sample",
                            "stored per run",
                            "vs prw",
                            "notes",
                        ],
                        rows,
                    )
                )
                print(
                    "wall = first push to flush done (wattpush) / first to last send (prw);\n"
                    "CPU = this process, all threads; stored = samples Prometheus holds per run."
                )
            if "c" in parts:
                print(
                    f"\n(c) base-monitoring-client --collector synthetic --series 50, "
                    f"SAMPLE_INTERVAL_S=0.1, {duration:.0f} s, pushing to {prom.write_url}"
                )
                print(
                    table(["figure", "value"], bench_client_process(prom, duration, 50, Path(tmp)))
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
