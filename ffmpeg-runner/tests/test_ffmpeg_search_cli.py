"""``ffmpeg-runner search`` without encoding: flags and files to a validated search, every
family's domain, sample plans, and exit code 2 naming the field and the fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from ffmpeg_runner.cli import build_parser, main
from ffmpeg_runner.contract import Probe, RunManifest, SearchRecord
from ffmpeg_runner.errors import ScenarioError
from ffmpeg_runner.ffmpeg import FfmpegInfo
from ffmpeg_runner.policy import RepeatPolicy
from ffmpeg_runner.probe import Segment, plan_segments
from ffmpeg_runner.search import Target
from ffmpeg_runner.search_cli import (
    SearchSpec,
    is_search_file,
    plan_families,
    spec_from_args,
    spec_from_file,
)
from ffmpeg_runner.source import clip_path

INFO = FfmpegInfo(
    "/usr/bin/ffmpeg",
    "5.1",
    "",
    frozenset({"libx264", "libx265", "libsvtav1", "libopenh264", "h264_nvenc"}),
)
SIZE = (640, 360, 25.0)


def spec(*argv: str) -> SearchSpec:
    return spec_from_args(build_parser().parse_args(["search", *argv]))


def problems(*argv: str) -> str:
    with pytest.raises(ScenarioError) as info:
        spec(*argv)
    return "\n".join(info.value.problems)


@pytest.fixture
def clip(tmp_path: Path) -> str:
    """A file to search (its content is never read by these tests)."""
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"not decoded here")
    return str(path)


def test_flags_make_a_search_with_defaults(clip: str) -> None:
    s = spec("--input", clip, "--target", "vmaf=93", "--preset", "veryfast", "--repeat", "3")
    assert s.target == Target("vmaf", 93.0)
    assert s.families == (("libx264", "veryfast"),)
    assert (s.tolerance, s.max_probes, s.samples, s.sample_duration_s) == (0.5, 8, 4, 20.0)
    assert s.rate_control is None and s.energy == {"repeat": RepeatPolicy.fixed(3)}
    many = spec("--input", clip, "--target", "psnr=40", "--family", "libx264:veryfast",
                "--family", "libx265:fast", "--family", "libsvtav1")  # fmt: skip
    assert many.families == (("libx264", "veryfast"), ("libx265", "fast"), ("libsvtav1", None))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--target", "vmaf93"], "--target: 'vmaf93': write METRIC=VALUE"),
        (["--target", "vmaf=101"], "--target: 'vmaf=101': vmaf targets lie in (0, 100]"),
        (["--target", "vmaf=93", "--max-probes", "1"], "--max-probes: 1: expected a whole"),
        (["--target", "vmaf=93", "--tolerance", "x"], "--tolerance x: expected a number"),
        (["--target", "vmaf=93", "--range", "40"], "--range: '40': write LOW:HIGH, e.g. 18:40"),
        (
            ["--target", "vmaf=93", "--family", "libx264", "--encoder", "libx265"],
            "--encoder/--preset and --family: give the families with --family only",
        ),
    ],
)
def test_bad_search_flags_name_the_flag_and_the_fix(
    clip: str, argv: list[str], expected: str
) -> None:
    assert expected in problems("--input", clip, *argv)


def test_a_search_needs_real_pictures(clip: str) -> None:
    assert "a search needs real pictures" in problems("--input", "testsrc2", "--target", "vmaf=9")
    assert "'/nope.mp4' is not a file" in problems("--input", "/nope.mp4", "--target", "vmaf=9")


def test_each_family_gets_its_rate_control_and_domain(clip: str) -> None:
    s = spec("--input", clip, "--target", "vmaf=93", "--family", "libx264:veryfast",
             "--family", "libsvtav1:8", "--family", "h264_nvenc:p4")  # fmt: skip
    x264, svt, nvenc = plan_families(s, INFO, SIZE, probe_hardware=False)
    assert x264.family.name == "libx264:veryfast@640x360/crf"
    assert (x264.domain.values[0], x264.domain.values[-1], x264.domain.size) == (51.0, 0.0, 103)
    assert (svt.domain.values[0], svt.domain.values[-1], svt.domain.size) == (63.0, 1.0, 63)
    assert nvenc.family.rate_control == "cq" and nvenc.domain.values[-1] == 1.0
    narrow = spec("--input", clip, "--target", "vmaf=93", "--range", "18:30", "--step", "2")
    (plan,) = plan_families(narrow, INFO, SIZE, probe_hardware=False)
    assert plan.domain.values == (30.0, 28.0, 26.0, 24.0, 22.0, 20.0, 18.0)
    abr = spec("--input", clip, "--target", "vmaf=93", "--rate-control", "bitrate")
    (plan,) = plan_families(abr, INFO, SIZE, probe_hardware=False)
    assert plan.domain.text(0) == "29k" and plan.family.rung(800_000.0).key == "640x360@800k"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--family", "libx999:fast"],
            "family libx999:fast: encoder: 'libx999' is not in `/usr/bin/ffmpeg -encoders`",
        ),
        (
            ["--family", "libx264:fast", "--rate-control", "cq"],
            "family libx264:fast: rate_control: libx264 has no cq rate control here (it has "
            "bitrate or crf); use rate_control crf",
        ),
        (
            ["--family", "libopenh264"],
            "family libopenh264: libopenh264 has no constant-quality rate control here; search "
            "its bitrate with --rate-control bitrate",
        ),
        (
            ["--family", "libx264:fast", "--range", "10:60"],
            "family libx264:fast: range 10:60 leaves libx264's crf values (numbers from 0 to 51)",
        ),
        (
            ["--family", "libsvtav1:8", "--step", "0.5"],
            "family libsvtav1:8: step 0.5: libsvtav1 takes whole crf values only",
        ),
    ],
)
def test_families_this_ffmpeg_or_encoder_cannot_search_are_named(
    clip: str, argv: list[str], expected: str
) -> None:
    with pytest.raises(ScenarioError) as info:
        plan_families(spec("--input", clip, "--target", "vmaf=93", *argv), INFO, SIZE,
                      probe_hardware=False)  # fmt: skip
    assert expected in "\n".join(info.value.problems)


def test_long_inputs_are_sampled_evenly_and_short_ones_probed_whole() -> None:
    assert plan_segments(5.28, 4, 20.0) == (Segment(),)
    assert plan_segments(None, 4, 20.0) == (Segment(),)
    assert plan_segments(159.0, 4, 20.0) == (Segment(),)  # 80 s of 159: more than half
    assert plan_segments(3600.0, 4, 20.0) == (
        Segment(440.0, 20.0),
        Segment(1340.0, 20.0),
        Segment(2240.0, 20.0),
        Segment(3140.0, 20.0),
    )


def test_a_search_file_is_recognised_and_validated(tmp_path: Path, clip: str) -> None:
    path = tmp_path / "s.json"
    body: dict[str, Any] = {
        "input": Path(clip).name,  # relative to the file
        "target": "vmaf=90",
        "families": ["libx264:veryfast", {"encoder": "libx265", "preset": "fast"}],
        "resolution": "640x360",
        "repeat": 2,
    }
    path.write_text(json.dumps({"description": "x", "search": body}))
    assert is_search_file(path)
    s = spec_from_file(path, {"duration": 5.0})
    assert s.families == (("libx264", "veryfast"), ("libx265", "fast"))
    assert s.input_path == clip and s.energy == {"repeat": RepeatPolicy.fixed(2), "duration": 5.0}
    path.write_text(json.dumps({"search": {**body, "max_probe": 3}, "scenarios": []}))
    with pytest.raises(ScenarioError) as info:
        spec_from_file(path, {"encoder": "libx265"})
    text = "\n".join(info.value.problems)
    assert "top level: unknown key 'scenarios'" in text
    assert "search.max_probe: unknown field" in text
    assert "flags --encoder: not used with a search file" in text
    assert not is_search_file(tmp_path / "missing.json")


def test_search_records_round_trip_with_how_they_were_probed() -> None:
    probe = Probe(23.5, 92.8, 612_000.0, 1.2, 8.4)
    record = SearchRecord(
        family="libx264:veryfast@640x360/crf",
        encoder="libx264",
        preset="veryfast",
        resolution="640x360",
        rate_control="crf",
        target_metric="vmaf",
        target_value=93.0,
        status="found",
        probes=(Probe(25.5, 90.1, 400_000.0, 1.0, 8.0), probe),
        chosen=Probe(23.5, 92.8, 612_000.0, 0.0, 0.0),
        scenario="search-libx264-veryfast-360p-crf23.5",
        message="crf 23.5 (vmaf 92.8) is within ±0.5 of vmaf=93",
        tolerance=0.5,
        max_probes=8,
        vmaf_subsample=5,
        samples=((440.0, 20.0), (1340.0, 20.0)),
    )
    run = RunManifest(run_id="r", started_ms=1, search=[record])
    again = RunManifest.from_json(run.to_json(), "m")
    assert again.search == [record]
    old = run.to_json()
    for key in ("tolerance", "max_probes", "vmaf_subsample", "samples"):
        del old["search"][0][key]
    assert RunManifest.from_json(old, "m").search[0].samples == ()


needs_clip = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or clip_path("bbb") is None,
    reason="needs ffmpeg and the quality extra's clips (make venv)",
)


@needs_clip
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--target", "vmaf:93"], "--target: 'vmaf:93': write METRIC=VALUE"),
        (["--target", "vmaf=93", "--family", "libx999:fast"], "'libx999' is not in"),
        (["--target", "vmaf=93", "--range", "0:60"], "range 0:60 leaves libx264's crf"),
        (["--target", "vmaf=93", "--rate-control", "cq"], "libx264 has no cq rate control"),
    ],
)
def test_search_command_exits_2_on_bad_input(
    argv: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["search", "--input", "bbb", "--resolution", "320x180", *argv, "--dry-run",
         "--output-dir", str(tmp_path)],
        env={},
    )  # fmt: skip
    assert code == 2
    assert expected in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@needs_clip
def test_search_dry_run_prints_each_familys_first_probe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["search", "--input", "bbb", "--resolution", "320x180", "--target", "psnr=38",
         "--family", "libx264:veryfast", "--family", "libx265:fast", "--dry-run",
         "--output-dir", str(tmp_path)],
        env={},
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "# libx264:veryfast@320x180/crf: 103 settings" in out
    assert "-c:v libx265 -preset fast -crf 25.5" in out
    assert out.count("psnr=stats_file=psnr.log") == 2
    assert list(tmp_path.iterdir()) == []


SCENARIOS_DIR = Path(__file__).resolve().parents[1] / "scenarios"


def test_the_schema_documents_the_search_form_and_the_shipped_files_follow_it() -> None:
    from ffmpeg_runner.search_cli import ENERGY_FIELDS, SEARCH_FIELDS

    schema = json.loads((SCENARIOS_DIR / "schema.json").read_text())
    assert set(schema["$defs"]["search"]["properties"]) == {*SEARCH_FIELDS, *ENERGY_FIELDS}
    jsonschema = pytest.importorskip("jsonschema")
    for path in sorted(SCENARIOS_DIR.glob("*.json")):
        if path.name != "schema.json":
            jsonschema.validate(json.loads(path.read_text()), schema)


@needs_clip
def test_the_shipped_search_file_runs_through_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["batch", "--file", "search", "--repeat", "1", "--dry-run",
                 "--output-dir", str(tmp_path)], env={})  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith("# search vmaf=80 over 3 families")
    for family in ("libx264:veryfast", "libx264:medium", "libx265:fast"):
        assert f"# {family}@640x360/crf:" in out
