"""Measure cpu-rapl-client's CPU and memory at 10 Hz (not a test: timings are never asserted).

    .venv/bin/python bench/rapl_measure_overhead.py [seconds]

Starts a real Prometheus and the client process (``python -m cpu_rapl_client``) against a fake
single-socket Intel tree (package, core, uncore, psys, MMIO mirror) whose counters this script
advances at 100 Hz. After a 10 s warm-up it reads utime+stime from /proc/<pid>/stat over the
measured window and VmRSS/VmHWM from /proc/<pid>/status, then stops what it started.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from wattpush_testing import PrometheusProcess, stop_process
from wattpush_testing.rapl import intel_single_socket

ROOT = Path(__file__).resolve().parents[1]

WARMUP_S = 10.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    with tempfile.TemporaryDirectory() as tmp:
        tree = intel_single_socket(Path(tmp) / "sys")
        stop = threading.Event()

        def advance() -> None:
            total = 1_000_000
            while not stop.wait(0.01):
                total += 300_000  # 30 W
                for zone in ("intel-rapl:0", "intel-rapl-mmio:0", "intel-rapl:0:0"):
                    tree.set_energy(zone, total)

        writer = threading.Thread(target=advance, name="rapl-writer", daemon=True)
        writer.start()
        with PrometheusProcess(Path(tmp) / "prom") as prom:
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(
                [str(ROOT / "base-monitoring-client"), str(ROOT / "cpu-rapl-client")]
            )
            env.update(
                RAPL_POWERCAP_DIR=str(tree.root()),
                REMOTE_WRITE_URL=prom.write_url,
                SAMPLE_INTERVAL_S="0.1",
                PUSH_INTERVAL_S="4",
                INSTANCE="overhead",
            )
            proc = subprocess.Popen(
                [sys.executable, "-m", "cpu_rapl_client"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                time.sleep(WARMUP_S)
                c0, t0 = cpu_seconds(proc.pid), time.monotonic()
                time.sleep(seconds)
                c1, t1 = cpu_seconds(proc.pid), time.monotonic()
                rss, hwm = status_kib(proc.pid, "VmRSS"), status_kib(proc.pid, "VmHWM")
                stored = prom.query("count_over_time(cpu_energy_joules_total[1h])")
            finally:
                stop_process(proc)
                stop.set()
        n = sorted(float(r["value"][1]) for r in stored)
        version = sys.version.split()[0]
        print(f"window {t1 - t0:.1f} s at 10 Hz, 4 zones (8 series), Python {version}")
        print(f"CPU: {c1 - c0:.2f} s = {100 * (c1 - c0) / (t1 - t0):.2f} % of one core")
        print(f"RSS: {rss / 1024:.1f} MiB now, {hwm / 1024:.1f} MiB peak")
        print(f"stored energy samples per series: {n}")
        print(f"exit code {proc.returncode}")


if __name__ == "__main__":
    main()
