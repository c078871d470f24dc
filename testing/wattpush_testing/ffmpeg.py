"""Helpers shared by the ffmpeg runner's integration tests."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ffmpeg_runner.contract import Accounting, MetricScore, OutputQuality

from .rapl import write_proc_stat

HOST = {"hostname": "test", "cpu_model": "test cpu", "cores": 2, "kernel": "6", "os": "test"}


class RecordingSink:
    """A WindowSink that remembers what the runner told it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.finals: list[list[int] | None] = []
        self.accounting: list[tuple[dict[str, str], Accounting, int]] = []

    def begin_window(self, labels: Mapping[str, str], start_ms: int) -> None:
        self.events.append(("begin", (dict(labels), start_ms)))

    def end_window(self, end_ms: int) -> None:
        self.events.append(("end", end_ms))

    def track_stream(self, rung_labels: Sequence[Mapping[str, str]], source: Any) -> object:
        self.events.append(("track", [dict(x) for x in rung_labels]))
        return len(self.finals)

    def end_stream(self, handle: object, final_frames: Sequence[int] | None) -> None:
        self.finals.append(list(final_frames) if final_frames is not None else None)

    def record_quality(
        self, window_labels: Mapping[str, str], outputs: Sequence[OutputQuality], ts_ms: int
    ) -> None:
        self.events.append(("quality", (dict(window_labels), list(outputs), ts_ms)))

    def record_accounting(
        self, window_labels: Mapping[str, str], accounting: Accounting, ts_ms: int
    ) -> None:
        self.accounting.append((dict(window_labels), accounting, ts_ms))


def probe_video(path: Path) -> tuple[int, int, int]:
    """(width, height, packets) of the first video stream, read by ffprobe."""
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
         "-show_entries", "stream=width,height,nb_read_packets", "-of", "json", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    stream = json.loads(done.stdout)["streams"][0]
    return int(stream["width"]), int(stream["height"]), int(stream["nb_read_packets"])


def child_pids(parent: int) -> set[int]:
    """Direct children of ``parent`` (from /proc)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent:
            pids.add(int(entry.name))
    return pids


def ffmpeg_children(parent: int) -> set[int]:
    """Children of ``parent`` that already run an ffmpeg binary (not a fork on its way to it)."""
    found = set()
    for pid in child_pids(parent):
        try:
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
        except OSError:
            continue
        if Path(argv0.decode(errors="replace")).name.startswith("ffmpeg"):
            found.add(pid)
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


REPO = Path(__file__).resolve().parents[2]


def runner_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for ``python -m ffmpeg_runner`` from the checkout."""
    env = dict(os.environ)
    paths = [str(REPO / "base-monitoring-client"), str(REPO / "ffmpeg-runner")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra or {})
    return env


def output_quality(rung: str, scores: Mapping[str, MetricScore] | None = None) -> OutputQuality:
    """A measured output of 250 frames at 790 kb/s (target 800k) with these scores."""
    return OutputQuality(
        rung=rung,
        name=rung,
        stream=0,
        target_bitrate_bps=800_000,
        achieved_bitrate_bps=790_000.0,
        size_bytes=1000,
        duration_s=10.0,
        frames=250,
        scores=dict(scores) if scores is not None else {"psnr": MetricScore(38.0, 36.0)},
    )


# -- fake /proc and cgroup trees for the process accounting ----------------------------------


def write_pid_stat(proc: Path, pid: int, utime: int, stime: int, comm: str = "ffmpeg") -> None:
    """/proc/<pid>/stat of a running process with these user and system ticks."""
    fields = ["R", "1", str(pid), str(pid), "0", "-1", "4194304", "0", "0", "0", "0"]
    fields += [str(utime), str(stime), "0", "0", "20", "0", "9", "0", "123456", "1000", "250"]
    fields += ["0"] * 30
    (proc / str(pid)).mkdir(parents=True, exist_ok=True)
    (proc / str(pid) / "stat").write_text(f"{pid} ({comm}) " + " ".join(fields) + "\n")


def fake_proc(root: Path, busy: int, idle: int, cpus: int = 2, cgroup: str = "0::/\n") -> Path:
    """A /proc with the host's ticks (busy split over user/system) and /proc/self/cgroup."""
    proc = root / "proc"
    write_proc_stat(proc, busy=busy, idle=idle, cpus=cpus)
    (proc / "self").mkdir(exist_ok=True)
    (proc / "self" / "cgroup").write_text(cgroup)
    return proc


def cgroup_v2(root: Path, path: str, usage_usec: int) -> Path:
    """A unified (v2) hierarchy with ``cpu.stat`` at ``path`` (relative, "" for the root)."""
    cgroup = root / "cgroup"
    (cgroup / path).mkdir(parents=True, exist_ok=True)
    (cgroup / "cgroup.controllers").write_text("cpu io memory pids\n")
    (cgroup / path / "cpu.stat").write_text(
        f"usage_usec {usage_usec}\nuser_usec {usage_usec // 2}\nsystem_usec 0\n"
    )
    return cgroup


def cgroup_v1(root: Path, controller_dir: str, path: str, usage_ns: int) -> Path:
    """A legacy (v1) hierarchy with ``cpuacct.usage`` under ``controller_dir``/``path``."""
    cgroup = root / "cgroup"
    (cgroup / controller_dir / path).mkdir(parents=True, exist_ok=True)
    (cgroup / controller_dir / path / "cpuacct.usage").write_text(f"{usage_ns}\n")
    (cgroup / "memory").mkdir(exist_ok=True)
    return cgroup
