"""CPU of the sending process per sample Prometheus stored: wattpush vs its peers, one run.

Part ``threeway``: 2000 series sampled at 10 Hz, pushed every second into one local
Prometheus, for --duration seconds after a warm-up, by
  - ours: ``base-monitoring-client --collector synthetic --series 2000``,
  - the peer: bench/prw_peer_client.py, a minimal client on ``prometheus-remote-writer``,
  - vmagent (Go): scraping the same 2000 series every 100 ms from a static exporter (a
    ``python -m http.server`` process, not counted), remote-writing every second.
CPU = Δ(utime + stime) of the sender's process from /proc/<pid>/stat over the window; samples
= what Prometheus stored for that sender's data series with timestamps inside the window,
counted back with ``count_over_time`` (self-metrics and vmagent's scrape series left out).

Part ``clients``: each client process alone at 10 Hz: cpu-rapl-client (RAPL_BACKEND=estimated,
two data series), base-monitoring-client with 50 synthetic series, gpu-nvml-client over the
fake NVML with two GPUs (bench/gpu_fake_client.py), docker-overhead-client on the test fakes
with 20 containers (bench/docker_overhead_measure_cpu.py), and a bare Python loop
waking at 10 Hz on Event.wait (the floor). For each: CPU % of one core, CPU per tick, RSS, and
the sampling jitter: |dt - 100 ms| between consecutive sample timestamps of one data series
(read back raw from Prometheus, which stores milliseconds; the bare loop's own wake times
floored to milliseconds the same way), its p50/p99/max and the ratio of p99 to the bare
loop's in the same run (to 1 ms when the bare loop's is 0: the resolution). ``--source-tree``
runs ours (threeway) and the clients from another checkout (before/after).

Nothing is asserted about timings. Every process this script starts is stopped by its PID.

    .venv/bin/python bench/client_cpu_bench.py                   # both parts, ~3 minutes
    .venv/bin/python bench/client_cpu_bench.py --parts threeway --repeats 2
    .venv/bin/python bench/client_cpu_bench.py --parts clients --client-duration 30
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from docker_overhead_measure_cpu import measure_fakes, source_pythonpath
from wattpush_testing import PrometheusProcess, free_port, stop_process

HERE = Path(__file__).resolve().parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
METRIC = "synthetic_power_watts"


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime from /proc/<pid>/stat: counted in 10 ms clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def proc_run_seconds(pid: int) -> float:
    """Time on CPU of every thread, in ns from the scheduler (/proc/<pid>/task/*/schedstat):
    exact where utime+stime is in 10 ms ticks, which is too coarse for a 0.3 % process."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # the thread ended meanwhile
    return total / 1e9


def proc_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Run:
    sender: str
    cpu_s: float  # scheduler run time
    ticks_cpu_s: float  # utime + stime
    wall_s: float
    stored: int
    expected: int
    rss_mib: float
    window: tuple[float, float] = (0.0, 0.0)  # wall-clock start and end of the window

    @property
    def us_per_sample(self) -> float:
        return self.cpu_s / self.stored * 1e6 if self.stored else float("nan")


def bin_path(name: str) -> list[str]:
    exe = Path(sys.executable).parent / name
    module = name.replace("-", "_")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", module]


def measure(
    prom: PrometheusProcess,
    sender: str,
    command: list[str],
    env: dict[str, str],
    *,
    selector: str,
    expected_per_s: float,
    warmup: float,
    duration: float,
    workdir: Path,
) -> Run:
    log_path = workdir / f"{sender.split(maxsplit=1)[0]}-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(warmup)
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{sender} exited early ({proc.returncode}): {tail}")
        wall0, t0 = time.monotonic(), time.time()
        cpu0, ticks0 = proc_run_seconds(proc.pid), proc_cpu_seconds(proc.pid)
        time.sleep(duration)
        cpu1, ticks1 = proc_run_seconds(proc.pid), proc_cpu_seconds(proc.pid)
        wall1, t1 = time.monotonic(), time.time()
        rss = proc_rss_mib(proc.pid)
        window_ms = int((t1 - t0) * 1000)
        stored, settle_deadline = -1, time.monotonic() + 30
        while time.monotonic() < settle_deadline:
            time.sleep(2.0)  # what was sampled inside the window reaches Prometheus
            result = prom.query(f"sum(count_over_time({selector}[{window_ms}ms]))", at=t1)
            now_stored = int(float(result[0]["value"][1])) if result else 0
            if now_stored == stored:
                break
            stored = now_stored
    finally:
        stop_process(proc)
    expected = round(expected_per_s * (t1 - t0))
    return Run(sender, cpu1 - cpu0, ticks1 - ticks0, wall1 - wall0, stored, expected, rss, (t0, t1))


class StaticExporter:
    """/metrics with N fixed series for vmagent to scrape: ``python -m http.server`` in its
    own process (so the bench's own threads do not slow it), stopped by its PID."""

    def __init__(self, series: int, workdir: Path) -> None:
        self.root = workdir / f"exporter-{time.monotonic_ns()}"
        self.root.mkdir()
        (self.root / "metrics").write_text(
            "".join(f'{METRIC}{{series="{i}"}} {50.0 + i % 17}\n' for i in range(series))
        )
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> StaticExporter:
        cmd = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1"]
        self.proc = subprocess.Popen(
            [*cmd, "--directory", str(self.root), str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=1).ok:
                    break
            time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            stop_process(self.proc)


def threeway(
    prom: PrometheusProcess, args: argparse.Namespace, workdir: Path, rnd: int
) -> list[Run]:
    series = args.series
    base_env = {**os.environ, "LOG_LEVEL": "warning"}
    runs: list[Run] = []
    common: dict[str, Any] = {
        "expected_per_s": series * 10,
        "warmup": args.warmup,
        "duration": args.duration,
        "workdir": workdir,
    }
    order = [
        w for w in ("ours", "ours-defaults", "peer", "vmagent") if w in args.senders.split(",")
    ]
    if rnd % 2:
        order.reverse()
    for who in order:
        if who == "ours":
            instance = f"ours-{rnd}"
            env = {
                **base_env,
                "REMOTE_WRITE_URL": prom.write_url,
                "SAMPLE_INTERVAL_S": "0.1",
                "PUSH_INTERVAL_S": "1",
                "MAX_SAMPLES_PER_SEND": str(args.max_samples_per_send),
                "INSTANCE": instance,
            }
            if args.source_tree is not None:
                env["PYTHONPATH"] = source_pythonpath(args.source_tree)
            cmd = [*bin_path("base-monitoring-client"), "--series", str(series)]
            sel = f'{METRIC}{{job="base-monitoring-client",instance="{instance}"}}'
            name = f"wattpush, MAX_SAMPLES_PER_SEND={args.max_samples_per_send}"
        elif who == "ours-defaults":
            # Only what it must be told: PUSH_INTERVAL_S, MAX_SAMPLES_PER_SEND, ... at their
            # defaults (at 2000 series a batch fills every tick: ten requests a second).
            instance = f"ours-defaults-{rnd}"
            env = {**base_env, "REMOTE_WRITE_URL": prom.write_url, "INSTANCE": instance}
            if args.source_tree is not None:
                env["PYTHONPATH"] = source_pythonpath(args.source_tree)
            cmd = [*bin_path("base-monitoring-client"), "--series", str(series)]
            sel = f'{METRIC}{{job="base-monitoring-client",instance="{instance}"}}'
            name = "wattpush, default settings"
        elif who == "peer":
            instance = f"peer-{rnd}"
            cmd = [
                sys.executable,
                str(HERE / "prw_peer_client.py"),
                f"--url={prom.write_url}",
                f"--series={series}",
                f"--instance={instance}",
            ]
            env = base_env
            sel = f'{METRIC}{{job="prw-peer",instance="{instance}"}}'
            name = "prometheus-remote-writer peer"
        else:
            vmagent = shutil.which("vmagent")
            if vmagent is None:
                print("vmagent not installed (Debian package victoria-metrics): skipped")
                continue
            job = f"vmagent-{rnd}"
            exporter = StaticExporter(series, workdir)
            config = workdir / f"{job}.yml"
            config.write_text(
                "scrape_configs:\n"
                f"  - job_name: {job}\n"
                "    scrape_interval: 100ms\n"
                "    static_configs:\n"
                f"      - targets: ['127.0.0.1:{exporter.port}']\n"
            )
            cmd = [
                vmagent,
                f"-promscrape.config={config}",
                f"-remoteWrite.url={prom.write_url}",
                "-remoteWrite.flushInterval=1s",
                "-remoteWrite.queues=1",  # one request in flight: in order, as Prometheus needs
                f"-remoteWrite.tmpDataPath={workdir / job}",
                f"-httpListenAddr=127.0.0.1:{free_port()}",
                "-loggerLevel=WARN",
            ]
            sel = f'{METRIC}{{job="{job}"}}'
            with exporter:
                runs.append(
                    measure(prom, "vmagent (Go), scraping", cmd, base_env, **common, selector=sel)
                )
            continue
        runs.append(measure(prom, name, cmd, env, **common, selector=sel))
    return runs


INTERVAL_MS = 100


def jitter_ms(stamps_ms: Sequence[int]) -> tuple[float, float, float] | None:
    """p50, p99 and max of |dt - 100 ms| between consecutive timestamps (nearest rank)."""
    ordered = sorted(stamps_ms)
    gaps = sorted(abs(b - a - INTERVAL_MS) for a, b in itertools.pairwise(ordered))
    if not gaps:
        return None

    def rank(q: float) -> float:
        return float(gaps[min(len(gaps) - 1, max(0, math.ceil(q * len(gaps)) - 1))])

    return rank(0.50), rank(0.99), float(gaps[-1])


def stored_stamps(prom: PrometheusProcess, selector: str, window: tuple[float, float]) -> list[int]:
    """Raw timestamps (ms) Prometheus stored for ``selector`` (one series) in the window."""
    result = prom.raw_samples(selector, *window)
    return [round(float(ts) * 1000) for series in result for ts, _ in series.get("values", [])]


@dataclass
class ClientRow:
    title: str
    cpu_s: float
    ticks_cpu_s: float | None  # utime+stime (not measured for the docker fakes)
    wall_s: float
    rss_mib: float
    jitter: tuple[float, float, float] | None


def clients(prom: PrometheusProcess, args: argparse.Namespace, workdir: Path) -> list[ClientRow]:
    base_env = {
        **os.environ,
        "LOG_LEVEL": "warning",
        "REMOTE_WRITE_URL": prom.write_url,
        "SAMPLE_INTERVAL_S": "0.1",
    }
    if args.source_tree is not None:
        base_env["PYTHONPATH"] = source_pythonpath(args.source_tree)
    rows: list[ClientRow] = []
    cases = [
        (
            "cpu-rapl-client, RAPL_BACKEND=estimated (2 data series)",
            [*bin_path("cpu-rapl-client")],
            {"RAPL_BACKEND": "estimated", "INSTANCE": "rapl-bench"},
            'cpu_energy_joules_total{instance="rapl-bench"}',
        ),
        (
            "base-monitoring-client --series 50",
            [*bin_path("base-monitoring-client"), "--series", "50"],
            {"INSTANCE": "synthetic50-bench"},
            f'{METRIC}{{instance="synthetic50-bench",series="0"}}',
        ),
        (
            "gpu-nvml-client, 2 GPUs of the fake NVML",
            [sys.executable, str(Path(__file__).with_name("gpu_fake_client.py"))],
            {"INSTANCE": "gpufake-bench"},
            'gpu_energy_joules_total{instance="gpufake-bench",gpu="0"}',
        ),
    ]
    for title, cmd, extra, sel in cases:
        run = measure(
            prom,
            title,
            cmd,
            {**base_env, **extra},
            selector=sel,
            expected_per_s=10,
            warmup=args.warmup,
            duration=args.client_duration,
            workdir=workdir,
        )
        stamps = stored_stamps(prom, sel, run.window)
        rows.append(
            ClientRow(title, run.cpu_s, run.ticks_cpu_s, run.wall_s, run.rss_mib, jitter_ms(stamps))
        )
    fakes = measure_fakes(
        20, args.client_duration, args.warmup, prom=prom, source_tree=args.source_tree
    )
    rows.append(
        ClientRow(
            "docker-overhead-client, 20 fake containers",
            fakes.cpu_s,
            None,
            fakes.window_s,
            fakes.rss_bytes / 2**20,
            jitter_ms(fakes.stamps_ms),
        )
    )
    rows.append(bare_loop(args, workdir))
    return rows


# The floor: wakes at 10 Hz on Event.wait and notes when (written out at SIGTERM).
BARE_LOOP = """
import signal, sys, threading, time
stop, start, tick, woke = threading.Event(), time.monotonic(), 0, []
signal.signal(signal.SIGTERM, lambda *_: stop.set())
while not stop.wait(max(0.0, start + tick * 0.1 - time.monotonic())):
    woke.append(time.time_ns())
    tick += 1
with open(sys.argv[1], "w") as out:
    out.write(" ".join(map(str, woke)))
"""


def bare_loop(args: argparse.Namespace, workdir: Path) -> ClientRow:
    """A Python process that only wakes at 10 Hz on Event.wait."""
    woke_path = workdir / f"bare-{time.monotonic_ns()}.txt"
    proc = subprocess.Popen([sys.executable, "-c", BARE_LOOP, str(woke_path)])
    try:
        time.sleep(args.warmup)
        cpu0, ticks0 = proc_run_seconds(proc.pid), proc_cpu_seconds(proc.pid)
        wall0, t0 = time.monotonic(), time.time()
        time.sleep(args.client_duration)
        cpu, ticks = proc_run_seconds(proc.pid) - cpu0, proc_cpu_seconds(proc.pid) - ticks0
        wall, t1 = time.monotonic() - wall0, time.time()
        rss = proc_rss_mib(proc.pid)
    finally:
        stop_process(proc)
    woke_ns = [int(x) for x in woke_path.read_text().split()] if woke_path.exists() else []
    # Floored to milliseconds, as a sample's timestamp is.
    stamps = [ns // 1_000_000 for ns in woke_ns if t0 * 1e9 <= ns <= t1 * 1e9]
    return ClientRow(
        "bare Python loop, Event.wait at 10 Hz (floor)", cpu, ticks, wall, rss, jitter_ms(stamps)
    )


def client_table(rows: Sequence[ClientRow]) -> str:
    bare = rows[-1].jitter
    out = []
    for r in rows:
        j = r.jitter
        ratio = "-"
        if j is not None and bare is not None:
            # Timestamps are whole milliseconds: a bare p99 of 0 means "under 1 ms".
            ratio = f"{j[1] / max(bare[1], 1.0):.2f}"
        out.append(
            [
                r.title,
                f"{r.cpu_s / r.wall_s * 100:.3f} %",
                "-" if r.ticks_cpu_s is None else f"{r.ticks_cpu_s / r.wall_s * 100:.2f} %",
                f"{r.cpu_s / (r.wall_s * 10) * 1e6:.0f} us",
                f"{r.rss_mib:.1f} MiB",
                "-" if j is None else f"{j[0]:.0f} / {j[1]:.0f} / {j[2]:.0f}",
                ratio,
            ]
        )
    headers = [
        "client",
        "CPU % of a core",
        "utime+stime",
        "CPU per tick",
        "RSS",
        "jitter p50/p99/max ms",
        "p99 / max(bare p99, 1 ms)",
    ]
    return table(headers, out)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    head = "  ".join(f"{h:<{w}}" for h, w in zip(headers, widths, strict=True))
    body = ["  ".join(f"{c!s:<{w}}" for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([head, "  ".join("-" * w for w in widths), *body])


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--parts", default="threeway,clients")
    ap.add_argument("--series", type=int, default=2000, help="threeway: series per sender")
    ap.add_argument(
        "--senders",
        default="ours,peer,vmagent",
        help="threeway: which senders (ours, ours-defaults, peer, vmagent)",
    )
    ap.add_argument("--duration", type=float, default=15.0, help="threeway window, seconds")
    ap.add_argument("--client-duration", type=float, default=60.0, help="clients window, s")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds before the window")
    ap.add_argument("--repeats", type=int, default=1, help="threeway rounds, order alternating")
    ap.add_argument(
        "--source-tree",
        type=Path,
        help="ours and the clients: run them from this checkout (e.g. `git archive` of an "
        "older commit)",
    )
    ap.add_argument(
        "--max-samples-per-send",
        type=int,
        default=20000,
        help="ours: MAX_SAMPLES_PER_SEND (default 20000: one request per second, like the peer)",
    )
    args = ap.parse_args(argv)
    parts = set(args.parts.split(","))
    if shutil.which("prometheus") is None:
        print("prometheus is not installed (make setup)")
        return 1
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f} at start; CPU = run time of the sender process (schedstat)"
    )
    with tempfile.TemporaryDirectory(prefix="wattpush-cpu-bench-") as tmp:
        workdir = Path(tmp)
        with PrometheusProcess(workdir / "prom") as prom:
            if "threeway" in parts:
                runs: list[Run] = []
                for rnd in range(args.repeats):
                    runs += threeway(prom, args, workdir, rnd)
                print(
                    f"\nthreeway: {args.series} series at 10 Hz, sent every 1 s, "
                    f"{args.duration:.0f} s window after {args.warmup:.0f} s warm-up"
                )
                by_sender: dict[str, list[Run]] = {}
                for run in runs:
                    by_sender.setdefault(run.sender, []).append(run)
                peer = by_sender.get("prometheus-remote-writer peer", [])
                peer_us = statistics.median(r.us_per_sample for r in peer) if peer else None
                rows = []
                for sender, rs in by_sender.items():
                    med = statistics.median(r.us_per_sample for r in rs)
                    rows.append(
                        [
                            sender,
                            " / ".join(f"{r.us_per_sample:.2f}" for r in rs),
                            " / ".join(
                                f"{r.ticks_cpu_s / r.stored * 1e6:.2f}" if r.stored else "-"
                                for r in rs
                            ),
                            f"{med:.2f}",
                            f"{med / peer_us:.2f}" if peer_us else "-",
                            " / ".join(f"{r.stored}/{r.expected}" for r in rs),
                            " / ".join(f"{r.cpu_s / r.wall_s * 100:.1f}" for r in rs),
                            " / ".join(f"{r.rss_mib:.0f}" for r in rs),
                        ]
                    )
                print(
                    table(
                        [
                            "sender",
                            "CPU us/sample (runs)",
                            "utime+stime",
                            "median",
                            "vs peer",
                            "stored/expected",
                            "CPU %",
                            "RSS MiB",
                        ],
                        rows,
                    )
                )
            if "clients" in parts:
                source = args.source_tree or "this checkout"
                print(
                    f"\nclients at 10 Hz, each alone, {args.client_duration:.0f} s window after "
                    f"{args.warmup:.0f} s warm-up, clients from {source}"
                )
                print(client_table(clients(prom, args, workdir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
