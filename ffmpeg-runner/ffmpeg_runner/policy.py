"""A run's policies: the order of its windows (``--order``, scheduled by ``schedule``) and
how many repeats a scenario gets (``--repeats``): a fixed count, or ``auto[:MIN:MAX]``, which
repeats until the scenario's transcode CPU per output minute is known well enough.

The stability rule of ``auto``: the 95 % confidence interval (Student t) of the mean of the
scenario's transcode CPU seconds per output minute (``accounting.transcode_cpu_s`` / output
minutes from frames and fps) has a half-width of at most ``CI_TARGET`` (3 %) of the mean, after
at least MIN repeats; MAX repeats stop it regardless. Only ``ok`` windows with accounting and
frames are measurements; the others count towards MAX.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from base_monitoring_client import InvalidValue

from .contract import ORDERS, WindowRecord

SEQUENTIAL, INTERLEAVED, SHUFFLED = ORDERS
DEFAULT_ORDER_KIND = INTERLEAVED
_ORDER_RE = re.compile(r"^\s*(sequential|interleaved|shuffled)\s*(?::\s*(\d{1,18})\s*)?$")
ORDER_HELP = "sequential, interleaved or shuffled[:SEED] (e.g. shuffled:42)"

DEFAULT_AUTO_MIN = 3
DEFAULT_AUTO_MAX = 8
MAX_REPEATS = 1000
CI_TARGET = 0.03
_AUTO_RE = re.compile(r"^\s*auto\s*(?::\s*(\d+)\s*:\s*(\d+)\s*)?$")
# Student t's 97.5 % quantile (two-sided 95 %) for 1..30 degrees of freedom.
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip
_Z975 = 1.959963984540054
REPEATS_HELP = (
    "a whole number of repeats from 1 to 1000, or auto[:MIN:MAX] (default auto = auto:3:8: "
    "repeat until the 95 % CI of transcode CPU per output minute is within 3 %)"
)


@dataclass(frozen=True)
class Order:
    kind: str = DEFAULT_ORDER_KIND
    seed: int | None = None  # shuffled only; None: drawn when the run starts

    @property
    def text(self) -> str:
        return f"{self.kind}:{self.seed}" if self.seed is not None else self.kind


def parse_order(value: object) -> Order:
    """``sequential``, ``interleaved``, ``shuffled`` or ``shuffled:SEED``; InvalidValue names
    the bad value and the fix."""
    match = _ORDER_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidValue(f"{value!r}: expected {ORDER_HELP}")
    kind, seed = match.group(1), match.group(2)
    if seed is not None and kind != SHUFFLED:
        raise InvalidValue(
            f"{value!r}: only shuffled takes a seed; write {kind} or shuffled:{seed}"
        )
    return Order(kind, int(seed) if seed is not None else None)


DEFAULT_ORDER = Order()


@dataclass(frozen=True)
class RepeatPolicy:
    """``fixed`` (MIN = MAX = the count) or ``auto`` between MIN and MAX repeats."""

    min: int
    max: int
    auto: bool = False

    @classmethod
    def fixed(cls, count: int) -> RepeatPolicy:
        return cls(count, count, False)

    @property
    def text(self) -> str:
        """``fixed`` or ``auto:MIN:MAX``: the policy a ``RepeatRecord`` names."""
        return f"auto:{self.min}:{self.max}" if self.auto else "fixed"


def parse_repeats(value: Any) -> RepeatPolicy:
    """``3`` (or ``"3"``) -> fixed 3; ``"auto"`` -> auto 3..8; ``"auto:2:10"`` -> auto 2..10.
    InvalidValue names the bad value and the fix."""
    if isinstance(value, bool):
        raise InvalidValue(f"{value!r}: expected {REPEATS_HELP}")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int):
        if not 1 <= value <= MAX_REPEATS:
            raise InvalidValue(f"{value!r}: expected {REPEATS_HELP}")
        return RepeatPolicy.fixed(value)
    match = _AUTO_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidValue(f"{value!r}: expected {REPEATS_HELP}")
    if match.group(1) is None:
        return RepeatPolicy(DEFAULT_AUTO_MIN, DEFAULT_AUTO_MAX, True)
    low, high = int(match.group(1)), int(match.group(2))
    if low < 2:
        raise InvalidValue(
            f"{value!r}: MIN must be at least 2 (a confidence interval needs two repeats), "
            "e.g. auto:3:8"
        )
    if high < low or high > MAX_REPEATS:
        raise InvalidValue(
            f"{value!r}: MAX must be from MIN ({low}) to {MAX_REPEATS}, e.g. auto:{low}:{low + 5}"
        )
    return RepeatPolicy(low, high, True)


def t_quantile_975(df: int) -> float:
    """Student t's 97.5 % quantile: a table to 30 degrees of freedom, then the Cornish-Fisher
    expansion (within 1e-5 of the exact value there)."""
    if df < 1:
        raise ValueError("a t quantile needs at least 1 degree of freedom")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def relative_ci_half_width(values: Sequence[float]) -> float | None:
    """The 95 % CI half-width of the mean over the mean; None below two values or with a
    mean that is not positive."""
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    if not mean > 0:
        return None
    half = t_quantile_975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return half / mean


def cpu_per_output_minute(window: WindowRecord) -> float | None:
    """A window's transcode CPU seconds per output minute; None when it is no measurement (not
    ok, no accounting, no frames or frame rate)."""
    if window.status != "ok" or window.accounting is None:
        return None
    minutes = window.output_minutes
    if minutes is None or not minutes > 0:
        return None
    return window.accounting.transcode_cpu_s / minutes


def _percent(share: float) -> str:
    return f"{share * 100:.1f} %"


def stop_reason(policy: RepeatPolicy, done: int, measurements: Sequence[float]) -> str | None:
    """Why a scenario with ``done`` repeats (``measurements`` of them usable) needs no more,
    or None while it needs more."""
    if not policy.auto:
        return "fixed count" if done >= policy.max else None
    spread = relative_ci_half_width(measurements)
    target = f"{CI_TARGET * 100:g} %"
    if spread is not None and done >= policy.min and spread <= CI_TARGET:
        return (
            f"CI half-width {_percent(spread)} <= {target} of the mean transcode CPU per output "
            f"minute after {done} repeats"
        )
    if done >= policy.max:
        if spread is not None:
            return f"MAX ({policy.max}) reached: CI half-width {_percent(spread)} > {target}"
        return f"MAX ({policy.max}) reached: only {len(measurements)} of {done} windows measured"
    if done >= policy.min and not measurements:
        return (
            f"stopped at MIN ({policy.min}): no window had accounting and frames to judge "
            "stability by (see the windows' status and the log)"
        )
    return None
