"""Target-quality search: the setting of one family (encoder, preset, resolution, rate
control) whose quality is closest to a target, found in a few probes.

This module decides; it measures nothing (``probe.py`` encodes and scores, ``search_cli.py``
runs both). The settings a family can take are a ``Domain``: the encoder's CRF/CQ values, or a
geometric series of bitrates, ordered cheapest first, so that quality rises with the index.

The search is an interpolated bisection, as video tools do it (ab-av1's crf-search, Av1an's
target quality): the first probe is mid-range; until the target is bracketed (one probe below,
one above) the next probe extrapolates from the two nearest probes, or halves the way to the
end of the range that has the missing side, and the last probe allowed goes to that end so the
status is decided; once bracketed, a monotone cubic (Fritsch-Carlson) through the probes is
solved for the target inside the bracket. Scores are interpolated after a transform that makes
them roughly linear in CRF and log bitrate: -ln(1 - q) for VMAF (q/100) and SSIM, the dB of
PSNR as they are (Av1an does the same for VMAF).

It stops when a probe is within the tolerance, when the bracket is one step wide, when an end
of the range is on the wrong side (``unreachable`` / ``exceeded``), when a probe failed, or at
``max_probes``. The chosen setting is the probe closest to the target (on a tie the cheaper):
with a one-step bracket that may be half a step's quality below the target.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from base_monitoring_client import InvalidValue

from .contract import (
    METRIC_RANGES,
    format_bitrate,
    format_quality_value,
    parse_bitrate,
    parse_quality_target,
)

# Valid targets per metric: VMAF 0..100, PSNR in dB (identical frames count as 100), SSIM 0..1.
# Scores this close to perfect are clamped before -ln(1 - q) (which is infinite at 1).
_TRANSFORM_CAP = {"vmaf": 99.99, "ssim": 0.99999}
# The default bitrate range: bits per pixel per frame (0.005 is a smeared picture, 0.3 far
# beyond what any modern encoder needs for a clean one), and its steps: 8 per octave (9 %).
DEFAULT_BITS_PER_PIXEL = (0.005, 0.3)
BITRATE_STEPS_PER_OCTAVE = 8
# Bisection iterations for the inverse of the monotone cubic (2^-60 of a step: exact).
_SOLVE_ITERATIONS = 60


@dataclass(frozen=True)
class Target:
    """A quality target: ``vmaf=93``, ``psnr=40`` (dB) or ``ssim=0.98``."""

    metric: str
    value: float

    def __str__(self) -> str:
        return f"{self.metric}={self.value:g}"


def parse_target(text: str) -> Target:
    """``vmaf=93`` -> Target; InvalidValue names the fix."""
    try:
        metric, value = parse_quality_target(text)
    except ValueError as e:
        raise InvalidValue(f"{text!r}: {e}") from None
    return Target(metric, value)


def transform(metric: str, score: float) -> float:
    """The score on a scale roughly linear in CRF and log bitrate (see the module doc)."""
    if metric == "psnr":
        return score
    cap = _TRANSFORM_CAP[metric]
    scale = 100.0 if metric == "vmaf" else 1.0
    return -math.log(1.0 - min(score, cap) / scale)


# -- the settings of a family ------------------------------------------------------------------


@dataclass(frozen=True)
class Domain:
    """The settings a search may probe, cheapest (lowest quality) first."""

    rate_control: str  # bitrate | crf | cq
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.values) < 2:
            raise ValueError("a search domain needs at least two settings")

    @property
    def size(self) -> int:
        return len(self.values)

    def text(self, index: int) -> str:
        """``crf 23`` or ``800k``."""
        return format_value(self.rate_control, self.values[index])

    @property
    def range_text(self) -> str:
        return f"{self.text(self.size - 1)} (best) to {self.text(0)} (cheapest)"

    @classmethod
    def quality_scale(cls, rate_control: str, low: float, high: float, step: float = 1.0) -> Domain:
        """CRF/CQ values from ``high`` (cheapest) down to ``low``, ``step`` apart (multiples
        of ``step``)."""
        first, last = math.ceil(low / step), math.floor(high / step)
        return cls(rate_control, tuple(k * step for k in range(last, first - 1, -1)))

    @classmethod
    def bitrates(cls, low_bps: int, high_bps: int) -> Domain:
        """``low_bps`` to ``high_bps`` in steps of 1/8 octave, rounded to whole kb/s."""
        octaves = math.log2(high_bps / low_bps)
        steps = max(1, round(octaves * BITRATE_STEPS_PER_OCTAVE))
        ratio = high_bps / low_bps
        values = [round(low_bps * ratio ** (k / steps), -3) for k in range(steps + 1)]
        return cls("bitrate", tuple(float(v) for v in sorted(set(values))))


def format_value(rate_control: str, value: float) -> str:
    if rate_control == "bitrate":
        return format_bitrate(round(value))
    return f"{rate_control} {format_quality_value(value)}"


def default_bitrate_range(width: int, height: int, fps: float) -> tuple[int, int]:
    """The bitrates a bitrate search spans by default at this size and frame rate."""
    pixels_per_s = width * height * fps
    low, high = (int(round(pixels_per_s * bpp, -3)) for bpp in DEFAULT_BITS_PER_PIXEL)
    return max(low, 1000), max(high, 2000)


def parse_range(text: str, rate_control: str) -> tuple[float, float]:
    """``--range LOW:HIGH``: CRF/CQ values (``18:40``) or bitrates (``100k:4M``)."""
    low_text, sep, high_text = str(text).partition(":")
    example = "100k:4M" if rate_control == "bitrate" else "18:40"
    if not sep:
        raise InvalidValue(f"{text!r}: write LOW:HIGH, e.g. {example}")
    try:
        if rate_control == "bitrate":
            low, high = float(parse_bitrate(low_text)), float(parse_bitrate(high_text))
        else:
            low, high = float(low_text), float(high_text)
    except (InvalidValue, ValueError):
        raise InvalidValue(f"{text!r}: write LOW:HIGH, e.g. {example}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        raise InvalidValue(f"{text!r}: LOW must be below HIGH, e.g. {example}")
    return low, high


# -- the search --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One probe as the search sees it: where, and the score (None: the probe failed)."""

    index: int
    score: float | None


