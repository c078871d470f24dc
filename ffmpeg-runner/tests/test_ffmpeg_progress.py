"""Parsing ffmpeg's reports, counting window frames, and the samples the client makes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from base_monitoring_client import Sample, is_stale_marker
from ffmpeg_runner.client import RunnerClient
from ffmpeg_runner.progress import (
    ProgressEdge,
    ProgressParser,
    ProgressSnapshot,
    TimedSnapshot,
    parse_final_frames,
)
from ffmpeg_runner.runner import window_frames
from ffmpeg_runner.scenario import Scenario
from wattpush_testing import collected

# Captured from ffmpeg 5.1 (-progress pipe:1, two outputs).
PROGRESS = """frame=1
fps=0.00
stream_0_0_q=0.0
stream_1_0_q=0.0
bitrate=N/A
total_size=N/A
out_time_us=0
out_time_ms=0
out_time=00:00:00.000000
dup_frames=0
drop_frames=0
speed=N/A
progress=continue
frame=3458
fps=312.50
stream_0_0_q=-1.0
stream_1_0_q=-1.0
bitrate=N/A
total_size=N/A
out_time_us=115266667
out_time_ms=115266667
out_time=00:01:55.266667
dup_frames=2
drop_frames=7
speed= 144x
progress=end
"""


def snap(frame: int, drop: int = 0) -> ProgressSnapshot:
    return ProgressSnapshot(frame, 25.0, 1.0, drop, 0, None, False)


def test_progress_blocks_become_snapshots() -> None:
    parser = ProgressParser()
    snapshots = [s for line in PROGRESS.splitlines() if (s := parser.feed(line))]
    assert len(snapshots) == 2
    first, last = snapshots
    assert (first.frame, first.speed, first.ended) == (1, None, False)
    assert last == ProgressSnapshot(3458, 312.5, 144.0, 7, 2, 115266667, True)


def test_final_statistics_give_frames_per_output() -> None:
    line = (
        "[verbose]   Output stream #1:0 (video): 3458 frames encoded; 3458 packets muxed (1 bytes);"
    )
    assert parse_final_frames(line) == (1, 3458)
    assert parse_final_frames("[verbose]   Output stream #0:1 (audio): 9 frames encoded;") is None
    assert parse_final_frames("[info] frame=   10 fps=0.0") is None


def test_window_frames_count_only_inside_the_window(
    make_scenario: Callable[..., Scenario],
) -> None:
    scenario = make_scenario(ladder=["320x180@500k", "160x90@200k"])
    # 100 frames before the window, 350 at its end, the encoders flushed to 360 / 359.
    assert window_frames(scenario, 100.0, 350.0, {0: 360, 1: 359}) == [250, 249]
    # No statistics (killed): progress alone.
    assert window_frames(scenario, 100.0, 350.0, {}) == [250, 250]
    # Edges between two counts round to the nearest frame.
    assert window_frames(scenario, 100.4, 350.0, {}) == [250, 250]
    assert window_frames(scenario, 100.6, 350.0, {}) == [249, 249]
    assert window_frames(scenario, 0.0, 0.0, {}) == [0, 0]


def timed(t_s: float, frame: int, drop: int = 0) -> TimedSnapshot:
    return TimedSnapshot(t_s, snap(frame, drop))


def test_an_edge_is_interpolated_between_the_reports_around_it() -> None:
    edge = ProgressEdge(10.25)
    assert not edge.offer(timed(9.0, 200))
    assert not edge.offer(timed(10.0, 225, drop=2))
    assert edge.offer(timed(11.0, 250, drop=6))
    assert edge.frames == pytest.approx(231.25)  # a quarter of the way from 225 to 250
    assert edge.dropped_frames == pytest.approx(3.0)
    # Later reports change nothing: the bracket is complete.
    assert edge.offer(timed(12.0, 999))
    assert edge.frames == pytest.approx(231.25)


def test_an_edge_without_a_report_after_it_takes_the_last_one() -> None:
    # The process ended (its final report is the last) or was killed: no report follows.
    edge = ProgressEdge(10.0)
    edge.offer(timed(9.5, 240))
    assert edge.frames == 240
    # Before any report nothing was encoded.
    assert ProgressEdge(1.0).frames == 0
    # A report that arrives exactly at the edge is the count at the edge.
    exact = ProgressEdge(5.0)
    exact.offer(timed(5.0, 125))
    exact.offer(timed(6.0, 150))
    assert exact.frames == 125


def test_interpolated_edges_fix_the_stale_count_of_one_second_reports() -> None:
    # An encode at exactly 20 fps, reported once a second and ten times a second, measured
    # over [0.95, 10.05]: 9.1 s, 182 frames.
    def edge(t_s: float, period_s: float) -> ProgressEdge:
        e = ProgressEdge(t_s)
        for k in range(round(20 / period_s)):
            t = k * period_s
            e.offer(timed(t, round(20 * t)))
        return e

    for period_s in (1.0, 0.1):
        frames = edge(10.05, period_s).frames - edge(0.95, period_s).frames
        assert frames == pytest.approx(182.0, abs=1e-6)
    # The last report before each edge is 0.95 s stale at the start, 0.05 s at the end: 10 %
    # too many frames.
    end, start = edge(10.05, 1.0).before, edge(0.95, 1.0).before
    assert end is not None and start is not None
    assert end.snapshot.frame - start.snapshot.frame == 200


def by_name(samples: list[Sample], name: str) -> list[Sample]:
    return [s for s in samples if s.name == name]


def test_info_series_starts_and_ends_exactly_at_the_window_then_goes_stale() -> None:
    client = RunnerClient()
    labels = {"run_id": "r", "scenario": "s", "phase": "transcode"}
    assert collected(client, 1_000_000_000) == []
    client.begin_window(labels, 1_050)
    tick1 = collected(client, 1_100_000_000)
    assert [(s.timestamp_ms, s.value) for s in tick1] == [(1_050, 1.0), (1_100, 1.0)]
    assert [s.timestamp_ms for s in collected(client, 1_200_000_000)] == [1_200]
    client.end_window(1_234)
    assert not client.wait_idle(0)
    closing = collected(client, 1_300_000_000)
    assert [s.timestamp_ms for s in closing] == [1_234, 1_235]
    assert closing[0].value == 1.0 and is_stale_marker(closing[1].value)
    assert closing[1].labels == labels
    assert client.wait_idle(0)
    assert collected(client, 1_400_000_000) == []


def test_window_shorter_than_a_tick_still_has_start_end_and_marker() -> None:
    client = RunnerClient()
    client.begin_window({"scenario": "s"}, 2_000)
    client.end_window(2_040)
    samples = collected(client, 2_100_000_000)
    assert [s.timestamp_ms for s in samples] == [2_000, 2_040, 2_041]
    assert is_stale_marker(samples[-1].value)


def test_progress_series_per_rung_with_final_counts_and_markers() -> None:
    client = RunnerClient()
    current: list[ProgressSnapshot | None] = [None]
    rungs = [{"stream": "0", "output": "180p"}, {"stream": "0", "output": "90p"}]
    handle = client.track_stream(rungs, lambda: current[0])
    assert collected(client, 1_000_000_000) == []  # nothing reported yet
    current[0] = ProgressSnapshot(40, 20.0, 2.5, 0, 0, None, False)
    samples = collected(client, 1_100_000_000)
    assert {(s.name, s.labels["output"], s.value) for s in samples} == {
        ("ffmpeg_frames_total", "180p", 40.0), ("ffmpeg_frames_total", "90p", 40.0),
        ("ffmpeg_fps", "180p", 20.0), ("ffmpeg_fps", "90p", 20.0),
        ("ffmpeg_speed_ratio", "180p", 2.5), ("ffmpeg_speed_ratio", "90p", 2.5),
    }  # fmt: skip
    client.end_stream(handle, [52, 51])
    closing = collected(client, 1_100_000_000)  # same wall ms: timestamps still increase
    frames = by_name(closing, "ffmpeg_frames_total")
    values = sorted((s.labels["output"], s.value, s.timestamp_ms) for s in frames if not s.is_stale)
    assert values == [("180p", 52.0, 1_101), ("90p", 51.0, 1_101)]
    stale = [s for s in closing if s.is_stale]
    assert len(stale) == 6 and {s.timestamp_ms for s in stale} == {1_102}
    assert client.wait_idle(0)
    assert collected(client, 1_200_000_000) == []


def test_speed_never_reported_gets_no_marker() -> None:
    client = RunnerClient()
    handle = client.track_stream(
        [{"output": "90p"}], lambda: ProgressSnapshot(1, 0.0, None, 0, 0, None, False)
    )
    collected(client, 1_000_000_000)
    client.end_stream(handle, None)
    names = {s.name for s in collected(client, 1_100_000_000) if s.is_stale}
    assert names == {"ffmpeg_frames_total", "ffmpeg_fps"}
