"""How numbers read in the report: every formatter the texts, tables and figures use."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..quality import Point, QualityTarget

METRIC_UNITS = {"vmaf": "", "psnr": " dB", "ssim": ""}


def fmt(x: Any) -> str:
    """A figure of the scenario tables: two decimals; three significant digits below 1 (joules
    per frame are often 0.01-0.1, where two decimals would print 0.01 for both ends of an
    interval); four above 10^5."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if not np.isfinite(v):
        return "n/a"
    if v != 0 and abs(v) >= 1e5:
        return f"{v:.4g}"
    if v != 0 and abs(v) < 1:
        return f"{v:.3g}"
    return f"{v:.2f}"


def fmt_pm(mean: Any, ci: Any) -> str:
    """``fmt(mean) ± fmt(ci)``, the half-width only where it is a finite float."""
    s = fmt(mean)
    if ci is not None and isinstance(ci, float | np.floating) and math.isfinite(float(ci)):
        s += f" ± {fmt(ci)}"
    return s


def energy(x: float) -> str:
    """J per output minute: three significant digits below 10, one decimal below 100, whole
    above."""
    if not math.isfinite(x):
        return "n/a"
    return f"{x:.3g}" if abs(x) < 10 else f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}"


def energy_pm(x: float, ci: float) -> str:
    return energy(x) + (f" ± {energy(ci)}" if math.isfinite(ci) else "")


def measured_pm(x: float, ci: float) -> str:
    """A search's measured energy: three significant digits below 100, the half-width two."""
    if not math.isfinite(x):
        return "n/a"
    text = f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"
    if math.isfinite(ci):
        text += f" ± {ci:.2g}" if abs(ci) < 100 else f" ± {ci:.0f}"
    return text


def score(x: float) -> str:
    """A quality score."""
    return f"{x:.4g}"


def rate(bps: float) -> str:
    """``1.25 Mb/s``, ``955 kb/s``; ``n/a`` when unknown."""
    if not math.isfinite(bps):
        return "n/a"
    if bps >= 1e6:
        return f"{bps / 1e6:.3g} Mb/s"
    return f"{bps / 1e3:.3g} kb/s"


def rate_or_blank(bps: float | None) -> str:
    """As ``rate``, but empty when unknown (a table cell with nothing to say)."""
    return "" if bps is None or not math.isfinite(bps) else rate(bps)


def setting(rate_control: str, value: float) -> str:
    """A searched setting: ``1 Mb/s`` or ``crf 23``."""
    return rate_or_blank(value) if rate_control == "bitrate" else f"{rate_control} {value:g}"


def point_setting(p: Point) -> str:
    """``1 Mb/s``, or ``crf 23 (412 kb/s)`` with constant quality."""
    if p.quality_value is None:
        return rate(p.bitrate_bps)
    return f"{p.rate_control} {p.quality_value:g} ({rate(p.bitrate_bps)})"


def target(t: QualityTarget) -> str:
    """``vmaf 93``, ``psnr 40 dB``."""
    return f"{t.metric} {score(t.value)}{METRIC_UNITS[t.metric]}"


def num(x: float | None) -> str:
    """Three significant digits below 1000, whole numbers with thousands separators above."""
    if x is None or not math.isfinite(x):
        return "n/a"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def views(n: float) -> str:
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:,.1f}"