@dataclass(frozen=True)
class Outcome:
    status: str  # contract.SEARCH_STATUSES
    chosen: int | None  # the index of the chosen probe (found only)
    message: str


@dataclass
class Search:
    """The state of one family's search: ask ``next_index()``, measure, ``record()`` it,
    until ``next_index()`` is None; then ``outcome()``."""

    domain: Domain
    target: Target
    tolerance: float = 0.5
    max_probes: int = 8
    steps: list[Step] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.max_probes < 2:
            raise ValueError("max_probes must be 2 or more (a mid-range probe and one end)")
        if self.tolerance < 0:
            raise ValueError("tolerance cannot be negative")

    # -- what the probes say ---------------------------------------------------------------

    def record(self, index: int, score: float | None) -> None:
        if not 0 <= index < self.domain.size:
            raise ValueError(f"index {index} is outside the domain (0..{self.domain.size - 1})")
        self.steps.append(Step(index, score))

    @property
    def scored(self) -> list[Step]:
        return [s for s in self.steps if s.score is not None]

    @property
    def failed(self) -> bool:
        return any(s.score is None for s in self.steps)

    def _within(self, step: Step) -> bool:
        assert step.score is not None
        return abs(step.score - self.target.value) <= self.tolerance

    def bracket(self) -> tuple[int | None, int | None]:
        """(the best probe below the target, the cheapest probe above it), each None when no
        probe is on that side. A probe below the target at a higher index than one above it
        (noise: more quality asked, less measured) is not a lower bound there."""
        t = self.target.value
        above = [s.index for s in self.scored if s.score is not None and s.score > t]
        below = [s.index for s in self.scored if s.score is not None and s.score < t]
        high = min(above) if above else None
        lows = [i for i in below if high is None or i < high]
        return (max(lows) if lows else None), high

    def closest(self) -> Step | None:
        """The probe closest to the target; on a tie the cheaper (lower index)."""
        scored = self.scored
        if not scored:
            return None
        return min(scored, key=lambda s: (abs((s.score or 0.0) - self.target.value), s.index))

    # -- what to probe next ----------------------------------------------------------------

    def next_index(self) -> int | None:
        """The next setting to probe, or None when the search is over."""
        if len(self.steps) >= self.max_probes or self.failed:
            return None
        if not self.steps:
            return (self.domain.size - 1) // 2
        if any(self._within(s) for s in self.scored):
            return None
        low, high = self.bracket()
        if low is not None and high is not None:
            if high - low <= 1:
                return None
            return self._interpolate(low, high)
        last_chance = self.max_probes - len(self.steps) == 1
        if high is None:  # every probe scores below the target: more quality
            top = max(s.index for s in self.scored)
            end = self.domain.size - 1
            if top == end:
                return None
            return end if last_chance else self._toward(top, end)
        bottom = min(s.index for s in self.scored)  # every probe above: cheaper
        if bottom == 0:
            return None
        return 0 if last_chance else self._toward(bottom, 0)

    def _toward(self, start: int, end: int) -> int:
        """Unbracketed: extrapolate from the two probes nearest ``end`` (aiming a tolerance
        past the target, to bracket it), else halfway to ``end``; never past ``end``."""
        direction = 1 if end > start else -1
        halfway = start + direction * math.ceil(abs(end - start) / 2)
        near = sorted(self.scored, key=lambda s: direction * s.index)[-2:]
        guess = halfway
        if len(near) == 2 and near[0].index != near[1].index:
            a, b = near
            assert a.score is not None and b.score is not None
            metric = self.target.metric
            slope = (transform(metric, b.score) - transform(metric, a.score)) / (b.index - a.index)
            if slope > 0:
                aim = self.target.value + direction * self.tolerance
                low, high = METRIC_RANGES[metric]
                aim = min(max(aim, low), high)
                x = b.index + (transform(metric, aim) - transform(metric, b.score)) / slope
                if math.isfinite(x):
                    guess = round(x + direction * 0.5)  # half a step further: bracket it
        lo, hi = sorted((start + direction, end))
        return min(max(guess, lo), hi)

    def _interpolate(self, low: int, high: int) -> int:
        """Bracketed: solve the monotone cubic through the probes for the target, strictly
        inside (low, high)."""
        chain = self._monotone_chain(low, high)
        xs = [float(s.index) for s in chain]
        ys = [transform(self.target.metric, s.score or 0.0) for s in chain]
        k = xs.index(float(low))
        x = solve_pchip(xs, ys, k, transform(self.target.metric, self.target.value))
        return min(max(round(x), low + 1), high - 1)

    def _monotone_chain(self, low: int, high: int) -> list[Step]:
        """The probes around the bracket whose scores rise with the index: from ``low`` down
        while they fall, from ``high`` up while they rise (noisy ones are skipped)."""
        by_index: dict[int, Step] = {}
        for s in self.scored:  # a setting probed twice: the later score
            by_index[s.index] = s
        chain = [by_index[low], by_index[high]]
        for i in sorted((i for i in by_index if i < low), reverse=True):
            if (by_index[i].score or 0.0) < (chain[0].score or 0.0):
                chain.insert(0, by_index[i])
        for i in sorted(i for i in by_index if i > high):
            if (by_index[i].score or 0.0) > (chain[-1].score or 0.0):
                chain.append(by_index[i])
        return chain

    # -- the verdict -----------------------------------------------------------------------

    def outcome(self) -> Outcome:
        domain, target = self.domain, self.target
        if self.failed:
            return Outcome("failed", None, "a probe failed (see its error)")
        best = self.closest()
        if best is None:
            return Outcome("failed", None, "no probe was made")
        at = f"{domain.text(best.index)} ({target.metric} {best.score:.4g})"
        low, high = self.bracket()
        if self._within(best):
            return Outcome("found", best.index, f"{at} is within ±{self.tolerance:g} of {target}")
        if low is not None and high is not None:
            why = (
                "the bracket is one step wide"
                if high - low <= 1
                else f"--max-probes {self.max_probes} reached with the bracket "
                f"{domain.text(low)}..{domain.text(high)} open"
            )
            return Outcome(
                "found",
                best.index,
                f"{why}; chose the closest probe, {at}, "
                f"{abs((best.score or 0.0) - target.value):.3g} "
                f"{'below' if (best.score or 0.0) < target.value else 'above'} {target}",
            )
        top = max(self.scored, key=lambda s: (s.score or 0.0, -s.index))
        if high is None:
            end = [s for s in self.scored if s.index == domain.size - 1]
            at = f"best {target.metric} {top.score:.4g} at {domain.text(top.index)}"
            if not end:
                why = f"{at} stays below {target} (--max-probes {self.max_probes} reached before "
                why += "the best setting)"
            elif end[0] is top:
                why = f"{at}, the best setting in range, stays below {target}"
            else:
                why = f"{at} stays below {target} (the best setting in range, "
                why += f"{domain.text(end[0].index)}, scores {end[0].score:.4g})"
            return Outcome("unreachable", None, why)
        bottom = min(self.scored, key=lambda s: (s.score or 0.0, s.index))
        return Outcome(
            "exceeded",
            None,
            f"even the cheapest setting probed, {domain.text(bottom.index)}, scores "
            f"{target.metric} {bottom.score:.4g}, above {target} + {self.tolerance:g}; "
            "search a cheaper range (--range) or a lower resolution",
        )


