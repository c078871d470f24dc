"""The window sink on series handles: the exact samples of each frame the client fills, and
handles released once a window, stream or quality value has ended (no network)."""

from __future__ import annotations

import threading
import time

from base_monitoring_client import ClientConfig, is_stale_marker
from base_monitoring_client.encoder import decode
from base_monitoring_client.pipeline import Pipeline
from base_monitoring_client.transport import Outcome
from ffmpeg_runner.client import RunnerClient
from ffmpeg_runner.contract import (
    FPS_METRIC,
    FRAMES_METRIC,
    INFO_METRIC,
    WINDOW_CPU_METRIC,
    Accounting,
)
from ffmpeg_runner.progress import ProgressSnapshot
from wattpush_testing import wait_until
from wattpush_testing.ffmpeg import output_quality

Point = tuple[str, str, float, int]  # metric, the label that tells series apart, value, ms


def tick(client: RunnerClient, now_ms: int, key: str = "phase") -> list[Point]:
    """One sampler tick by hand: what the client set in the tick's frame, in order."""
    table = client.series_table
    frame = table.begin(now_ms)
    assert client.collect(now_ms * 1_000_000) is None  # everything goes through handles
    table.begin(0)
    assert not frame.sets
    out = []
    for sid, value, ts in zip(frame.ids, frame.values, frame.stamps, strict=True):
        handle = table.handles[sid]
        out.append((handle.name, handle.labels.get(key, ""), value, ts))
    return out


def interned(client: RunnerClient) -> int:
    """The runner's series that still have a handle under their name and labels."""
    return sum(name.startswith("ffmpeg_") for name, _ in client.series_table._interned)


def held(client: RunnerClient) -> int:
    """Handles of the runner's series (the pipeline's self-metrics have theirs too)."""
    handles = list(client.series_table.handles.values())
    return sum(h.name.startswith("ffmpeg_") for h in handles)


def test_window_edges_are_exact_and_the_marker_follows_1_ms_later() -> None:
    client = RunnerClient()
    client.begin_window({"phase": "baseline"}, 1_050)
    assert tick(client, 1_100) == [
        (INFO_METRIC, "baseline", 1.0, 1_050),
        (INFO_METRIC, "baseline", 1.0, 1_100),
    ]
    assert tick(client, 1_200) == [(INFO_METRIC, "baseline", 1.0, 1_200)]
    client.end_window(1_250)
    client.begin_window({"phase": "transcode"}, 1_260)  # before the tick that closes the first
    closing = tick(client, 1_300)
    assert closing[0] == (INFO_METRIC, "baseline", 1.0, 1_250)
    assert closing[1][:2] == (INFO_METRIC, "baseline") and closing[1][3] == 1_251
    assert is_stale_marker(closing[1][2])
    assert closing[2:] == [
        (INFO_METRIC, "transcode", 1.0, 1_260),
        (INFO_METRIC, "transcode", 1.0, 1_300),
    ]
    # An end on a tick's millisecond: that tick's sample is the end; the marker 1 ms later.
    client.end_window(1_300)
    ((name, phase, value, ts),) = tick(client, 1_400)
    assert (name, phase, ts) == (INFO_METRIC, "transcode", 1_301) and is_stale_marker(value)
    assert tick(client, 1_500) == []
    assert interned(client) == 0  # both windows' handles released


def test_a_window_shorter_than_a_tick_and_one_closed_at_its_start() -> None:
    client = RunnerClient()
    client.begin_window({"phase": "a"}, 2_000)
    client.end_window(2_040)
    got = tick(client, 2_100, "phase")
    assert [(p[3], is_stale_marker(p[2])) for p in got] == [
        (2_000, False),
        (2_040, False),
        (2_041, True),
    ]
    client.begin_window({"phase": "b"}, 3_000)
    client.end_window(2_990)  # an end before the start is the start
    got = tick(client, 3_100, "phase")
    assert [(p[3], is_stale_marker(p[2])) for p in got] == [(3_000, False), (3_001, True)]
    assert interned(client) == 0


def test_same_labels_again_after_a_window_closed_is_a_new_series() -> None:
    client = RunnerClient()
    labels = {"phase": "transcode", "repeat": "0"}
    client.begin_window(labels, 1_000)
    tick(client, 1_010)
    first = client.series_table.series(INFO_METRIC, labels).id
    client.end_window(1_020)
    client.begin_window(labels, 1_030)  # closes and reopens before the sampler's next tick
    got = tick(client, 1_040)
    assert [(p[3], is_stale_marker(p[2])) for p in got] == [
        (1_020, False),
        (1_021, True),
        (1_030, False),
        (1_040, False),
    ]
    assert client.series_table.series(INFO_METRIC, labels).id != first


def test_progress_per_rung_ends_with_final_counts_and_markers_then_is_released() -> None:
    client = RunnerClient()
    snapshot: list[ProgressSnapshot | None] = [None]
    rungs = [{"output": "180p"}, {"output": "90p"}]
    stream = client.track_stream(rungs, lambda: snapshot[0])
    assert tick(client, 1_000, "output") == []
    snapshot[0] = ProgressSnapshot(40, 20.0, None, 0, 0, None, False)  # no speed reported
    assert sorted(tick(client, 1_100, "output")) == [
        (FPS_METRIC, "180p", 20.0, 1_100),
        (FPS_METRIC, "90p", 20.0, 1_100),
        (FRAMES_METRIC, "180p", 40.0, 1_100),
        (FRAMES_METRIC, "90p", 40.0, 1_100),
    ]
    client.end_stream(stream, [52, 51])
    closing = tick(client, 1_100, "output")  # the same millisecond: still increasing
    values = sorted(p for p in closing if not is_stale_marker(p[2]))
    assert [p for p in values if p[0] == FRAMES_METRIC] == [
        (FRAMES_METRIC, "180p", 52.0, 1_101),
        (FRAMES_METRIC, "90p", 51.0, 1_101),
    ]
    markers = [p for p in closing if is_stale_marker(p[2])]
    assert sorted((p[0], p[1], p[3]) for p in markers) == [
        (FPS_METRIC, "180p", 1_102),
        (FPS_METRIC, "90p", 1_102),
        (FRAMES_METRIC, "180p", 1_102),
        (FRAMES_METRIC, "90p", 1_102),
    ]  # speed was never reported: no marker for it
    assert tick(client, 1_200, "output") == [] and interned(client) == 0
    client.end_stream(None, [1])  # a process that never started has no stream: ignored


