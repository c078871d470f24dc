"""Parsers for what ffmpeg reports: ``-progress`` blocks and the final per-output statistics;
window edges placed between two timed reports.

ffmpeg writes a report right after the frame that completed its period, so a report's count
is the count at the moment it arrived: counts between two reports are read off the straight
line between them. An edge read as "the last report before it" would be up to one period
stale (a second with ``-stats_period 1``: 25 frames at 25 fps).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# "[verbose]   Output stream #1:0 (video): 3458 frames encoded; 3458 packets muxed (...)"
_FINAL_RE = re.compile(r"Output stream #(\d+):(\d+) \(video\): (\d+) frames encoded")


@dataclass(frozen=True, slots=True)
class ProgressSnapshot:
    """One ``-progress`` block. ``frame`` counts the first video output (ffmpeg 5.1 reports
    no other); ``ended`` is True for the final block (``progress=end``)."""

    frame: int
    fps: float
    speed: float | None
    drop_frames: int
    dup_frames: int
    out_time_us: int | None
    ended: bool


NO_PROGRESS = ProgressSnapshot(0, 0.0, None, 0, 0, None, False)


@dataclass(frozen=True, slots=True)
class TimedSnapshot:
    """A report and the monotonic time (seconds) it arrived."""

    t_s: float
    snapshot: ProgressSnapshot


@dataclass(slots=True)
class ProgressEdge:
    """A window edge at monotonic ``t_s`` and the reports around it: the last that arrived at
    or before it and the first after it (None until it arrives, or for ever when the process
    stopped reporting before: it ended, or was killed)."""

    t_s: float
    before: TimedSnapshot | None = None
    after: TimedSnapshot | None = None

    def offer(self, timed: TimedSnapshot) -> bool:
        """Take a report (in arrival order); True once the report after the edge is known."""
        if self.after is None:
            if timed.t_s <= self.t_s:
                self.before = timed
            else:
                self.after = timed
        return self.after is not None

    def value(self, field: Callable[[ProgressSnapshot], float]) -> float:
        """``field`` at the edge: interpolated between the reports around it; the last report
        when none came after it (a finished process reports no more); 0 before any."""
        before, after = self.before, self.after
        if before is None:
            return 0.0
        if after is None or after.t_s <= before.t_s:
            return float(field(before.snapshot))
        share = (self.t_s - before.t_s) / (after.t_s - before.t_s)
        low, high = field(before.snapshot), field(after.snapshot)
        return low + (high - low) * share

    @property
    def frames(self) -> float:
        return self.value(_frame)

    @property
    def dropped_frames(self) -> float:
        return self.value(_drop_frames)


def _frame(snapshot: ProgressSnapshot) -> float:
    return snapshot.frame


def _drop_frames(snapshot: ProgressSnapshot) -> float:
    return snapshot.drop_frames


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    text = text.strip().rstrip("x").strip()
    try:
        return float(text)
    except ValueError:
        return None  # "N/A" before the first frame


class ProgressParser:
    """Feed ``key=value`` lines; each ``progress=`` line completes a snapshot."""

    def __init__(self) -> None:
        self._fields: dict[str, str] = {}

    def feed(self, line: str) -> ProgressSnapshot | None:
        key, sep, value = line.strip().partition("=")
        if not sep:
            return None
        if key != "progress":
            self._fields[key] = value
            return None
        fields, self._fields = self._fields, {}
        return ProgressSnapshot(
            frame=_int(fields.get("frame")) or 0,
            fps=_float(fields.get("fps")) or 0.0,
            speed=_float(fields.get("speed")),
            drop_frames=_int(fields.get("drop_frames")) or 0,
            dup_frames=_int(fields.get("dup_frames")) or 0,
            out_time_us=_int(fields.get("out_time_us")),
            ended=value.strip() == "end",
        )


def parse_final_frames(line: str) -> tuple[int, int] | None:
    """``(output file index, frames encoded)`` from one line of ffmpeg's final statistics."""
    match = _FINAL_RE.search(line)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(3))
