"""Command lines: one process per stream with every rung, bounded input, the right targets."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from base_monitoring_client import InvalidValue
from ffmpeg_runner.encoders import preset_args
from ffmpeg_runner.errors import ScenarioError
from ffmpeg_runner.ffmpeg import (
    THROUGHPUT_CONTENT_FACTOR,
    FfmpegInfo,
    build_command,
    check_encoders,
    filter_graph,
    parse_encoders,
)
from ffmpeg_runner.scenario import Scenario

ENCODERS_TEXT = """Encoders:
 V..... = Video
 ------
 V....D libx264              libx264 H.264 / AVC / MPEG-4 AVC / MPEG-4 part 10 (codec h264)
 V....D h264_nvenc           NVIDIA NVENC H.264 encoder (codec h264)
 V....D libx265              libx265 H.265 / HEVC (codec hevc)
 A....D aac                  AAC (Advanced Audio Coding)
"""
INFO = FfmpegInfo("/usr/bin/ffmpeg", "5.1", "", parse_encoders(ENCODERS_TEXT))


def test_parse_encoders_reads_names_after_the_legend() -> None:
    assert parse_encoders(ENCODERS_TEXT) == {"libx264", "h264_nvenc", "libx265", "aac"}


def test_ladder_is_one_process_with_split_and_one_output_per_rung(
    make_scenario: Callable[..., Scenario],
) -> None:
    scenario = make_scenario(ladder=["320x180@500k", "160x90@200k", "96x54@100k"])
    argv = build_command(scenario, stream=0, repeat=0)
    graph = argv[argv.index("-filter_complex") + 1]
    assert graph.startswith("[0:v:0]split=3[s0][s1][s2];")
    assert "[s1]scale=160:90,format=yuv420p[o1]" in graph
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-map"] == ["[o0]", "[o1]", "[o2]"]
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-b:v"] == ["500k", "200k", "100k"]
    assert argv.count("-c:v") == 3 and argv.count("null") == 3
    assert argv[argv.index("-progress") + 1] == "pipe:1"


def test_single_rung_needs_no_split(make_scenario: Callable[..., Scenario]) -> None:
    assert filter_graph(make_scenario()) == "[0:v:0]scale=160:90,format=yuv420p[o0]"


def test_input_is_bounded_and_realtime_only_when_asked(
    make_scenario: Callable[..., Scenario],
) -> None:
    fast = build_command(make_scenario(duration=10, stabilization=2), stream=0, repeat=0)
    assert "-re" not in fast
    content = float(fast[fast.index("-t") + 1])
    assert content == (10 + 2 + 5) * THROUGHPUT_CONTENT_FACTOR
    assert fast.index("-t") < fast.index("-i")  # an input option: bounds every output
    assert fast[fast.index("-i") + 1] == "testsrc2=size=160x90:rate=25"
    live = build_command(make_scenario(realtime=True, duration=10), stream=0, repeat=0)
    assert live.index("-re") < live.index("-i")
    assert float(live[live.index("-t") + 1]) == 10 + 0.5 + 5


def test_file_input_loops(make_scenario: Callable[..., Scenario], tmp_path: Path) -> None:
    clip = tmp_path / "clip.mkv"
    clip.write_bytes(b"")
    argv = build_command(make_scenario(input=str(clip)), stream=0, repeat=0)
    assert argv[argv.index("-stream_loop") + 1] == "-1"
    assert argv[argv.index("-i") + 1] == str(clip)
    assert "lavfi" not in argv


def test_file_and_rtmp_targets_are_distinct_per_stream_repeat_and_rung(
    make_scenario: Callable[..., Scenario], tmp_path: Path
) -> None:
    files = make_scenario(output="files", ladder=["320x180@500k", "160x90@200k"])
    argv = build_command(files, stream=1, repeat=2, media_dir=tmp_path)
    targets = [argv[i + 1] for i, a in enumerate(argv) if a == "-f" and argv[i + 1] == "matroska"]
    assert len(targets) == 2
    assert str(tmp_path / "tiny" / "r2-s1-180p.mkv") in argv
    assert str(tmp_path / "tiny" / "r2-s1-90p.mkv") in argv
    rtmp = make_scenario(output="rtmp://127.0.0.1:1935/live/")
    argv = build_command(rtmp, stream=0, repeat=1)
    assert argv[-3:] == ["-f", "flv", "rtmp://127.0.0.1:1935/live/tiny-r1-s0-90p"]


def test_extra_args_apply_to_every_rung(make_scenario: Callable[..., Scenario]) -> None:
    scenario = make_scenario(ladder=["320x180@500k", "160x90@200k"], extra_args=["-g", "50"])
    assert build_command(scenario, stream=0, repeat=0).count("-g") == 2


@pytest.mark.parametrize(
    ("encoder", "preset", "args"),
    [("libx264", "fast", ["-preset", "fast"]), ("libx265", None, []),
     ("libsvtav1", "8", ["-preset", "8"]), ("libaom-av1", "6", ["-cpu-used", "6"]),
     ("libvpx-vp9", "good:4", ["-deadline", "good", "-cpu-used", "4"]),
     ("libvpx-vp9", "realtime", ["-deadline", "realtime"]),
     ("h264_nvenc", "p4", ["-preset", "p4"]), ("h264_qsv", "veryfast", ["-preset", "veryfast"])],
)  # fmt: skip
def test_preset_spelling_per_encoder(encoder: str, preset: str | None, args: list[str]) -> None:
    assert preset_args(encoder, preset) == args


def test_nvenc_rejects_x264_presets_with_the_fix() -> None:
    with pytest.raises(InvalidValue, match="p1..p7"):
        preset_args("hevc_nvenc", "ultrafast")


def test_unknown_encoder_is_refused_with_similar_names(
    make_scenario: Callable[..., Scenario],
) -> None:
    with pytest.raises(ScenarioError) as info:
        check_encoders([make_scenario(), make_scenario(name="b", encoder="libx2645")], INFO)
    (problem,) = info.value.problems
    assert problem.startswith("scenarios[1] 'b': encoder: 'libx2645' is not in")
    assert "libx264" in problem and "libx265" in problem


def test_hardware_encoder_is_opened_once_before_the_run(
    make_scenario: Callable[..., Scenario],
) -> None:
    calls: list[list[str]] = []

    def fake_run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(
            argv, 1, "", "[h264_nvenc] No NVENC capable devices found\n"
        )

    scenarios = [make_scenario(name=n, encoder="h264_nvenc", preset=None) for n in "ab"]
    with pytest.raises(ScenarioError) as info:
        check_encoders(scenarios, INFO, run=fake_run)
    assert len(calls) == 1 and "h264_nvenc" in calls[0]
    assert len(info.value.problems) == 2
    assert "No NVENC capable devices found" in info.value.problems[0]
    assert "software encoder" in info.value.problems[0]
    check_encoders(scenarios, INFO, probe_hardware=False, run=fake_run)  # --dry-run: no probe
    assert len(calls) == 1


@pytest.mark.integration
def test_real_ffmpeg_is_described(ffmpeg_info: FfmpegInfo) -> None:
    assert "libx264" in ffmpeg_info.encoders
    assert ffmpeg_info.version[0].isdigit()
    assert "--enable" in ffmpeg_info.configuration
