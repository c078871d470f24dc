"""Constant-quality rate control: rung keys, the encoder table, scenario validation, command
lines, flags, the window record and the info labels."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from base_monitoring_client import InvalidValue
from ffmpeg_runner.cli import build_parser, main, scenarios_from_args
from ffmpeg_runner.contract import (
    ContractError,
    InfoLabels,
    Rung,
    WindowRecord,
    ladder_key,
    parse_ladder,
    parse_setting,
)
from ffmpeg_runner.encoders import check_quality_value, rate_control_args, rate_controls
from ffmpeg_runner.errors import ScenarioError
from ffmpeg_runner.ffmpeg import build_command
from ffmpeg_runner.runner import info_labels
from ffmpeg_runner.scenario import Scenario, parse_batch, parse_scenario


def scenario(**fields: Any) -> Scenario:
    values = {"name": "s", "resolution": "640x360", **fields}
    return parse_scenario(values)


def problems_of(**fields: Any) -> str:
    with pytest.raises(ScenarioError) as info:
        scenario(**fields)
    return "\n".join(info.value.problems)


# -- the contract: rung keys ------------------------------------------------------------------


def test_crf_rungs_are_keyed_by_their_setting_and_old_keys_still_parse() -> None:
    crf = Rung("360p", 640, 360, 0, "crf", 23.0)
    assert (crf.key, crf.setting, crf.bitrate, crf.target_bitrate_bps) == (
        "640x360@crf23",
        "crf23",
        "",
        None,
    )
    assert Rung("360p", 640, 360, 0, "cq", 28.5).key == "640x360@cq28.5"
    assert parse_ladder("1280x720@crf20+640x360@crf26") == (
        Rung("720p", 1280, 720, 0, "crf", 20.0),
        Rung("360p", 640, 360, 0, "crf", 26.0),
    )
    # Keys written before constant quality existed read exactly as before.
    assert parse_ladder("1280x720@2M+640x360@800k") == (
        Rung("720p", 1280, 720, 2_000_000),
        Rung("360p", 640, 360, 800_000),
    )
    assert parse_ladder("640x360@crf") == ()
    assert parse_setting("CRF 23") == ("crf", 0, 23.0)
    with pytest.raises(ContractError, match="needs one of crf, cq and a value"):
        Rung("360p", 640, 360, 0, "crf", None)


def test_crf_rungs_round_trip_through_the_manifest_and_the_info_labels() -> None:
    rung = Rung("360p", 640, 360, 0, "crf", 23.0)
    assert Rung.from_json(rung.to_json(), "r") == rung
    assert rung.to_json() == {
        "name": "360p",
        "width": 640,
        "height": 360,
        "bitrate": None,
        "rate_control": "crf",
        "quality_value": 23,
    }
    window = WindowRecord(
        scenario="s",
        phase="transcode",
        repeat=0,
        start_ms=1,
        end_ms=2,
        rate_control="crf",
        quality_value=23.0,
        ladder=ladder_key([rung]),
        rungs=(rung,),
    )
    assert WindowRecord.from_json(window.to_json(), "w") == window
    labels = info_labels("run", scenario(rate_control="crf", quality_value=23), "transcode", 0)
    assert (labels["ladder"], labels["bitrate"]) == ("640x360@crf23", "")
    assert (labels["rate_control"], labels["quality_value"]) == ("crf", "23")
    typed = InfoLabels.from_labels({k: v for k, v in labels.items() if v})
    assert typed.rungs == (rung,) and typed.quality_value == 23.0


# -- the encoder table ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoder", "rate_control", "value", "args"),
    [
        ("libx264", "crf", 23.5, ["-crf", "23.5"]),
        ("libx265", "crf", 28, ["-crf", "28"]),
        ("libsvtav1", "crf", 35, ["-crf", "35"]),
        ("libvpx-vp9", "crf", 31, ["-crf", "31", "-b:v", "0"]),
        ("h264_nvenc", "cq", 24, ["-rc", "vbr", "-cq", "24", "-b:v", "0"]),
    ],
)
def test_each_encoder_gets_its_constant_quality_options(
    encoder: str, rate_control: str, value: float, args: list[str]
) -> None:
    rung = Rung("360p", 640, 360, 0, rate_control, float(value))
    assert rate_control_args(encoder, rung) == args
    assert rate_control_args(encoder, Rung("360p", 640, 360, 800_000)) == ["-b:v", "800k"]


def test_the_table_knows_each_encoders_rate_controls_and_ranges() -> None:
    assert rate_controls("libx264") == ("bitrate", "crf")
    assert rate_controls("h264_nvenc") == ("bitrate", "cq")
    assert rate_controls("libopenh264") == ("bitrate",)
    with pytest.raises(InvalidValue, match=r"libx264 crf takes numbers from 0 to 51"):
        check_quality_value("libx264", "crf", 52)
    with pytest.raises(InvalidValue, match=r"whole numbers from 1 to 63"):
        check_quality_value("libsvtav1", "crf", 30.5)
    with pytest.raises(InvalidValue, match=r"has no cq rate control here \(it has bitrate or crf"):
        check_quality_value("libx264", "cq", 23)


# -- scenarios --------------------------------------------------------------------------------


def test_a_crf_scenario_has_one_crf_rung_and_its_command_no_bitrate() -> None:
    s = scenario(encoder="libx264", preset="veryfast", rate_control="crf", quality_value=23)
    assert (s.rate_control, s.quality_value, s.ladder, s.bitrate) == (
        "crf",
        23.0,
        "640x360@crf23",
        "",
    )
    argv = build_command(s, stream=0, repeat=0)
    assert "-b:v" not in argv
    assert argv[argv.index("-crf") + 1] == "23"


def test_a_crf_ladder_carries_a_value_per_rung() -> None:
    s = scenario(encoder="libx265", ladder=["1280x720@crf24", {"resolution": "640x360", "crf": 28}])
    assert (s.rate_control, s.quality_value) == ("crf", 24.0)
    argv = build_command(s, stream=0, repeat=0)
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "-crf"] == ["24", "28"]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"encoder": "libx264", "rate_control": "crf", "quality_value": 60},
            "quality_value: 60 is out of range: libx264 crf takes numbers from 0 to 51",
        ),
        (
            {"encoder": "libopenh264", "rate_control": "crf", "quality_value": 23},
            "rate_control: libopenh264 has no crf rate control here (it has bitrate); use "
            "rate_control bitrate",
        ),
        (
            {"encoder": "libx264", "rate_control": "crf"},
            'quality_value: missing; rate_control crf needs the value, e.g. "quality_value": 23',
        ),
        (
            {"encoder": "libx264", "rate_control": "crf", "quality_value": 23, "bitrate": "1M"},
            "bitrate: not used with rate_control crf",
        ),
        ({"quality_value": 23}, "quality_value: only used with rate_control crf or cq"),
        ({"rate_control": "vbr"}, "rate_control: 'vbr' is not a rate control"),
        (
            {"encoder": "libx264", "ladder": ["1280x720@crf20", "640x360@800k"]},
            "ladder: mixes rate controls (bitrate, crf)",
        ),
        (
            {"encoder": "libx264", "rate_control": "crf", "ladder": ["640x360@800k"]},
            "rate_control: crf but the ladder's rungs are bitrate",
        ),
        (
            {"encoder": "libsvtav1", "ladder": ["640x360@crf0"]},
            "ladder 640x360@crf0: 0 is out of range: libsvtav1 crf takes whole numbers",
        ),
    ],
)
def test_bad_rate_control_names_the_field_and_the_fix(
    fields: dict[str, Any], expected: str
) -> None:
    assert expected in problems_of(**fields)


def test_a_scenarios_own_setting_replaces_the_defaults_other_one() -> None:
    batch = {
        "defaults": {"encoder": "libx264", "rate_control": "crf", "quality_value": 23},
        "scenarios": [
            {"name": "crf"},
            {"name": "abr", "bitrate": "1M"},
            {"name": "crf28", "quality_value": 28},
        ],
    }
    crf, abr, crf28 = parse_batch(batch)
    assert [s.ladder for s in (crf, abr, crf28)] == [
        "1280x720@crf23",
        "1280x720@1M",
        "1280x720@crf28",
    ]
    (ladder,) = parse_batch(
        {"defaults": {"bitrate": "1M"}, "scenarios": [{"name": "l", "rate_control": "crf",
                                                       "quality_value": 20}]}
    )  # fmt: skip
    assert ladder.ladder == "1280x720@crf20"


# -- flags ------------------------------------------------------------------------------------


def test_crf_flags_make_crf_scenarios_and_sweep() -> None:
    parser = build_parser()
    (one,) = scenarios_from_args(parser.parse_args(["single", "--crf", "23", "--preset", "fast"]))
    assert (one.name, one.ladder) == ("libx264-fast-720p", "1280x720@crf23")
    sweep = scenarios_from_args(parser.parse_args(["single", "--crf", "20,26"]))
    assert [s.name for s in sweep] == ["libx264-default-720p-crf20", "libx264-default-720p-crf26"]
    (cq,) = scenarios_from_args(parser.parse_args(["multi", "--count", "2", "--cq", "28",
                                                   "--encoder", "h264_nvenc"]))  # fmt: skip
    assert (cq.rate_control, cq.streams) == ("cq", 2)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--crf", "60"], "--crf 60: quality_value: 60 is out of range: libx264 crf"),
        (["--crf", "23", "--bitrate", "1M"], "--crf and --bitrate: constant quality replaces"),
        (["--cq", "23"], "rate_control: libx264 has no cq rate control here"),
        (["--crf", "x"], "--crf x: expected a number"),
    ],
)
def test_bad_crf_flags_exit_2(
    argv: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["single", *argv, "--dry-run", "--output-dir", str(tmp_path)], env={}) == 2
    assert expected in capsys.readouterr().err


def test_dry_run_of_a_crf_scenario_prints_the_encoders_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make_scenario: Callable[..., Scenario]
) -> None:
    code = main(
        ["single", "--encoder", "libvpx-vp9", "--crf", "31", "--dry-run",
         "--output-dir", str(tmp_path)],
        env={},
    )  # fmt: skip
    assert code == 0
    command = [line for line in capsys.readouterr().out.splitlines() if "-crf" in line]
    assert command and "-crf 31 -b:v 0" in command[0]
    assert json.dumps(make_scenario().rate_control) == '"bitrate"'


def test_the_codecs_batch_has_each_encoder_at_its_default_constant_quality() -> None:
    from ffmpeg_runner.scenario import load_batch
    from ffmpeg_runner.source import clip_path

    if clip_path("bbb") is None:
        pytest.skip("codecs.json reads the bbb clip (the quality extra: make venv)")
    crf = {
        s.encoder: s.quality_value for s in load_batch(Path("codecs")) if s.rate_control == "crf"
    }
    assert crf == {"libx264": 23, "libx265": 28, "libsvtav1": 35, "libvpx-vp9": 31}
