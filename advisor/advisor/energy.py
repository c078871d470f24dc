"""Energy accounting math, pure functions over numpy arrays (unit-tested in isolation).

Energy over a window is ∫P dt. From a ``*_joules_total`` counter it is the increase between the
window edges (counter resets handled as Prometheus does: a drop means the counter restarted
from zero). Without a counter it is the trapezoidal integral of the power gauge. Either way the
cumulative energy is linearly interpolated at the exact window edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

FloatArray = npt.NDArray[np.float64]


def counter_cumulative(v: FloatArray) -> FloatArray:
    """Reset-corrected running total of a counter, starting at 0 at the first sample.

    A sample lower than its predecessor is a reset: the increase over that step is the new value
    itself (what Prometheus' ``increase()`` assumes).
    """
    if v.size == 0:
        return np.empty(0)
    d = np.diff(v)
    d = np.where(d < 0, v[1:], d)
    return np.concatenate(([0.0], np.cumsum(d)))


def power_cumulative(t: FloatArray, p: FloatArray) -> FloatArray:
    """Trapezoidal running integral of a power gauge (J), 0 at the first sample."""
    if t.size == 0:
        return np.empty(0)
    return np.concatenate(([0.0], np.cumsum(np.diff(t) * (p[1:] + p[:-1]) / 2.0)))


@dataclass(frozen=True)
class WindowIntegrals:
    """Per-window integral (J, NaN where missing) and why each missing one is missing."""

    values: FloatArray
    reasons: list[str | None]
    notes: list[str | None]  # what was tolerated (counter gaps inside or at the edge of a window)
    # Worst-case absolute error (J) from edges interpolated inside a counter gap; 0 when exact.
    edge_error: FloatArray


def _edge_bounds(cum: FloatArray, k: int, at_edge: float) -> tuple[float, float]:
    """How far the interpolated cumulative value at an edge inside gap ``k`` can be from the
    truth: a counter only rises, so the true value lies between the two samples around it."""
    return at_edge - float(cum[k]), float(cum[k + 1]) - at_edge


def window_integrals(
    t: FloatArray,
    cum: FloatArray,
    starts: FloatArray,
    ends: FloatArray,
    *,
    max_gap_s: float,
    raw_counter: FloatArray | None = None,
    max_edge_gap_s: float = 0.0,
) -> WindowIntegrals:
    """cum(end) - cum(start) for each window, NaN when the data does not cover the window.

    A window is covered when a sample lies within ``max_gap_s`` of both edges and no gap between
    consecutive samples inside it exceeds ``max_gap_s``. With ``raw_counter`` (the values of an
    energy counter at ``t``), longer gaps are accepted when the counter did not go back across
    them (a reset in a gap, a restarted client, lost the energy up to it):
    - strictly inside the window the difference of a counter is exact whatever happened between
      two reads (a client stalled by load);
    - a window edge inside a gap of at most ``max_edge_gap_s`` is interpolated; the true value
      lies between the samples around it, so the worst-case error is known and reported in
      ``edge_error`` and the note. Longer edge gaps leave the window missing.
    """
    n = starts.size
    values = np.full(n, np.nan)
    reasons: list[str | None] = [None] * n
    notes: list[str | None] = [None] * n
    edge_error = np.zeros(n)
    if t.size < 2:
        why = "no samples" if t.size == 0 else "one sample"
        return WindowIntegrals(values, [why] * n, notes, edge_error)
    at_start = np.interp(starts, t, cum)
    at_end = np.interp(ends, t, cum)
    lo = np.searchsorted(t, starts, side="right") - 1  # last sample <= start
    hi = np.searchsorted(t, ends, side="left")  # first sample >= end
    gaps = np.diff(t)
    for i in range(n):
        a, b = int(lo[i]), int(hi[i])
        if a < 0 and t[0] - starts[i] > max_gap_s:
            reasons[i] = f"no data until {t[0] - starts[i]:.1f} s after the window start"
            continue
        if b >= t.size and ends[i] - t[-1] > max_gap_s:
            reasons[i] = f"data ends {ends[i] - t[-1]:.1f} s before the window end"
            continue
        first, last = max(a, 0), min(b, t.size - 1)  # gaps[first:last]: those touching it
        seg = gaps[first:last]
        minus = plus = 0.0  # worst-case error of the result, each way
        if seg.size and float(seg.max()) > max_gap_s:
            big = first + np.flatnonzero(seg > max_gap_s)
            longest = float(seg.max())
            if raw_counter is None:
                reasons[i] = f"gap of {longest:.1f} s in the data"
                continue
            if (raw_counter[big + 1] < raw_counter[big]).any():
                reasons[i] = f"counter reset inside a gap of {longest:.1f} s"
                continue
            if a == b - 1:
                reasons[i] = f"the whole window lies inside a gap of {longest:.1f} s"
                continue
            parts = []
            interior = (big > a) & (big < b - 1)  # neither edge falls inside the gap
            if interior.any():
                inner = gaps[big[interior]]
                parts.append(f"gap of {float(inner.max()):.1f} s inside, difference exact")
            if a in big:  # the start lies inside gap a
                if gaps[a] > max_edge_gap_s:
                    reasons[i] = _edge_reason("start", float(gaps[a]), max_edge_gap_s)
                    continue
                down, up = _edge_bounds(cum, a, float(at_start[i]))
                minus, plus = minus + up, plus + down  # a higher start value means less energy
                parts.append(f"start inside a {gaps[a]:.1f} s gap")
            if b - 1 in big:  # the end lies inside gap b - 1
                if gaps[b - 1] > max_edge_gap_s:
                    reasons[i] = _edge_reason("end", float(gaps[b - 1]), max_edge_gap_s)
                    continue
                down, up = _edge_bounds(cum, b - 1, float(at_end[i]))
                minus, plus = minus + down, plus + up
                parts.append(f"end inside a {gaps[b - 1]:.1f} s gap")
            if minus or plus:
                parts.append(f"interpolated, true value within -{minus:.3g}/+{plus:.3g} J")
            notes[i] = ", ".join(parts)
        # Data starting/ending just inside the window (within max_gap_s): scale the covered part
        # to the full window rather than count the uncovered edge as zero energy.
        covered = min(ends[i], t[-1]) - max(starts[i], t[0])
        full = ends[i] - starts[i]
        scale = full / covered if 0 < covered < full else 1.0
        values[i] = (at_end[i] - at_start[i]) * scale
        edge_error[i] = max(minus, plus) * scale
    return WindowIntegrals(values, reasons, notes, edge_error)


def _edge_reason(edge: str, gap_s: float, max_edge_gap_s: float) -> str:
    if max_edge_gap_s <= 0:
        return f"gap of {gap_s:.1f} s in the data"
    return (
        f"the window {edge} lies inside a gap of {gap_s:.1f} s in the data, longer than "
        f"max_edge_gap_s={max_edge_gap_s:g} (--max-edge-gap)"
    )


def resample_power(
    t: FloatArray, cum: FloatArray, grid: FloatArray, max_gap_s: float
) -> FloatArray:
    """Mean power (W) over each interval of ``grid`` from a cumulative energy; NaN in gaps."""
    if t.size < 2 or grid.size < 2:
        return np.full(max(grid.size - 1, 0), np.nan)
    c = np.interp(grid, t, cum)
    p = np.diff(c) / np.diff(grid)
    # Intervals not backed by data (outside the series or inside a gap) are unknown, not 0.
    mid = (grid[1:] + grid[:-1]) / 2
    idx = np.searchsorted(t, mid)
    ok = (idx > 0) & (idx < t.size)
    idx_c = np.clip(idx, 1, t.size - 1)
    ok &= (t[idx_c] - t[idx_c - 1]) <= max_gap_s
    return np.where(ok, p, np.nan)


def mean_ci95(values: FloatArray) -> tuple[float, float, int]:
    """Mean, 95 % confidence half-width (Student t), and n of the finite values."""
    x = values[np.isfinite(values)]
    n = int(x.size)
    if n == 0:
        return float("nan"), float("nan"), 0
    mean = float(x.mean())
    if n < 2:
        return mean, float("nan"), n
    sem = float(x.std(ddof=1)) / np.sqrt(n)
    return mean, float(stats.t.ppf(0.975, n - 1) * sem), n
