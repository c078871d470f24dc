"""e2e/gpu_check.sh: its dry run end to end (the fake NVML, libx264 standing in for NVENC, VMAF,
the advisor), and what it says on a machine that lacks something."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from wattpush_testing.gpu import real_nvml_problem

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "e2e" / "gpu_check.sh"
VENV = Path(sys.executable).parent.parent
FAKE_GPU_W = 30.0  # what the dry run's fake GPU draws (FakeGpu's default power)


def run_script(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Any:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        cwd=ROOT,
        env={**os.environ, "VENV": str(VENV), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    missing = [tool for tool in ("prometheus", "ffmpeg") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed; run e2e/install_system_deps.sh")
    out = tmp_path_factory.mktemp("gpu_check") / "run"
    # The script's trap stops what it started (by PID) when the timeout kills it.
    done = run_script("--dry-run", "--out", str(out), env={"GPU_CHECK_CLIENT_S": "15"}, timeout=280)
    return out, done


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_dry_run_proves_the_stand_in_path_and_keeps_everything_in_one_folder(
    dry_run: tuple[Path, Any],
) -> None:
    out, done = dry_run
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    for name in ("summary.txt", "summary.json", "plan.json", "batch.json", "report.json",
                 "report.html", "report.txt", "results/gpu-check.json", "logs/runner.log",
                 "logs/gpu-nvml-client.log", "logs/prometheus.log", "prometheus"):  # fmt: skip
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert all(problems == [] for problems in summary["verdicts"].values()), summary["verdicts"]
    text = (out / "summary.txt").read_text()
    assert text in done.stdout  # printed as well
    assert "h264_nvenc (not used in a dry run):" in text
    assert text.count(": PROVEN") == 2


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_dry_run_measures_the_fake_gpu_exactly(dry_run: tuple[Path, Any]) -> None:
    out, _ = dry_run
    summary = json.loads((out / "summary.json").read_text())
    (gpu,) = summary["client"]["gpus"]
    assert gpu["source"] == "nvml_energy_counter" and gpu["name"] == "NVIDIA Fake (dry run)"
    assert gpu["seconds"] >= 10
    assert gpu["samples"] >= 0.9 * gpu["expected_samples"]
    # The fake's counter follows the wall clock at a constant draw: the stored energy says so.
    assert gpu["mean_power_w"] == pytest.approx(FAKE_GPU_W, rel=0.01)
    report = json.loads((out / "report.json").read_text())
    windows = [w for w in report["windows"] if w["phase"] == "transcode"]
    assert len(windows) == 2 and all(w["status"] == "ok" for w in windows)
    for w in windows:
        assert w["encoder"] == "libx264"
        assert 0 < w["quality_vmaf"] <= 100
        assert w["gpu_energy_j"] == pytest.approx(FAKE_GPU_W * w["duration_s"], rel=0.02)


def test_a_machine_that_lacks_something_is_told_what_and_how_to_fix_it(tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("bash", "sed", "dirname", "date"):
        found = shutil.which(tool)
        if found:
            (bare / tool).symlink_to(found)
    (bare / "python3").symlink_to(sys.executable)
    done = run_script(
        "--dry-run", env={"PATH": str(bare), "VENV": str(tmp_path / "no-venv")}, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "this machine lacks what the check needs" in done.stderr
    assert "run 'make venv'" in done.stderr
    assert "prometheus: apt-get install prometheus" in done.stderr
    assert "ffmpeg (ffmpeg): apt-get install ffmpeg" in done.stderr


@pytest.mark.skipif(real_nvml_problem() is None, reason="NVML works here: the real run applies")
def test_without_a_gpu_the_real_run_exits_3_and_names_the_dry_run() -> None:
    if shutil.which("prometheus") is None or shutil.which("ffmpeg") is None:
        pytest.skip("prometheus and ffmpeg are needed to get past the first checks")
    done = run_script(timeout=60)
    assert done.returncode == 3, done.stderr
    assert "NVML does not start" in done.stderr and "--dry-run" in done.stderr


def test_bad_settings_exit_2_naming_the_variable() -> None:
    done = run_script("--dry-run", env={"GPU_CHECK_CLIENT_S": "soon"})
    assert done.returncode == 2
    assert "GPU_CHECK_CLIENT_S='soon'" in done.stderr
    assert run_script("--frobnicate").returncode == 2


def test_the_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed")
    done = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout
