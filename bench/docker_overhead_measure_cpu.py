"""Measure docker-overhead-client's own CPU use at 10 Hz with N fake containers.

Runs the real console script (a subprocess) against the test fakes: an Engine API on a unix
socket serving N containers and procfs/cgroup trees with N containers, N shims, dockerd,
containerd, docker-proxy and a few hundred unrelated processes, pushing to a real Prometheus.
The client's CPU is the scheduler's run time of its threads (/proc/<pid>/task/*/schedstat)
over the measuring window,
after a warm-up.

With --real-kernel-files (root, cgroup v1 or v2 host) the container cgroups are real kernel
cgroups made under HOST_CGROUP/<controller>/wattpush-bench/ and the runtime processes are real
`sleep` processes named like the runtime, read through the real /proc; only the Engine API is
fake. That is the cost on a real host, where cgroup/proc files are kept open and pread.

    .venv/bin/python bench/docker_overhead_measure_cpu.py --containers 20 --seconds 60
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from wattpush_testing import PrometheusProcess, stop_process
from wattpush_testing.docker import FakeEngine, FakeHost, client_env


def cpu_seconds(pid: int) -> float:
    """Time on CPU of every thread, from the scheduler in ns (utime+stime counts 10 ms ticks,
    too coarse for a process using about 1 % of a core)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9


def rss_bytes(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[21]) * os.sysconf("SC_PAGE_SIZE")


def measure(pid: int, warmup: float, seconds: float) -> tuple[float, float, int]:
    time.sleep(warmup)
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_seconds(pid), time.monotonic()
    return c1 - c0, t1 - t0, rss_bytes(pid)


def synthetic_baseline(args: argparse.Namespace) -> int:
    base = Path(tempfile.mkdtemp(prefix="dkb-", dir="/tmp"))
    try:
        with PrometheusProcess(base / "prom") as prom:
            env = client_env(
                REMOTE_WRITE_URL=prom.write_url, SAMPLE_INTERVAL_S="0.1", LOG_LEVEL="warning"
            )
            series = str(args.synthetic_baseline)
            cmd = [sys.executable, "-m", "base_monitoring_client", "--series", series]
            proc = subprocess.Popen(cmd, env=env)
            try:
                used, window, rss = measure(proc.pid, args.warmup, args.seconds)
            finally:
                stop_process(proc)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(
        f"base-monitoring-client synthetic series={series} interval=0.1s window={window:.1f}s "
        f"cpu={used:.2f}s -> {used / window * 100:.2f}% of one core, rss={rss / 2**20:.1f} MiB"
    )
    return 0


