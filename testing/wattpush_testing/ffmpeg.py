"""Helpers shared by the ffmpeg runner's integration tests."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ffmpeg_runner.contract import MetricScore, OutputQuality

HOST = {"hostname": "test", "cpu_model": "test cpu", "cores": 2, "kernel": "6", "os": "test"}


class RecordingSink:
    """A WindowSink that remembers what the runner told it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.finals: list[list[int] | None] = []

    def begin_window(self, labels: Mapping[str, str], start_ms: int) -> None:
        self.events.append(("begin", (dict(labels), start_ms)))

    def end_window(self, end_ms: int) -> None:
        self.events.append(("end", end_ms))

    def track_stream(self, rung_labels: Sequence[Mapping[str, str]], source: Any) -> object:
        self.events.append(("track", [dict(x) for x in rung_labels]))
        return len(self.finals)

    def end_stream(self, handle: object, final_frames: Sequence[int] | None) -> None:
        self.finals.append(list(final_frames) if final_frames is not None else None)


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
