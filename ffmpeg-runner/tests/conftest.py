"""Fixtures of the ffmpeg runner's tests: the real ffmpeg (skipped where absent) and tiny
scenarios (160x90, ultrafast, a couple of seconds) so real encodes stay cheap."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ffmpeg_runner.ffmpeg import FfmpegInfo, probe_ffmpeg
from ffmpeg_runner.runner import RunOptions
from ffmpeg_runner.scenario import Scenario, parse_scenario


@pytest.fixture(scope="session")
def ffmpeg_info() -> FfmpegInfo:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (apt-get install ffmpeg)")
    return probe_ffmpeg()


@pytest.fixture
def make_scenario() -> Callable[..., Scenario]:
    def make(**fields: Any) -> Scenario:
        values: dict[str, Any] = {
            "name": "tiny",
            "encoder": "libx264",
            "preset": "ultrafast",
            "resolution": "160x90",
            "fps": 25,
            "duration": 1.5,
            "stabilization": 0.5,
            "cooldown": 0,
            "bitrate": 200_000,
        }
        values.update(fields)
        if "ladder" in fields:
            values.pop("bitrate")
        return parse_scenario(values)

    return make


@pytest.fixture
def run_options(tmp_path: Path, ffmpeg_info: FfmpegInfo) -> Callable[..., RunOptions]:
    def make(**overrides: Any) -> RunOptions:
        values: dict[str, Any] = {
            "run_id": "test-run",
            "output_dir": tmp_path / "results",
            "ffmpeg": ffmpeg_info,
            "sample_interval_s": 0.1,
            "stop_grace_s": 5.0,
        }
        values.update(overrides)
        return RunOptions(**values)

    return make