def real_kernel_files(args: argparse.Namespace) -> int:
    """Real cgroups and processes; the client reads the host's /sys/fs/cgroup and /proc."""
    cg = Path("/sys/fs/cgroup")
    v2 = (cg / "cgroup.controllers").exists()
    parents = (
        [cg / "wattpush-bench"]
        if v2
        else [cg / "cpuacct" / "wattpush-bench", cg / "memory" / "wattpush-bench"]
    )
    base = Path(tempfile.mkdtemp(prefix="dkb-", dir="/tmp"))
    bindir = base / "bin"
    bindir.mkdir()
    sleep = shutil.which("sleep") or "/bin/sleep"
    procs: list[subprocess.Popen[bytes]] = []
    made: list[Path] = []
    engine = FakeEngine(base / "docker.sock")
    try:
        for name in ("dockerd", "containerd", "containerd-shim-runc-v2", "docker-proxy"):
            shutil.copy(sleep, bindir / name)

        def spawn(name: str) -> subprocess.Popen[bytes]:
            p = subprocess.Popen([str(bindir / name), "3600"])
            procs.append(p)
            return p

        spawn("dockerd")
        spawn("containerd")
        spawn("docker-proxy")
        engine.start()
        for i in range(args.containers):
            cid = f"{i:02x}" * 32
            spawn("containerd-shim-runc-v2")
            init = subprocess.Popen([sleep, "3600"])  # the container's "init"
            procs.append(init)
            for parent in parents:
                d = parent / cid
                d.mkdir(parents=True, exist_ok=True)
                made.append(d)
            (parents[-1] / cid / "cgroup.procs").write_text(str(init.pid))
            if not v2:
                (parents[0] / cid / "cgroup.procs").write_text(str(init.pid))
            engine.run(
                cid, f"bench-{i}", "wattpush/ffmpeg-runner:latest", init.pid, service="ffmpeg"
            )
            engine.containers[cid][1]["HostConfig"]["CgroupParent"] = "/wattpush-bench"
        with PrometheusProcess(base / "prom") as prom:
            env = client_env(
                REMOTE_WRITE_URL=prom.write_url,
                DOCKER_HOST=engine.docker_host,
                HOST_PROC="/proc",
                HOST_CGROUP=str(cg),
                SAMPLE_INTERVAL_S="0.1",
                LOG_LEVEL="warning",
            )
            if args.source_tree is not None:
                env["PYTHONPATH"] = source_pythonpath(args.source_tree)
            proc = subprocess.Popen([sys.executable, "-m", "docker_overhead_client"], env=env)
            try:
                used, window, rss = measure(proc.pid, args.warmup, args.seconds)
                series = prom.query("count({job='docker-overhead-client'})")
            finally:
                stop_process(proc)
    finally:
        engine.close()
        for p in procs:
            p.kill()
            p.wait()
        for d in reversed(made):
            with contextlib.suppress(OSError):
                d.rmdir()
        for parent in parents:
            with contextlib.suppress(OSError):
                parent.rmdir()
        shutil.rmtree(base, ignore_errors=True)
    print(
        f"containers={args.containers} real kernel files (cgroup v{2 if v2 else 1}) "
        f"interval=0.1s window={window:.1f}s cpu={used:.2f}s -> {used / window * 100:.2f}% of "
        f"one core, rss={rss / 2**20:.1f} MiB, "
        f"series in Prometheus={series[0]['value'][1] if series else 0}"
    )
    return 0


@dataclass
class FakesRun:
    """One measuring window of the client on the fake trees."""

    cpu_s: float  # scheduler run time of the client's threads
    window_s: float
    rss_bytes: int
    series: int  # the client's series in Prometheus
    stamps_ms: list[int]  # raw timestamps of one data series inside the window


def source_pythonpath(tree: Path) -> str:
    """PYTHONPATH that runs the clients from the checkout ``tree`` (before/after runs)."""
    components = (
        "base-monitoring-client",
        "cpu-rapl-client",
        "docker-overhead-client",
        "gpu-nvml-client",
    )
    return os.pathsep.join(str(tree / c) for c in components)