def run_search(
    domain: Domain,
    target: Target,
    measure: Callable[[int], float | None],
    *,
    tolerance: float = 0.5,
    max_probes: int = 8,
) -> Search:
    """Probe ``measure(index)`` until the search ends; the returned Search holds every step."""
    search = Search(domain, target, tolerance, max_probes)
    while (index := search.next_index()) is not None:
        search.record(index, measure(index))
    return search


# -- monotone cubic (Fritsch-Carlson) -----------------------------------------------------------


def pchip_slopes(xs: Sequence[float], ys: Sequence[float]) -> list[float]:
    """Derivatives at each knot of the monotone piecewise cubic through (xs, ys), xs rising."""
    n = len(xs)
    h = [xs[i + 1] - xs[i] for i in range(n - 1)]
    delta = [(ys[i + 1] - ys[i]) / h[i] for i in range(n - 1)]
    if n == 2:
        return [delta[0], delta[0]]
    d = [0.0] * n
    for i in range(1, n - 1):
        if delta[i - 1] * delta[i] > 0:
            w1, w2 = 2 * h[i] + h[i - 1], h[i] + 2 * h[i - 1]
            d[i] = (w1 + w2) / (w1 / delta[i - 1] + w2 / delta[i])
    d[0] = _end_slope(h[0], h[1], delta[0], delta[1])
    d[-1] = _end_slope(h[-1], h[-2], delta[-1], delta[-2])
    return d


