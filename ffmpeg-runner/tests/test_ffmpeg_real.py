"""Real ffmpeg on tiny inputs: ladders, frame counting, failures, the manifest."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ffmpeg_runner.contract import SCHEMA_VERSION
from ffmpeg_runner.runner import Runner, RunOptions
from ffmpeg_runner.scenario import Scenario
from wattpush_testing.ffmpeg import HOST, RecordingSink, probe_video

pytestmark = pytest.mark.integration


def run(scenarios: list[Scenario], options: RunOptions, sink: Any = None) -> dict[str, Any]:
    Runner(scenarios, options, sink=sink, host=HOST).run()
    return dict(json.loads(options.manifest_path.read_text()))


def test_ladder_outputs_every_rung_with_the_frames_ffmpeg_encoded(
    make_scenario: Callable[..., Scenario], run_options: Callable[..., RunOptions]
) -> None:
    scenario = make_scenario(
        output="files", streams=2, ladder=["160x90@200k", "96x54@100k", "64x36@50k"]
    )
    options = run_options()
    sink = RecordingSink()
    manifest = run([scenario], options, sink)
    (window,) = manifest["windows"]
    assert window["status"] == "ok", window["error"]
    assert window["exit_codes"] == [0, 0]
    assert len(window["commands"]) == 2  # one process per stream, all rungs inside it
    assert all(cmd.count("-map") == 3 for cmd in window["commands"])
    assert len(sink.finals) == 2
    sizes = {"90p": (160, 90), "54p": (96, 54), "36p": (64, 36)}
    for stream, finals in enumerate(sink.finals):
        assert finals is not None
        for rung, final in zip(("90p", "54p", "36p"), finals, strict=True):
            path = options.media_dir / "tiny" / f"r0-s{stream}-{rung}.mkv"
            width, height, packets = probe_video(path)
            assert (width, height) == sizes[rung]
            assert packets == final > 0  # what ffmpeg says it encoded is in the file
            # The window excludes stabilization: fewer frames than the whole process.
            assert 0 < window["frames"][f"{stream}:{rung}"] < final
    assert window["frames_total"] == sum(window["frames"].values())
    assert window["output_pixels"] == sum(
        sizes[key.split(":")[1]][0] * sizes[key.split(":")[1]][1] * n
        for key, n in window["frames"].items()
    )


def test_realtime_window_counts_about_fps_times_duration(
    make_scenario: Callable[..., Scenario], run_options: Callable[..., RunOptions]
) -> None:
    scenario = make_scenario(realtime=True, fps=25, duration=2, stabilization=1)
    manifest = run([scenario], run_options())
    (window,) = manifest["windows"]
    assert window["status"] == "ok"
    assert 1.9 <= window["duration_s"] <= 2.5
    expected = 25 * window["duration_s"]
    assert abs(window["frames"]["0:90p"] - expected) <= 0.2 * expected
    assert window["dropped_frames"] == 0


def test_manifest_contents(
    make_scenario: Callable[..., Scenario], run_options: Callable[..., RunOptions]
) -> None:
    scenario = make_scenario(with_baseline=True, baseline_duration=0.5, repeat=2, cooldown=0.2)
    options = run_options(run_id="manifest-test")
    manifest = run([scenario], options)
    assert manifest["schema_version"] == SCHEMA_VERSION and manifest["run_id"] == "manifest-test"
    assert manifest["status"] == "completed"
    assert manifest["host"] == HOST
    assert manifest["ffmpeg"]["version"] == options.ffmpeg.version
    assert manifest["ffmpeg"]["path"].endswith("ffmpeg")
    assert manifest["started_ms"] <= manifest["windows"][0]["start_ms"]
    assert manifest["ended_ms"] >= manifest["windows"][-1]["end_ms"]
    phases = [(w["phase"], w["repeat"]) for w in manifest["windows"]]
    assert phases == [("baseline", 0), ("transcode", 0), ("transcode", 1)]
    baseline, first, second = manifest["windows"]
    assert baseline["commands"] == [] and baseline["frames_total"] == 0
    assert 0.45 <= baseline["duration_s"] <= 0.7
    for window in (first, second):
        assert window["ladder"] == "160x90@200k" and window["bitrate"] == "200k"
        assert window["preset"] == "ultrafast" and window["streams"] == 1
        assert window["rungs"] == [{"name": "90p", "width": 160, "height": 90, "bitrate": "200k"}]
        assert window["input"] == "testsrc2" and window["fps"] == 25
        assert window["error"] is None and window["exit_codes"] == [0]
        assert window["duration_s"] == (window["end_ms"] - window["start_ms"]) / 1000
        assert 1.4 <= window["duration_s"] <= 2.0
        assert "--- stream 0 (exit 0) ---" in window["stderr_tail"]
        assert window["commands"][0][0] == options.ffmpeg.path
    # Stabilization (0.5 s) lies between the previous window's end and this one's start.
    assert first["start_ms"] - baseline["end_ms"] >= 500
    assert second["start_ms"] - first["end_ms"] >= 200 + 500


def failing(make_scenario: Callable[..., Scenario]) -> Scenario:
    return make_scenario(name="broken", extra_args=["-profile:v", "nosuchprofile"])


def test_failing_ffmpeg_fails_its_window_and_the_batch_goes_on(
    make_scenario: Callable[..., Scenario], run_options: Callable[..., RunOptions]
) -> None:
    manifest = run([failing(make_scenario), make_scenario(name="fine")], run_options())
    broken, fine = manifest["windows"]
    assert broken["status"] == "failed"
    assert broken["exit_codes"][0] not in (0, None)
    assert "stream 0: ffmpeg exited with code" in broken["error"]
    assert "nosuchprofile" in broken["error"] or "profile" in broken["stderr_tail"]
    assert broken["frames_total"] == 0
    assert fine["status"] == "ok" and fine["frames_total"] > 0
    assert manifest["status"] == "failed"


def test_fail_fast_stops_at_the_first_failure(
    make_scenario: Callable[..., Scenario], run_options: Callable[..., RunOptions]
) -> None:
    manifest = run(
        [failing(make_scenario), make_scenario(name="fine")], run_options(fail_fast=True)
    )
    assert [w["scenario"] for w in manifest["windows"]] == ["broken"]
    assert manifest["status"] == "failed"


def test_missing_binary_fails_the_window_not_the_runner(
    make_scenario: Callable[..., Scenario], run_options: Callable[..., RunOptions]
) -> None:
    options = run_options()
    gone = type(options.ffmpeg)("/nonexistent/ffmpeg", "x", "", frozenset())
    manifest = run([make_scenario()], run_options(ffmpeg=gone))
    (window,) = manifest["windows"]
    assert window["status"] == "failed" and "cannot start /nonexistent/ffmpeg" in window["error"]


def test_stop_request_mid_window_marks_it_interrupted_and_keeps_earlier_windows(
    make_scenario: Callable[..., Scenario], run_options: Callable[..., RunOptions]
) -> None:
    first = make_scenario(name="first", duration=0.5, stabilization=0)
    long = make_scenario(name="long", duration=60, stabilization=0.2)
    options = run_options()
    runner = Runner([first, long, make_scenario(name="never")], options, host=HOST)
    timer = threading.Timer(2.0, runner.request_stop, args=("test stop",))
    timer.start()
    try:
        runner.run()
    finally:
        timer.cancel()
    manifest = json.loads(options.manifest_path.read_text())
    assert manifest["status"] == "interrupted"
    done, cut = manifest["windows"]
    assert done["status"] == "ok"
    assert cut["status"] == "interrupted" and cut["error"] == "interrupted: test stop"
    assert cut["duration_s"] < 10 and cut["frames_total"] > 0
    assert cut["exit_codes"][0] is not None  # reaped: nothing left running


def test_input_file_is_looped(
    make_scenario: Callable[..., Scenario],
    run_options: Callable[..., RunOptions],
    tmp_path: Path,
    ffmpeg_info: Any,
) -> None:
    clip = tmp_path / "clip.mkv"
    subprocess.run(
        [ffmpeg_info.path, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25",
         "-t", "0.4", "-c:v", "libx264", "-preset", "ultrafast", str(clip)],
        check=True, timeout=60,
    )  # fmt: skip
    manifest = run([make_scenario(input=str(clip), realtime=True)], run_options())
    (window,) = manifest["windows"]
    assert window["status"] == "ok", window["error"]
    assert window["input"] == str(clip)
    assert window["frames_total"] > 25  # more than the 10-frame clip holds: it looped
