"""Exception root of the ffmpeg runner; every error a user can see derives from RunnerError."""

from __future__ import annotations

from base_monitoring_client import MonitoringClientError
from base_monitoring_client.errors import ProblemsError


class RunnerError(MonitoringClientError):
    """Root of every error raised by the ffmpeg runner."""

    exit_code = 1


class ScenarioError(ProblemsError, RunnerError):
    """Invalid scenario, batch file or flag. Lists every problem with its location and the fix."""

    exit_code = 2
    noun = "scenario problems"


class FfmpegUnavailableError(RunnerError):
    """ffmpeg is missing or unusable (exit code 3, like a missing device)."""

    exit_code = 3


class QualityUnavailableError(RunnerError):
    """Quality was asked for but no ffmpeg can compute it (exit 2: a setting to fix)."""

    exit_code = 2


class QualityError(RunnerError):
    """Measuring one window's quality failed; the window is kept with ``quality_error``."""


class OutputDirError(RunnerError):
    """OUTPUT_DIR cannot take the manifest (exit 2: a setting to fix, found at start)."""

    exit_code = 2


class ManifestWriteError(RunnerError):
    """The manifest could not be written (the disk is full, the directory became read-only).
    The run ends ``failed``; the message says what was kept."""
