"""The command line: flags to scenarios, dry runs, exit codes, signals."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ffmpeg_runner.cli import build_parser, main, scenarios_from_args
from ffmpeg_runner.contract import FRAMES_METRIC, INFO_METRIC
from wattpush_testing import wait_until
from wattpush_testing.faults import FaultReceiver, RequestRecord
from wattpush_testing.ffmpeg import alive, child_pids, ffmpeg_children, runner_env

TINY = ["--preset", "ultrafast", "--resolution", "160x90", "--fps", "25", "--cooldown", "0"]


def scenarios(*argv: str) -> list[Any]:
    return scenarios_from_args(build_parser().parse_args(list(argv)))


def test_single_and_multi_sweeps_name_their_scenarios() -> None:
    (one,) = scenarios("single", "--encoder", "libx265", "--preset", "fast")
    assert (one.name, one.streams, one.bitrate) == ("libx265-fast-720p", 1, "2M")
    multi = scenarios("multi", "--count", "1,2", "--bitrates", "1M,2M", "--preset", "fast")
    assert [(s.name, s.streams) for s in multi] == [
        ("libx264-fast-720p-1M-1x", 1), ("libx264-fast-720p-1M-2x", 2),
        ("libx264-fast-720p-2M-1x", 1), ("libx264-fast-720p-2M-2x", 2),
    ]  # fmt: skip
    (named,) = scenarios("multi", "--count", "4", "--name", "mine", "--with-baseline")
    assert (named.name, named.streams, named.with_baseline) == ("mine", 4, True)
    (ladder,) = scenarios("single", "--ladder", "640x360@800k+1280x720@2M", "--duration", "3")
    assert ladder.ladder == "1280x720@2M+640x360@800k" and ladder.duration_s == 3


def test_flag_problems_are_all_reported(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["multi", "--count", "0", "--fps", "fast", "--bitrate", "1Q", "--dry-run"], env={})
    assert code == 2
    err = capsys.readouterr().err
    assert "--fps fast" in err and "--bitrate(s) 1Q" in err and "--count 0" in err


def test_dry_run_prints_exact_commands_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["multi", "--count", "2", "--ladder", "160x90@200k,96x54@100k", "--repeat", "2",
         "--dry-run", "--run-id", "dry", "--output-dir", str(tmp_path), *TINY],
        env={},
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    commands = [shlex.split(line) for line in out.splitlines() if not line.startswith("#")]
    assert len(commands) == 4  # 2 repeats x 2 streams
    graph = commands[0][commands[0].index("-filter_complex") + 1]
    assert graph.startswith("[0:v:0]split=2")
    assert list(tmp_path.iterdir()) == []


def test_bad_batch_file_exits_2_naming_the_scenario_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = tmp_path / "bad.json"
    batch.write_text(json.dumps({"scenarios": [{"name": "ok"}, {"name": "x", "streams": 99}]}))
    assert main(["batch", "--file", str(batch), "--dry-run"], env={}) == 2
    err = capsys.readouterr().err
    assert "scenarios[1] 'x': streams: 99: expected a whole number from 1 to 64" in err


def test_order_and_repeats_flags_plan_the_windows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def planned(*flags: str) -> list[str]:
        argv = ["single", "--bitrates", "200k,400k", "--dry-run", "--output-dir", str(tmp_path)]
        assert main([*argv, *TINY, *flags], env={}) == 0
        return [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("# ")]

    interleaved = planned("--repeats", "2")
    assert "# order interleaved" in interleaved
    streams = [ln for ln in interleaved if " stream " in ln]
    assert [ln.split()[1][-4:] + ln.split()[3] for ln in streams] == [
        "200k0", "400k0", "200k1", "400k1",
    ]  # fmt: skip
    sequential = [
        ln for ln in planned("--repeat", "2", "--order", "sequential") if " stream " in ln
    ]
    assert [ln.split()[1][-4:] + ln.split()[3] for ln in sequential] == [
        "200k0", "200k1", "400k0", "400k1",
    ]  # fmt: skip
    shuffled = planned("--repeats", "auto:2:4", "--order", "shuffled:9")
    assert "# order shuffled (seed 9)" in shuffled
    assert any("repeats auto:2:4: 2 shown; up to 4 until stable" in ln for ln in shuffled)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--order", "random"], "--order random: 'random': expected sequential, interleaved or "
         "shuffled[:SEED] (e.g. shuffled:42)"),
        (["--order", "sequential:4"], "only shuffled takes a seed; write sequential or shuffled:4"),
        (["--repeats", "auto:5:3"], "--repeats auto:5:3: 'auto:5:3': MAX must be from MIN (5) to "
         "1000, e.g. auto:5:10"),
        (["--repeats", "sometimes"], "--repeats sometimes: 'sometimes': expected a whole number"),
    ],
)  # fmt: skip
def test_bad_order_or_repeats_exit_2_naming_the_flag(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["single", "--dry-run", *flags], env={}) == 2
    assert message in capsys.readouterr().err


def test_batch_file_order_and_repeats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    batch = tmp_path / "b.json"
    batch.write_text(
        json.dumps(
            {
                "order": "shuffled:3",
                "defaults": {"repeat": "auto:2:3", "preset": "ultrafast"},
                "scenarios": [{"name": "x"}, {"name": "y", "repeat": 2}],
            }
        )
    )
    argv = ["batch", "--file", str(batch), "--dry-run", "--output-dir", str(tmp_path)]
    assert main(argv, env={}) == 0
    out = capsys.readouterr().out
    assert "# order shuffled (seed 3)" in out and "# x: repeats auto:2:3" in out
    assert "# y: repeats" not in out  # a fixed count needs no note
    assert main([*argv, "--order", "sequential"], env={}) == 0  # the flag wins
    assert "# order sequential" in capsys.readouterr().out
    batch.write_text(json.dumps({"order": "alphabetical", "scenarios": [{"name": "x"}]}))
    assert main(argv, env={}) == 2
    err = capsys.readouterr().err
    assert "order: 'alphabetical': expected sequential, interleaved or shuffled" in err
    batch.write_text(json.dumps({"scenarios": [{"name": "x", "repeat": "auto:1:3"}]}))
    assert main(argv, env={}) == 2
    assert "scenarios[0] 'x': repeat: 'auto:1:3': MIN must be at least 2" in capsys.readouterr().err


def test_unknown_encoder_exits_2_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ffmpeg_info: Any
) -> None:
    code = main(["single", "--encoder", "libx999", "--output-dir", str(tmp_path)], env={})
    assert code == 2
    assert "'libx999' is not in" in capsys.readouterr().err
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []


def test_invalid_settings_and_run_id(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["single", "--dry-run"], env={"SAMPLE_INTERVAL_S": "fast"}) == 2
    assert "SAMPLE_INTERVAL_S='fast'" in capsys.readouterr().err
    assert main(["single", "--dry-run", "--run-id", "../x"], env={}) == 2
    assert "--run-id '../x'" in capsys.readouterr().err


def test_missing_ffmpeg_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["single"], env={"FFMPEG_PATH": "/nonexistent/ffmpeg"}) == 3
    assert "ffmpeg not found" in capsys.readouterr().err


@pytest.mark.integration
def test_no_push_run_writes_the_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["single", "--duration", "0.5", "--stabilization", "0.2", "--no-push", "--run-id", "np",
         "--output-dir", str(tmp_path), *TINY],
        env={},
    )  # fmt: skip
    assert code == 0
    assert f"manifest: {tmp_path / 'np.json'} (completed)" in capsys.readouterr().out
    assert json.loads((tmp_path / "np.json").read_text())["windows"][0]["status"] == "ok"


def encoding_inside_the_window(records: list[RequestRecord]) -> bool:
    """The window is open and stream 0 has encoded frames inside it, as the runner pushed it.

    A tick that stamps the open window (an info sample after its start) runs after the runner
    took the window's first progress snapshot, and reads stream 0's progress after that; two
    different frame counts from such ticks on mean the window counts frames whenever it ends.
    """
    points = [p for r in records if r.accepted for p in r.points]
    info = sorted(p.timestamp_ms for p in points if p.name == INFO_METRIC)
    if len(info) < 2:
        return False
    opened = info[1]  # the first tick that saw the window open (info[0] is its exact start)
    counts = {
        p.value
        for p in points
        if p.name == FRAMES_METRIC and p.label("stream") == "0" and p.timestamp_ms >= opened
    }
    return len(counts) >= 2


@pytest.mark.integration
def test_auto_repeats_in_shuffled_rounds_are_recorded(tmp_path: Path) -> None:
    code = main(
        ["single", "--bitrates", "200k,400k", "--duration", "0.6", "--stabilization", "0.2",
         "--repeats", "auto:2:3", "--order", "shuffled:5", "--no-push", "--run-id", "auto",
         "--output-dir", str(tmp_path), *TINY],
        env={},
    )  # fmt: skip
    assert code == 0
    manifest = json.loads((tmp_path / "auto.json").read_text())
    assert (manifest["order"], manifest["seed"]) == ("shuffled", 5)
    windows = [(w["scenario"][-4:], w["repeat"]) for w in manifest["windows"]]
    repeats = {r["scenario"][-4:]: r for r in manifest["repeats"]}
    assert set(repeats) == {"200k", "400k"}
    for name, record in repeats.items():
        assert record["policy"] == "auto:2:3"
        assert record["repeats"] in (2, 3)
        assert record["reason"].startswith(("CI half-width", "MAX (3) reached"))
        assert [r for n, r in windows if n == name] == list(range(record["repeats"]))
    # Rounds: both scenarios' repeat 0 and 1 come before any repeat 2.
    assert sorted(r for _, r in windows[:4]) == [0, 0, 1, 1]
    assert all(w["accounting"]["processes"] == 1 for w in manifest["windows"])


@pytest.mark.integration
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_window_keeps_the_manifest_and_leaves_no_child(
    tmp_path: Path, signum: int
) -> None:
    argv = [sys.executable, "-m", "ffmpeg_runner", "multi", "--count", "2", "--duration", "60",
            "--stabilization", "0.3", "--run-id", "sig", "--output-dir", str(tmp_path),
            *TINY]  # fmt: skip
    with FaultReceiver() as rx:
        env = runner_env({"REMOTE_WRITE_URL": rx.url, "PUSH_INTERVAL_S": "0.2"})
        proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            children = wait_until(
                lambda: len(child_pids(proc.pid)) == 2 and child_pids(proc.pid), 60
            )
            assert children, "ffmpeg children did not start"
            # Signal only once frames were encoded inside the window, however slow the machine.
            assert rx.wait_for(encoding_inside_the_window, timeout=60), "no frames in the window"
            proc.send_signal(signum)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 128 + signum, err
    assert wait_until(lambda: not any(alive(pid) for pid in children), 5)
    manifest = json.loads((tmp_path / "sig.json").read_text())
    assert manifest["status"] == "interrupted"
    (window,) = manifest["windows"]
    assert window["status"] == "interrupted"
    assert signal.Signals(signum).name in window["error"]
    assert window["frames_total"] > 0 and len(window["exit_codes"]) == 2
    assert window["accounting"]["processes"] == 2  # an interrupted window keeps its CPU time
    assert window["accounting"]["transcode_cpu_s"] > 0
    assert "(interrupted)" in out


@pytest.mark.integration
def test_children_die_with_a_killed_runner(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "ffmpeg_runner", "single", "--duration", "60",
            "--stabilization", "0.3", "--no-push", "--run-id", "kill", "--output-dir",
            str(tmp_path), *TINY]  # fmt: skip
    proc = subprocess.Popen(
        argv, env=runner_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        manifest = tmp_path / "kill.json"
        # Kill once ffmpeg runs (exec done), not while the child is still the runner's fork.
        children = wait_until(lambda: manifest.exists() and ffmpeg_children(proc.pid), 60)
        assert children, "ffmpeg did not start"
        proc.kill()  # SIGKILL: the runner cannot stop anything itself
        proc.wait(10)
        assert wait_until(lambda: not any(alive(pid) for pid in children), 10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # The manifest the runner wrote before it died says so.
    assert json.loads((tmp_path / "kill.json").read_text())["status"] == "running"
