"""The runner never loses finished work: an output directory it cannot write is refused at
start, and a disk that fills up mid-batch ends the run ``failed`` with the finished windows
kept and the reason stated (real ffmpeg, a real full disk: a small tmpfs)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ffmpeg_runner.cli import main
from ffmpeg_runner.contract import RunManifest
from ffmpeg_runner.runner import Runner, RunOptions
from ffmpeg_runner.scenario import Scenario
from wattpush_testing.ffmpeg import HOST, RecordingSink
from wattpush_testing.files import fill, read_only_dir, small_disk

TINY = ["--preset", "ultrafast", "--resolution", "160x90", "--fps", "25", "--cooldown", "0"]


def test_an_output_dir_it_cannot_write_is_refused_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ffmpeg_info: Any
) -> None:
    with read_only_dir(tmp_path / "results") as results:
        code = main(
            ["single", "--duration", "0.5", "--no-push", "--output-dir", str(results / "sub"),
             *TINY],
            env={},
        )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"OUTPUT_DIR={results / 'sub'}: cannot write there" in err
    assert "Traceback" not in err


class FillsTheDiskAfterTheFirstWindow(RecordingSink):
    """Fills the output file system to the last byte as the first window ends: its record,
    and the run's end, must still reach the manifest."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory
        self.filled = False

    def end_window(self, end_ms: int) -> None:
        super().end_window(end_ms)
        if not self.filled:
            self.filled = True
            fill(self.directory)


@pytest.mark.integration
def test_a_full_disk_mid_batch_ends_the_run_failed_with_the_finished_window_kept(
    tmp_path: Path,
    make_scenario: Callable[..., Scenario],
    run_options: Callable[..., RunOptions],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with small_disk(tmp_path / "disk", "2m") as disk:
        options = run_options(output_dir=disk / "results", run_id="full")
        scenario = make_scenario(repeat=3, duration=0.6, stabilization=0.2)
        sink = FillsTheDiskAfterTheFirstWindow(disk)
        manifest = Runner([scenario], options, sink=sink, host=HOST).run()
        doc = json.loads(options.manifest_path.read_text())
        leftovers = sorted(p.name for p in options.output_dir.iterdir())
    assert sink.filled
    assert manifest.status == "failed"
    run = RunManifest.from_json(doc, "full.json")
    assert run.status == "failed"
    assert run.error is not None and "full" in run.error, run.error
    assert "windows finished so far (1) are in the manifest" in run.error
    # The window that ended as the disk filled is there, with its measurements.
    assert [w.repeat for w in run.windows] == [0]
    assert run.windows[0].status == "ok" and run.windows[0].frames_total > 0
    assert run.ended_ms is not None
    # The reserve is given back; no temp file is left.
    assert leftovers == ["full.json"], leftovers
    assert "run full stopped" in caplog.text


@pytest.mark.integration
def test_a_full_disk_through_the_command_line_exits_1_without_a_traceback(
    tmp_path: Path, ffmpeg_info: Any
) -> None:
    import subprocess

    from wattpush_testing.ffmpeg import runner_env

    with small_disk(tmp_path / "disk", "2m") as disk:
        results = disk / "results"
        results.mkdir()
        # Output files fill the disk while the windows run.
        args = ["single", "--duration", "2", "--stabilization", "0.2", "--repeat", "4",
                "--no-push", "--output", "files", "--bitrate", "20M", "--run-id", "cli-full",
                "--output-dir", str(results), "--preset", "ultrafast", "--resolution",
                "640x360", "--fps", "25", "--cooldown", "0"]  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "ffmpeg_runner", *args],
            env=runner_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        doc = json.loads((results / "cli-full.json").read_text())
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    # ffmpeg's own writes fail first (that window is failed, with ffmpeg's words), then the
    # manifest's: the run ends there, the window kept, the reason in the manifest and the log.
    assert doc["status"] == "failed"
    assert doc["windows"], "every window lost"
    assert "No space left on device" in doc["windows"][-1]["error"]
    assert "is full" in doc["error"] and doc["error"] in done.stderr
    assert len(doc["windows"]) < 4
