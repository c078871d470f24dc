"""Scenario model and batch validation: every problem located, named and with a fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from base_monitoring_client import InvalidValue
from ffmpeg_runner.contract import format_bitrate, parse_bitrate
from ffmpeg_runner.errors import ScenarioError
from ffmpeg_runner.scenario import (
    FIELDS,
    load_batch,
    parse_batch,
    parse_resolution,
    resolve_batch_path,
)

SCENARIOS_DIR = Path(__file__).resolve().parent.parent / "scenarios"


def problems_of(data: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_batch(data, **kwargs)
    assert info.value.exit_code == 2
    return info.value.problems


@pytest.mark.parametrize(
    ("text", "bps", "canonical"),
    [("2M", 2_000_000, "2M"), ("800k", 800_000, "800k"), ("2.5M", 2_500_000, "2500k"),
     ("1500000", 1_500_000, "1500k"), (1_234_567, 1_234_567, "1234567"),
     (" 4 m ", 4_000_000, "4M")],
)  # fmt: skip
def test_bitrates_parse_and_format_canonically(text: Any, bps: int, canonical: str) -> None:
    assert parse_bitrate(text) == bps
    assert format_bitrate(bps) == canonical


@pytest.mark.parametrize("bad", ["2Q", "", "fast", 500, True, None])
def test_bad_bitrates_say_how_to_write_one(bad: Any) -> None:
    with pytest.raises(InvalidValue, match=r"2M|800k|1k"):
        parse_bitrate(bad)


@pytest.mark.parametrize(
    ("bad", "why"), [("1280*720", "WIDTHxHEIGHT"), ("1281x720", "even"), ("8x8", "between")]
)
def test_bad_resolutions_are_explained(bad: str, why: str) -> None:
    with pytest.raises(InvalidValue, match=why):
        parse_resolution(bad)


def test_ladder_is_sorted_named_and_keyed() -> None:
    (scenario,) = parse_batch(
        [{"name": "abr", "ladder": ["640x360@800k", "1280x720@2M", "top=1920x1080@5000k"]}]
    )
    assert scenario.ladder == "1920x1080@5M+1280x720@2M+640x360@800k"
    assert [r.name for r in scenario.rungs] == ["top", "720p", "360p"]
    assert scenario.bitrate == "5M"
    assert (scenario.width, scenario.height) == (1920, 1080)  # source = top rung by default


def test_ladder_as_objects_and_plus_string_give_the_same_key() -> None:
    a, b = parse_batch(
        [
            {"name": "a", "ladder": "1280x720@2M+640x360@800k"},
            {"name": "b", "ladder": [{"resolution": "640x360", "bitrate": "800k"},
                                     {"width": 1280, "height": 720, "bitrate": 2_000_000}]},
        ]
    )  # fmt: skip
    assert a.ladder == b.ladder == "1280x720@2M+640x360@800k"


def test_same_height_rungs_get_distinct_names() -> None:
    (scenario,) = parse_batch([{"name": "x", "ladder": ["1280x720@4M", "1280x720@2M"]}])
    assert [r.name for r in scenario.rungs] == ["720p_4M", "720p_2M"]


def test_single_output_defaults() -> None:
    (scenario,) = parse_batch([{"name": "one"}])
    assert scenario.ladder == "1280x720@2M"
    assert scenario.preset_label == "default"
    assert scenario.input == "testsrc2"
    assert scenario.realtime is False
    assert scenario.baseline_duration_s == scenario.duration_s == 30


def test_defaults_apply_and_scenarios_override_them() -> None:
    a, b = parse_batch(
        {"defaults": {"duration": 10, "encoder": "libx265"},
         "scenarios": [{"name": "a"}, {"name": "b", "duration": 3}]}
    )  # fmt: skip
    assert (a.duration_s, a.encoder) == (10, "libx265")
    assert (b.duration_s, b.encoder) == (3, "libx265")


def test_cli_overrides_replace_file_defaults_only() -> None:
    a, b = parse_batch(
        {"defaults": {"duration": 10}, "scenarios": [{"name": "a"}, {"name": "b", "duration": 3}]},
        overrides={"duration": 1.0},
    )
    assert (a.duration_s, b.duration_s) == (1.0, 3)


def test_rtmp_output_defaults_to_realtime() -> None:
    (scenario,) = parse_batch([{"name": "live", "output": "rtmp://127.0.0.1/live"}])
    assert scenario.realtime is True


def test_problems_point_at_scenario_index_name_and_field() -> None:
    problems = problems_of(
        [
            {"name": "ok"},
            {"name": "bad-rate", "bitrate": "2Q"},
            {"name": "typo", "presett": "fast"},
            {"name": "neg", "duration": -1, "streams": 0},
            {"name": "ladder", "ladder": ["640x360@800k", "nonsense"]},
        ]
    )
    text = "\n".join(problems)
    assert "scenarios[1] 'bad-rate': bitrate: '2Q' is not a bitrate" in text
    assert "scenarios[2] 'typo': presett: unknown field; did you mean 'preset'?" in text
    assert "scenarios[3] 'neg': duration:" in text
    assert "scenarios[3] 'neg': streams:" in text
    assert "scenarios[4] 'ladder': ladder[1]: 'nonsense' is not a rung" in text
    assert len(problems) == 5


def test_duplicate_and_missing_names() -> None:
    problems = problems_of([{"name": "a"}, {"name": "a"}, {"encoder": "libx264"}])
    assert any("scenarios[1] 'a': name: 'a' already used by scenarios[0]" in p for p in problems)
    assert any(p.startswith("scenarios[2]: name: missing") for p in problems)


def test_bad_preset_for_the_encoder_is_caught_before_running() -> None:
    problems = problems_of(
        [{"name": "x", "encoder": "libx264", "preset": "8"},
         {"name": "v", "encoder": "libvpx-vp9", "preset": "fast"},
         {"name": "s", "encoder": "libsvtav1", "preset": "20"}]
    )  # fmt: skip
    assert "ultrafast" in problems[0]
    assert "realtime, good or best" in problems[1]
    assert "-1 to 13" in problems[2]


def test_rtmp_needs_h264() -> None:
    (problem,) = problems_of([{"name": "v", "encoder": "libx265", "output": "rtmp://h/app"}])
    assert "H.264 only" in problem and "libx264" in problem


def test_missing_input_file(tmp_path: Path) -> None:
    (problem,) = problems_of([{"name": "f", "input": "nope.mp4"}], base_dir=tmp_path)
    assert "scenarios[0] 'f': input: 'nope.mp4' is not a file" in problem


def test_input_relative_to_batch_file(tmp_path: Path) -> None:
    (tmp_path / "clip.mkv").write_bytes(b"x")
    (scenario,) = parse_batch([{"name": "f", "input": "clip.mkv"}], base_dir=tmp_path)
    assert scenario.input == str(tmp_path / "clip.mkv")


def test_shape_errors() -> None:
    with pytest.raises(ScenarioError, match="JSON list of scenarios"):
        parse_batch("nope")
    assert problems_of({"scenarios": []}) == [
        "scenarios: expected a non-empty list of scenario objects"
    ]
    problems = problems_of({"defaults": {"name": "x", "fps": "fast"}, "scenarios": [3], "x": 1})
    text = "\n".join(problems)
    assert "top level: unknown key(s) x" in text
    assert "defaults.name: unknown field" in text
    assert "defaults.fps: 'fast' is not a number" in text
    assert "scenarios[0]: expected an object, got int" in text


def test_bitrate_and_ladder_together_is_ambiguous() -> None:
    (problem,) = problems_of([{"name": "x", "bitrate": "2M", "ladder": ["640x360@800k"]}])
    assert "bitrate: not used when a ladder is given" in problem


def test_load_batch_reports_json_syntax_with_position(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text('{"scenarios": [\n  {"name": "a",}\n]}')
    with pytest.raises(ScenarioError, match=r"b.json: not valid JSON at line 2 column 16"):
        load_batch(path)


def test_load_batch_prefixes_problems_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text(json.dumps([{"name": "a", "fps": 0}]))
    with pytest.raises(ScenarioError) as info:
        load_batch(path)
    assert info.value.problems[0].startswith(f"{path}: scenarios[0] 'a': fps:")


def test_missing_batch_file() -> None:
    shipped = "quick, demo, codecs, stress, search"
    with pytest.raises(ScenarioError, match=f"cannot read the batch file .* {shipped}"):
        load_batch(Path("/nonexistent/batch.json"))


def test_shipped_batches_are_valid_and_found_by_name() -> None:
    assert resolve_batch_path(Path("quick")) == SCENARIOS_DIR / "quick.json"
    quick = load_batch(Path("quick"))
    assert len(quick) >= 3 and any(s.with_baseline for s in quick)
    assert any(len(s.rungs) > 1 for s in quick) and any(s.streams > 1 for s in quick)
    planned = sum(
        (s.baseline_duration_s + s.cooldown_s if s.with_baseline else 0)
        + s.repeats * (s.stabilization_s + s.duration_s + s.cooldown_s)
        for s in quick
    )
    assert 40 <= planned <= 80  # "about a minute" for make demo and CI
    stress = load_batch(SCENARIOS_DIR / "stress.json")
    assert {s.streams for s in stress} == {1, 2, 4, 8}
    assert {s.encoder for s in stress} >= {"libx264", "libx265", "libsvtav1", "libvpx-vp9"}
    assert len({s.ladder for s in stress}) >= 2 and len({s.preset for s in stress}) >= 4


def test_schema_documents_exactly_the_fields_the_validator_knows() -> None:
    schema = json.loads((SCENARIOS_DIR / "schema.json").read_text())
    assert set(schema["$defs"]["fields"]["properties"]) == set(FIELDS)
    top = schema["oneOf"][1]["properties"]
    assert set(top) == {"description", "defaults", "scenarios", "order"}


def test_schema_accepts_what_the_validator_accepts_for_order_and_repeat() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((SCENARIOS_DIR / "schema.json").read_text())

    def valid(doc: object) -> bool:
        try:
            jsonschema.validate(doc, schema)
        except jsonschema.ValidationError:
            return False
        return True

    for order in ("sequential", "interleaved", "shuffled", "shuffled:42"):
        doc = {"order": order, "scenarios": [{"name": "a", "repeat": "auto:2:5"}]}
        assert valid(doc) and parse_batch(doc)
    for repeat in (1, "auto", "auto:3:8", "4"):
        assert valid([{"name": "a", "repeat": repeat}])
        assert parse_batch([{"name": "a", "repeat": repeat}])
    assert not valid({"order": "random", "scenarios": [{"name": "a"}]})
    assert not valid({"order": "interleaved:3", "scenarios": [{"name": "a"}]})
    assert not valid([{"name": "a", "repeat": "often"}])
    assert not valid([{"name": "a", "repeat": 0}])
    (auto,) = parse_batch({"defaults": {"repeat": "auto"}, "scenarios": [{"name": "a"}]})
    assert auto.repeat_policy.text == "auto:3:8" and auto.repeats == 8