def _end_slope(h0: float, h1: float, d0: float, d1: float) -> float:
    """The shape-preserving three-point end condition."""
    d = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
    if d * d0 <= 0:
        return 0.0
    if d0 * d1 <= 0 and abs(d) > abs(3 * d0):
        return 3 * d0
    return d


def solve_pchip(xs: Sequence[float], ys: Sequence[float], k: int, y: float) -> float:
    """The x in [xs[k], xs[k+1]] where the monotone cubic equals ``y`` (ys rising there)."""
    slopes = pchip_slopes(xs, ys)
    x0, x1, y0, y1 = xs[k], xs[k + 1], ys[k], ys[k + 1]
    h = x1 - x0
    d0, d1 = slopes[k] * h, slopes[k + 1] * h

    def value(t: float) -> float:
        t2, t3 = t * t, t * t * t
        return (
            (2 * t3 - 3 * t2 + 1) * y0
            + (t3 - 2 * t2 + t) * d0
            + (-2 * t3 + 3 * t2) * y1
            + (t3 - t2) * d1
        )

    lo, hi = 0.0, 1.0
    for _ in range(_SOLVE_ITERATIONS):
        mid = (lo + hi) / 2
        if value(mid) < y:
            lo = mid
        else:
            hi = mid
    return x0 + h * (lo + hi) / 2