def measure_fakes(
    containers: int,
    seconds: float,
    warmup: float,
    *,
    cgroup_version: int = 2,
    other_processes: int = 300,
    prom: PrometheusProcess | None = None,
    source_tree: Path | None = None,
) -> FakesRun:
    """The client at 10 Hz on fake trees with ``containers`` containers whose counters move
    (pushing to ``prom``, or to a Prometheus of its own)."""
    base = Path(tempfile.mkdtemp(prefix="dkb-", dir="/tmp"))
    host = FakeHost(base / "host", cgroup_version)
    engine = FakeEngine(base / "docker.sock")
    engine.start()
    ids = []
    for i in range(containers):
        cid = f"{i:02x}" * 32
        ids.append(cid)
        engine.run(cid, f"bench-{i}", "wattpush/ffmpeg-runner:latest", 10_000 + i, service="ffmpeg")
        host.add_container(cid, 10_000 + i, cpu_ns=i * 1_000_000_000)
        host.add_process(
            20_000 + i, "containerd-shim", ["/usr/bin/containerd-shim-runc-v2", "-id", cid]
        )
    host.add_process(900, "dockerd", ["/usr/bin/dockerd", "-H", "fd://"])
    host.add_process(800, "containerd", ["/usr/bin/containerd"])
    host.add_process(700, "docker-proxy", ["/usr/bin/docker-proxy", "-proto", "tcp"])
    for i in range(other_processes):
        host.add_process(30_000 + i, f"worker{i % 7}", [f"/usr/bin/worker{i % 7}"])

    stop = threading.Event()

    def churn() -> None:  # counters move like on a busy host
        step = 0
        while not stop.wait(0.5):
            step += 1
            for n, cid in enumerate(ids):
                host.set_cpu(cid, (n + step) * 1_000_000_000)
                host.set_net(10_000 + n, {"eth0": (step * 1000, step * 500)})
            host.set_host_cpu(user=1000 + step, system=500 + step, idle=8000 + step)

    instance = f"fakes-{time.monotonic_ns()}"
    with contextlib.ExitStack() as stack:
        if prom is None:
            prom = stack.enter_context(PrometheusProcess(base / "prom"))
        env = client_env(
            REMOTE_WRITE_URL=prom.write_url,
            DOCKER_HOST=engine.docker_host,
            HOST_PROC=str(host.proc),
            HOST_CGROUP=str(host.cgroup),
            SAMPLE_INTERVAL_S="0.1",
            LOG_LEVEL="warning",
            INSTANCE=instance,
        )
        if source_tree is not None:
            env["PYTHONPATH"] = source_pythonpath(source_tree)
        proc = subprocess.Popen([sys.executable, "-m", "docker_overhead_client"], env=env)
        churner = threading.Thread(target=churn, name="churn")
        churner.start()
        try:
            time.sleep(warmup)
            c0, t0, w0 = cpu_seconds(proc.pid), time.monotonic(), time.time()
            time.sleep(seconds)
            c1, t1, w1 = cpu_seconds(proc.pid), time.monotonic(), time.time()
            rss = rss_bytes(proc.pid)
            time.sleep(5.0)  # the window's last samples reach Prometheus (PUSH_INTERVAL_S=4)
            series = prom.query(f"count({{instance='{instance}'}})")
            raw = prom.raw_samples(
                f'host_cpu_seconds_total{{instance="{instance}",mode="user"}}', w0, w1
            )
        finally:
            stop.set()
            churner.join()
            stop_process(proc)
            engine.close()
    shutil.rmtree(base, ignore_errors=True)
    stamps = [round(float(ts) * 1000) for r in raw for ts, _ in r.get("values", [])]
    return FakesRun(
        c1 - c0, t1 - t0, rss, int(series[0]["value"][1]) if series else 0, sorted(stamps)
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--containers", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--cgroup-version", type=int, choices=[1, 2], default=2)
    ap.add_argument("--other-processes", type=int, default=300)
    ap.add_argument("--real-kernel-files", action="store_true")
    ap.add_argument(
        "--source-tree",
        type=Path,
        help="run the client from this checkout (e.g. a `git archive` of an older commit)",
    )
    ap.add_argument(
        "--synthetic-baseline",
        type=int,
        metavar="SERIES",
        help="measure the base client's synthetic collector with this many series instead "
        "(the framework's share of the cost at the same series count)",
    )
    args = ap.parse_args()
    if args.real_kernel_files:
        return real_kernel_files(args)
    if args.synthetic_baseline:
        return synthetic_baseline(args)
    run = measure_fakes(
        args.containers,
        args.seconds,
        args.warmup,
        cgroup_version=args.cgroup_version,
        other_processes=args.other_processes,
        source_tree=args.source_tree,
    )
    print(
        f"containers={args.containers} cgroup=v{args.cgroup_version} interval=0.1s "
        f"window={run.window_s:.1f}s cpu={run.cpu_s:.2f}s -> "
        f"{run.cpu_s / run.window_s * 100:.2f}% of one core, "
        f"rss={run.rss_bytes / 2**20:.1f} MiB, series in Prometheus={run.series}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