def test_quality_is_one_sample_at_the_window_end_with_no_marker_and_released() -> None:
    client = RunnerClient()
    client.record_quality({"run_id": "r", "repeat": "0"}, [output_quality("640x360@800k")], 1_234)
    got = tick(client, 5_000, "rung")
    assert sorted(got) == [
        ("ffmpeg_output_bitrate_bits_per_second", "640x360@800k", 790_000.0, 1_234),
        ("ffmpeg_output_quality", "640x360@800k", 38.0, 1_234),
    ]
    assert interned(client) == 0 and client.wait_idle(0)
    assert tick(client, 6_000, "rung") == []


def test_window_cpu_is_one_sample_per_scope_at_the_window_end() -> None:
    client = RunnerClient()
    labels = {"run_id": "r", "scenario": "s", "phase": "transcode", "repeat": "2"}
    client.record_accounting(labels, Accounting(1.5, 1.8, 4.0, 1.7, 1), 1_234)
    assert sorted(tick(client, 5_000, "scope")) == [
        (WINDOW_CPU_METRIC, "cgroup", 1.7, 1_234),
        (WINDOW_CPU_METRIC, "host_busy", 1.8, 1_234),
        (WINDOW_CPU_METRIC, "host_total", 4.0, 1_234),
        (WINDOW_CPU_METRIC, "transcode", 1.5, 1_234),
    ]
    assert interned(client) == 0 and client.wait_idle(0)
    # Outside a container there is no cgroup figure, and no cgroup series.
    client.record_accounting({**labels, "phase": "baseline"}, Accounting(0.0, 0.2, 4.0), 2_000)
    got = tick(client, 6_000, "scope")
    assert sorted(scope for _, scope, _, _ in got) == ["host_busy", "host_total", "transcode"]
    assert tick(client, 7_000, "scope") == []


class RecordingTransport:
    def __init__(self) -> None:
        self.points: list[tuple[dict[str, str], float, int]] = []
        self.lock = threading.Lock()

    def post(self, body: bytes, timeout_s: float | None = None) -> Outcome:
        with self.lock:
            for ts in decode(body).timeseries:
                labels = {label.name: label.value for label in ts.labels}
                self.points.extend((labels, s.value, s.timestamp) for s in ts.samples)
        return Outcome(204)

    def close(self) -> None:
        pass


def test_a_long_batch_through_the_pipeline_keeps_no_handle_of_finished_windows() -> None:
    """Many windows with progress and quality: every window arrives with its exact edges and
    marker, and the handles held stay those of about one window."""
    transport = RecordingTransport()
    config = ClientConfig(sample_interval_s=0.005, push_interval_s=0.02, instance="h")
    client = RunnerClient()
    windows: list[tuple[str, int, int]] = []
    sizes: list[int] = []
    progress = ProgressSnapshot(10, 25.0, 1.0, 0, 0, None, False)
    with Pipeline(client, config, transport=transport) as pipeline:
        for n in range(40):
            stream = client.track_stream(
                [{"repeat": str(n), "output": "90p"}, {"repeat": str(n), "output": "54p"}],
                lambda: progress,
            )
            start = time.time_ns() // 1_000_000
            client.begin_window({"phase": "transcode", "repeat": str(n)}, start)
            time.sleep(0.02)  # a few ticks inside the window
            # Ahead of any tick that can run before end_window() below, even on a loaded
            # machine that stalls this thread: the end is then exact. (The stale marker a
            # minute ahead is well inside what the batcher accepts, 10 minutes.)
            end = time.time_ns() // 1_000_000 + 60_000
            client.end_window(end)
            client.end_stream(stream, [12, 12])
            client.record_quality({"repeat": str(n)}, [output_quality("160x90@200k")], end)
            windows.append((str(n), start, end))
            assert client.wait_idle(timeout=5)
            sizes.append(held(client))
        assert pipeline.flush(timeout=5)
        # A window has 1 info + 2 rungs x 3 progress + 2 quality series. The released ones wait
        # for the next batch (push interval), then only the last window's are left.
        assert wait_until(lambda: held(client) == 9, timeout=5)
    assert max(sizes) < 120 < 40 * 9  # bounded, not the 360 series the batch made
    assert interned(client) == 0
    for repeat, start, end in windows:
        info = [
            (value, ts)
            for labels, value, ts in transport.points
            if labels["__name__"] == INFO_METRIC and labels["repeat"] == repeat
        ]
        stamps = [ts for _, ts in info]
        assert stamps == sorted(set(stamps)), repeat  # strictly increasing
        assert (stamps[0], stamps[-2], stamps[-1]) == (start, end, end + 1), repeat
        assert is_stale_marker(info[-1][0]) and all(v == 1.0 for v, _ in info[:-1])
