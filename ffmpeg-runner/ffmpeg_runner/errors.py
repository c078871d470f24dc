"""Exception root of the ffmpeg runner; every error a user can see derives from RunnerError."""

from __future__ import annotations

from base_monitoring_client import MonitoringClientError


class RunnerError(MonitoringClientError):
    """Root of every error raised by the ffmpeg runner."""

    exit_code = 1


class ScenarioError(RunnerError):
    """Invalid scenario, batch file or flag. Lists every problem with its location and the fix."""

    exit_code = 2

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            text = self.problems[0]
        else:
            text = f"{len(self.problems)} scenario problems:\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        super().__init__(text)


class FfmpegUnavailableError(RunnerError):
    """ffmpeg is missing or unusable (exit code 3, like a missing device)."""

    exit_code = 3
