"""The runner/advisor contract: window records round-trip, and bad records name the field."""

from __future__ import annotations

from typing import Any

import pytest
from ffmpeg_runner.contract import (
    INFO_METRIC,
    ContractError,
    InfoLabels,
    MetricScore,
    OutputQuality,
    Rung,
    SourceInfo,
    WindowRecord,
    ladder_key,
    parse_ladder,
    read_ladder,
)


def full_record() -> WindowRecord:
    rungs = (Rung("720p", 1280, 720, 2_000_000), Rung("360p", 640, 360, 400_000))
    return WindowRecord(
        scenario="x264-fast",
        phase="transcode",
        repeat=1,
        start_ms=1_700_000_000_000,
        end_ms=1_700_000_030_500,
        encoder="libx264",
        preset="fast",
        bitrate="2M",
        streams=1,
        ladder=ladder_key(rungs),
        rungs=rungs,
        fps=25,
        input="/clips/bbb.mp4",
        commands=(("ffmpeg", "-i", "x"),),
        exit_codes=(0,),
        frames={"0:720p": 750, "0:360p": 750},
        frames_total=1500,
        output_pixels=750 * (1280 * 720 + 640 * 360),
        source=SourceInfo("file", "/clips/bbb.mp4", "ab" * 32, 1234, 25.0, 1280, 720, 132),
        quality=(
            OutputQuality(
                rung="640x360@400k",
                name="360p",
                stream=0,
                target_bitrate_bps=400_000,
                achieved_bitrate_bps=391_234.5,
                size_bytes=1_467_129,
                duration_s=30.0,
                frames=750,
                scores={"psnr": MetricScore(36.5, 31.25), "ssim": MetricScore(0.95, 0.9)},
            ),
        ),
    )


def test_window_record_round_trips_through_json() -> None:
    record = full_record()
    again = WindowRecord.from_json(record.to_json(), "w")
    assert again == record
    assert again.duration_s == 30.5
    assert again.ladder == "1280x720@2M+640x360@400k"
    assert again.quality[0].scores["psnr"].p5 == 31.25


def test_schema_1_windows_read_without_source_or_quality() -> None:
    raw: dict[str, Any] = {
        "scenario": "a",
        "phase": "baseline",
        "start_ms": 1000,
        "end_ms": 2000,
        "ladder": "1280x720@2M",
    }
    record = WindowRecord.from_json(raw, "w")
    assert record.quality == () and record.source is None and record.quality_error is None
    assert record.rungs == (Rung("720p", 1280, 720, 2_000_000),)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"end_ms": 500}, "w: end_ms 500 is not after start_ms 1000"),
        ({"start_ms": "soon"}, "w.start_ms: expected a whole number"),
        ({"phase": "warmup"}, "w.phase: 'warmup' is not one of baseline, transcode"),
        ({"rungs": [{"width": 640, "height": 360, "bitrate": "fast"}]}, "w.rungs[0].bitrate"),
        (
            {"quality": [{"rung": "640x360@400k", "scores": {}}]},
            "w.quality[0]: missing field 'target_bitrate_bps'",
        ),
        (
            {
                "quality": [
                    {
                        "rung": "r",
                        "target_bitrate_bps": 1000,
                        "achieved_bitrate_bps": 1000,
                        "size_bytes": 1,
                        "duration_s": 1,
                        "frames": 1,
                        "scores": {"butteraugli": {"mean": 1, "p5": 1}},
                    }
                ]
            },
            "w.quality[0].scores: unknown metric 'butteraugli'",
        ),
    ],
)
def test_bad_records_name_the_field(change: dict[str, Any], message: str) -> None:
    raw: dict[str, Any] = {"scenario": "a", "phase": "transcode", "start_ms": 1000, "end_ms": 2000}
    raw.update(change)
    with pytest.raises(ContractError) as info:
        WindowRecord.from_json(raw, "w")
    assert message in str(info.value)


def test_parse_ladder_is_the_inverse_of_ladder_key() -> None:
    rungs = (Rung("1080p", 1920, 1080, 4_500_000), Rung("480p", 854, 480, 1_200_000))
    assert parse_ladder(ladder_key(rungs)) == rungs
    assert parse_ladder("1280x720@fast") == ()
    assert parse_ladder("not a ladder") == ()


def test_a_ladder_that_breaks_the_contract_says_what_and_keeps_the_pixels_it_can() -> None:
    good = read_ladder("1280x720@2M+640x360@800k")
    assert good.problem is None and len(good.rungs) == 2
    assert good.pixels_per_frame == (1280 * 720 + 640 * 360) / 2
    # Frames per second where the bitrate belongs, as older tools wrote it.
    fps = read_ladder("1280x720@30", "label ladder")
    assert fps.rungs == () and fps.frame_pixels == (1280 * 720,)
    assert fps.problem == (
        "label ladder='1280x720@30' is not WxH@BITRATE rungs joined by '+' (e.g. "
        "1280x720@2M+640x360@800k): in '1280x720@30', '30' is below 1k; bitrates are bits per "
        "second, e.g. 800k; a constant-quality rung is written crf23 or cq28 instead of a "
        "bitrate; output pixels are counted from its WxH, its bitrate is unknown"
    )
    # One unreadable size: no pixels at all (a mean over the rest would be wrong).
    mixed = read_ladder("1280x720@2M+sd")
    assert mixed.rungs == () and mixed.pixels_per_frame is None
    assert mixed.problem is not None and "'sd' is not WxH@BITRATE" in mixed.problem
    assert "output pixels are unknown" in mixed.problem
    assert read_ladder("", "label ladder").problem == (
        "label ladder is missing; expected WxH@BITRATE rungs joined by '+' "
        "(e.g. 1280x720@2M+640x360@800k)"
    )


def test_info_labels_and_manifest_windows_carry_the_ladder_problem() -> None:
    labels = {"run_id": "r", "scenario": "s", "phase": "transcode", "ladder": "1280x720@30"}
    info = InfoLabels.from_labels(labels)
    assert info.rungs == () and info.ladder_read.frame_pixels == (1280 * 720,)
    assert info.ladder_read.problem is not None
    assert info.ladder_read.problem.startswith(f"{INFO_METRIC} label ladder='1280x720@30' is not")
    raw: dict[str, Any] = {"scenario": "a", "phase": "transcode", "start_ms": 1000,
                           "end_ms": 2000, "ladder": "1280x720@30", "output_pixels": 5}  # fmt: skip
    window = WindowRecord.from_json(raw, "m.json: windows[0]")
    assert window.problem is not None
    assert window.problem.startswith("m.json: windows[0].ladder='1280x720@30' is not")
    assert window.output_pixels == 5  # the runner's own count stands
    assert "problem" not in window.to_json()  # a reader's finding, never written
    baseline = WindowRecord.from_json({**raw, "phase": "baseline"}, "w")
    assert baseline.problem is None
    assert WindowRecord.from_json({**raw, "ladder": "1280x720@2M"}, "w").problem is None
