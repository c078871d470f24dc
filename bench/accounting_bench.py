"""The cost of the runner's process accounting per window (not a test: nothing is asserted).

    .venv/bin/python bench/accounting_bench.py [--windows N] [--rounds R] [--processes 1,4]

A window's accounting is two readings (start and end edge: /proc/stat kept open and read with
pread, /proc/<pid>/stat of each process, the cgroup's usage file inside a container) and the
arithmetic between them; the runner also places the two progress edges of each process. This
times exactly that code (``CpuAccountant`` and ``FfmpegProcess.edge``) against children that
sleep (the cost of reading a process's stat does not depend on what it does), and, in the same
run, the baseline: one plain read of /proc/stat (open, read, close). Each figure is the median
over rounds of the mean over N windows, in µs of wall time and of this thread's CPU time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from ffmpeg_runner.accounting import CpuAccountant
from ffmpeg_runner.process import FfmpegProcess, stop_all


def timed(work: Callable[[], object], count: int, rounds: int) -> tuple[float, float]:
    """(wall µs, CPU µs) per call: the median over ``rounds`` of the mean over ``count``."""
    walls, cpus = [], []
    for _ in range(rounds):
        wall0, cpu0 = time.perf_counter_ns(), time.thread_time_ns()
        for _ in range(count):
            work()
        walls.append((time.perf_counter_ns() - wall0) / count / 1000)
        cpus.append((time.thread_time_ns() - cpu0) / count / 1000)
    return statistics.median(walls), statistics.median(cpus)


def plain_proc_stat_read() -> bytes:
    fd = os.open("/proc/stat", os.O_RDONLY)
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=2000, help="windows per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--processes", default="1,4", help="ffmpeg processes per window")
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")]
    accountant = CpuAccountant.detect()
    children = [
        FfmpegProcess(["sleep", "600"], name=f"sleep{i}").start() for i in range(max(counts))
    ]
    rows: list[tuple[str, float, float]] = []
    try:
        rows.append(("baseline: one plain /proc/stat read (open, read, close)",
                     *timed(plain_proc_stat_read, args.windows, args.rounds)))  # fmt: skip
        for n in counts:
            processes = children[:n]

            def window(processes: list[FfmpegProcess] = processes) -> object:
                start = accountant.read(processes)
                return accountant.between(start, accountant.read(processes))

            def window_and_edges(processes: list[FfmpegProcess] = processes) -> object:
                now = time.monotonic()
                for process in processes:
                    process.edge(now)
                    process.edge(now)
                return window(processes)

            rows.append((f"accounting of one window, {n} process(es)",
                         *timed(window, args.windows, args.rounds)))  # fmt: skip
            rows.append((f"accounting + progress edges, {n} process(es)",
                         *timed(window_and_edges, args.windows, args.rounds)))  # fmt: skip
    finally:
        stop_all(children, 1.0, graceful=False)
        accountant.close()
    base_cpu = rows[0][2]
    print(f"# {accountant.describe()}")
    print(f"# {args.rounds} rounds x {args.windows} windows; median of the round means\n")
    print("| what | wall µs | CPU µs | CPU / the plain /proc/stat read's |")
    print("|---|---:|---:|---:|")
    for name, wall, cpu in rows:
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {cpu / base_cpu:.1f} |")


if __name__ == "__main__":
    main()
