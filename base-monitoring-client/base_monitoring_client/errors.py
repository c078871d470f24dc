"""Exception root of the base client: every error a user sees derives from MonitoringClientError."""

from __future__ import annotations


class MonitoringClientError(Exception):
    """Root of every error raised by wattpush clients."""

    exit_code = 1


class ProblemsError(MonitoringClientError):
    """An error that lists every problem found at once (each naming the setting and the fix)."""

    exit_code = 2
    noun = "problems"

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            text = self.problems[0]
        else:
            text = f"{len(self.problems)} {self.noun}:\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        super().__init__(text)


class ConfigError(ProblemsError):
    """Invalid configuration. The message names the setting, the bad value and the fix."""

    noun = "configuration problems"


class DeviceUnavailableError(MonitoringClientError):
    """The hardware a client measures is absent (no GPU, no driver, no socket). Exit code 3."""

    exit_code = 3


class EncodeError(MonitoringClientError):
    """A sample cannot be written in remote-write form (bad name, label or timestamp)."""


class SpoolError(MonitoringClientError):
    """The disk spool cannot be used (directory not writable, ...)."""
