"""The words every part of the report shares: energy bases, scores, live or offline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..attribution import BASIS_SCORES

BASIS_TEXT = {
    "attributed": "attributed to the transcode by its share of busy CPU, idle power excluded",
    "net": "net of idle power",
    "gross": "whole machine, baseline not subtracted",
}
SCORE_WORDS = {
    "pixels_per_joule": "output pixels per joule",
    "energy_j": "energy per window (J)",
    "energy_per_output_minute_j": "J per output minute",
    "throughput_per_watt": "frames per second per watt (whole machine)",
    "energy_per_frame_j": "J per output frame (whole machine)",
    "mean_power_w": "mean power (W, whole machine)",
}
MODE_TEXT = {
    "offline": "offline: windows encoded as fast as the machine could, so the figures are the "
    "cost of encoding a file",
    "live": "live: windows ran at the source frame rate (--realtime), so the figures are the "
    "cost of encoding live",
    "mixed": "live and offline windows are mixed; live families carry /live and are compared "
    "apart on the frontier",
    "unknown": "live or offline is unknown: windows discovered from Prometheus do not record "
    "--realtime; pass --results for it",
}


def mode_head(mode: str) -> str:
    """``offline``, ``live``, ... : the mode's first words."""
    return MODE_TEXT[mode].split(":")[0]


def describe_score(column: str) -> str:
    """``attributed_pixels_per_joule`` -> ``output pixels per joule of attributed energy``."""
    for base, variants in BASIS_SCORES.items():
        for basis, name in variants.items():
            if name == column:
                return f"{SCORE_WORDS[base]} of {basis} energy"
    return SCORE_WORDS.get(column, column)


def inserted(doc: Mapping[str, Any], after: str, key: str, value: Any) -> dict[str, Any]:
    """``doc`` with ``key: value`` right after ``after`` (JSON keys keep their order)."""
    out: dict[str, Any] = {}
    for k, v in doc.items():
        out[k] = v
        if k == after:
            out[key] = value
    return out
