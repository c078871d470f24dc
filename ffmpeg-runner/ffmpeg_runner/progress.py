"""Parsers for what ffmpeg reports: ``-progress`` blocks and the final per-output statistics."""

from __future__ import annotations

import re
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
