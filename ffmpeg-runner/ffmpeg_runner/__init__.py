"""wattpush ffmpeg runner: reproducible transcoding scenarios whose windows are tagged in
Prometheus, with a results manifest per run."""

from __future__ import annotations

from base_monitoring_client import __version__

from .errors import FfmpegUnavailableError, RunnerError, ScenarioError

__all__ = ["FfmpegUnavailableError", "RunnerError", "ScenarioError", "__version__"]
