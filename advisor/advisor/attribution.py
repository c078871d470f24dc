"""Energy bases and attribution: how much of a window's energy the transcode itself caused.

Three bases for every energy figure (``--energy-basis``):

- ``gross``: the whole machine's energy over the window;
- ``net``: minus the idle baseline's mean power x the window's duration;
- ``attributed`` (Kepler's ratio model): the transcode's share of the host's dynamic energy.

Attribution, per run (one host):

- *idle power* is the host's CPU power at zero busy CPU. A baseline window during which
  something ran is not idle, so it comes from a duration-weighted least-squares fit of each
  window's CPU power against its busy CPUs (host busy CPU seconds / duration) over the run's
  windows, baseline and transcode: ``P = P_idle + k x busy_cpus``. Where the fit is not usable
  (too few windows, busy CPU too narrow a range, a slope or an intercept that is not physical)
  the baseline's own power is corrected by its own busy CPU instead, with the median slope
  between the baseline and the run's transcode windows: ``P_idle = P_baseline - k x busy``;
- *dynamic energy* = CPU energy - P_idle x duration;
- *attributed energy* = dynamic energy x transcode CPU s / host busy CPU s, plus, with a GPU
  encoder (NVENC), the GPU's own energy minus its idle power (the mean GPU power of the run's
  baselines) x duration, not split by CPU share. A CPU encoder's window gets none of the GPU's
  energy;
- *background CPU share* = 1 - transcode CPU s / host busy CPU s: what other processes used.

Nothing here queries or renders; the recommender calls ``attribute`` on the windows table after
``add_scores`` and ``resolve_basis`` to pick the basis.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from ffmpeg_runner.contract import WindowRecord

from .energy import FloatArray
from .errors import AdvisorConfigError
from .notes import Note, note

BASES = ("attributed", "net", "gross")
# Background share above which a window is flagged: most of its dynamic energy is then others'.
BACKGROUND_FLAG_SHARE = 0.25
MIN_FIT_WINDOWS = 3
# Busy CPUs the fitted windows must span: below it the slope is mostly noise.
MIN_BUSY_SPREAD_CPUS = 0.25
# A transcode window must be this many CPUs busier than the baseline to give a slope.
MIN_SLOPE_STEP_CPUS = 0.05
# A baseline busier than this share of the host's CPUs is no idle reference on its own.
MAX_IDLE_BASELINE_SHARE = 0.1
# gpu-nvml-client measures NVIDIA GPUs: their encoder is the one whose energy is the GPU's.
GPU_ENCODER_MARKER = "_nvenc"
NO_ACCOUNTING = (
    "no CPU accounting (written by an ffmpeg-runner without process accounting, manifest "
    "schema 2 or older); attribution needs a newer ffmpeg-runner"
)

# score -> its column on each basis; other scores have no basis (power, frames per watt).
BASIS_SCORES: Mapping[str, Mapping[str, str]] = {
    "pixels_per_joule": {
        "gross": "pixels_per_joule",
        "net": "net_pixels_per_joule",
        "attributed": "attributed_pixels_per_joule",
    },
    "energy_j": {"gross": "energy_j", "net": "net_energy_j", "attributed": "attributed_energy_j"},
    "energy_per_output_minute_j": {
        "gross": "energy_per_output_minute_j",
        "net": "net_energy_per_output_minute_j",
        "attributed": "attributed_energy_per_output_minute_j",
    },
}


def uses_gpu_encoder(encoder: str) -> bool:
    return GPU_ENCODER_MARKER in encoder


def basis_score(score: str, basis: str) -> str:
    """The column that ranks by ``score`` on ``basis``: ``pixels_per_joule`` on the attributed
    basis is ``attributed_pixels_per_joule``; a score named with its basis (``net_…``) or one
    without a basis (``mean_power_w``) is itself."""
    for variants in BASIS_SCORES.values():
        if score in variants.values():
            return variants[basis] if score == variants["gross"] else score
    return score


# -- the fit ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineFit:
    """``power = idle_w + w_per_cpu x busy_cpus``, duration-weighted least squares."""

    idle_w: float
    w_per_cpu: float
    r2: float
    n: int
    busy_min: float
    busy_max: float

    def to_json(self) -> dict[str, Any]:
        return {
            "idle_power_w": self.idle_w,
            "w_per_busy_cpu": self.w_per_cpu,
            "r2": self.r2,
            "windows": self.n,
            "busy_cpus_range": [self.busy_min, self.busy_max],
        }


def fit_line(busy_cpus: FloatArray, power_w: FloatArray, weights: FloatArray) -> LineFit | None:
    """Weighted least squares of power on busy CPUs; None with fewer than two windows or no
    spread in busy CPU (no slope to fit)."""
    ok = np.isfinite(busy_cpus) & np.isfinite(power_w) & (weights > 0)
    x, y, w = busy_cpus[ok], power_w[ok], weights[ok]
    if x.size < 2:
        return None
    xm, ym = np.average(x, weights=w), np.average(y, weights=w)
    sxx = float(np.sum(w * (x - xm) ** 2))
    if sxx <= 0:
        return None
    slope = float(np.sum(w * (x - xm) * (y - ym))) / sxx
    idle = float(ym - slope * xm)
    syy = float(np.sum(w * (y - ym) ** 2))
    resid = float(np.sum(w * (y - idle - slope * x) ** 2))
    r2 = 1.0 - resid / syy if syy > 0 else 1.0
    return LineFit(idle, slope, r2, int(x.size), float(x.min()), float(x.max()))


def fit_problem(fit: LineFit | None, n_windows: int) -> str | None:
    """Why a fit cannot give idle power; None when it can."""
    if fit is None or fit.n < MIN_FIT_WINDOWS:
        return f"{n_windows} window(s) with CPU accounting, {MIN_FIT_WINDOWS} needed"
    spread = fit.busy_max - fit.busy_min
    if spread < MIN_BUSY_SPREAD_CPUS:
        return (
            f"busy CPU spans only {spread:.2f} CPUs ({fit.busy_min:.2f}-{fit.busy_max:.2f}), "
            f"{MIN_BUSY_SPREAD_CPUS:g} needed"
        )
    if fit.w_per_cpu <= 0:
        return f"power falls as CPU load rises ({fit.w_per_cpu:.3g} W per busy CPU): noise"
    if fit.idle_w < 0:
        return f"the line crosses zero busy CPU at {fit.idle_w:.3g} W, below zero"
    return None


@dataclass(frozen=True)
class IdlePower:
    """One run's idle power and how it was found.

    ``method``: ``fit`` (the line over the run's windows), ``baseline corrected`` (the
    baselines' power less their busy CPU times the median slope), ``baseline`` (the baselines'
    power as measured: no slope to correct it with, and the host nearly idle during them) or
    ``unknown`` (no fit, and no baseline that could stand for idle power).
    """

    run_id: str
    method: str
    idle_w: float  # CPU power at zero busy CPU; NaN when unknown
    w_per_cpu: float  # NaN when not known
    fit: LineFit | None
    fit_problem: str | None
    baselines: int  # the run's ok baseline windows with CPU accounting
    gpu_idle_w: float  # mean GPU power of the run's baselines; NaN without GPU or baseline

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "method": self.method,
            "idle_power_w": self.idle_w,
            "w_per_busy_cpu": self.w_per_cpu,
            "fit": self.fit.to_json() if self.fit else None,
            "fit_problem": self.fit_problem,
            "gpu_idle_power_w": self.gpu_idle_w,
        }


def unknown_idle_reason(idle: IdlePower) -> str:
    """Why a run's windows cannot be attributed when its idle power is unknown: each such
    window's ``attribution_problem``."""
    if idle.baselines:
        return (
            f"idle power unknown: the fit is not usable ({idle.fit_problem}); its windows "
            "cannot be attributed"
        )
    return (
        f"idle power unknown: the fit is not usable ({idle.fit_problem}) and the run has no "
        "baseline window with CPU accounting (run ffmpeg-runner with --with-baseline); its "
        "windows cannot be attributed"
    )


def _weighted_mean(values: pd.Series, weights: pd.Series) -> float:
    v, w = values.to_numpy(dtype=np.float64), weights.to_numpy(dtype=np.float64)
    ok = np.isfinite(v) & (w > 0)
    return float(np.average(v[ok], weights=w[ok])) if ok.any() else math.nan


def idle_power(run_id: str, rows: pd.DataFrame) -> IdlePower:
    """Idle power of one run from its ok windows (``rows``: the windows table of one run)."""
    ok = rows[(rows["status"] == "ok") & np.isfinite(rows["host_busy_cpu_s"])]
    ok = ok[np.isfinite(ok["cpu_energy_j"]) & (ok["duration_s"] > 0)]
    busy = (ok["host_busy_cpu_s"] / ok["duration_s"]).to_numpy(dtype=np.float64)
    power = (ok["cpu_energy_j"] / ok["duration_s"]).to_numpy(dtype=np.float64)
    fit = fit_line(busy, power, ok["duration_s"].to_numpy(dtype=np.float64))
    problem = fit_problem(fit, len(ok))
    base = ok[ok["phase"] == "baseline"]
    gpu_idle = (
        _weighted_mean(base["gpu_energy_j"] / base["duration_s"], base["duration_s"])
        if len(base)
        else math.nan
    )

    def result(method: str, idle_w: float, slope: float) -> IdlePower:
        return IdlePower(run_id, method, idle_w, slope, fit, problem, len(base), gpu_idle)

    if problem is None and fit is not None:
        return result("fit", fit.idle_w, fit.w_per_cpu)
    if base.empty:
        return result("unknown", math.nan, math.nan)
    p_base = _weighted_mean(base["cpu_energy_j"] / base["duration_s"], base["duration_s"])
    busy_base = float(base["host_busy_cpu_s"].sum() / base["duration_s"].sum())
    tr = ok[ok["phase"] == "transcode"]
    dx = (tr["host_busy_cpu_s"] / tr["duration_s"]).to_numpy(dtype=np.float64) - busy_base
    dy = (tr["cpu_energy_j"] / tr["duration_s"]).to_numpy(dtype=np.float64) - p_base
    slopes = dy[dx >= MIN_SLOPE_STEP_CPUS] / dx[dx >= MIN_SLOPE_STEP_CPUS]
    slopes = slopes[slopes > 0]
    if slopes.size:
        k = float(np.median(slopes))
        corrected = p_base - k * busy_base
        if corrected >= 0:
            return result("baseline corrected", corrected, k)
    # No slope to correct with: the baseline's power is idle power only if the host was nearly
    # idle during it. A busy baseline (another job, a saturated host) taken as idle would make
    # every window's dynamic energy near zero and its attributed energy meaningless.
    cpus = _host_cpus(base)
    if busy_base > MAX_IDLE_BASELINE_SHARE * cpus:
        return IdlePower(
            run_id,
            "unknown",
            math.nan,
            math.nan,
            fit,
            f"{problem}; the baseline is no idle reference either: the host was busy "
            f"{busy_base:.2f} of {cpus:.3g} CPUs during it, and no transcode window used "
            "more CPU to give a slope (run when the host is quieter, or with longer windows "
            "of different loads)",
            len(base),
            gpu_idle,
        )
    return result("baseline", p_base, math.nan)


def _host_cpus(rows: pd.DataFrame) -> float:
    """CPUs of the host (total CPU seconds per second), from the accounting; 1 when unknown."""
    if "host_total_cpu_s" not in rows:
        return 1.0
    total = rows["host_total_cpu_s"].to_numpy(dtype=np.float64)
    dur = rows["duration_s"].to_numpy(dtype=np.float64)
    ok = np.isfinite(total) & (dur > 0)
    return float(total[ok].sum() / dur[ok].sum()) if ok.any() else 1.0


# -- per window -------------------------------------------------------------------------------


def _window_attribution(
    row: Mapping[Any, Any], idle: IdlePower | None
) -> tuple[float, float, float, str | None]:
    """(idle CPU power W, dynamic CPU energy J, attributed energy J, why not attributable)."""
    nan = math.nan
    if row["status"] != "ok":
        return nan, nan, nan, None  # reported as failed or missing already
    busy, transcode = float(row["host_busy_cpu_s"]), float(row["transcode_cpu_s"])
    if not (math.isfinite(busy) and math.isfinite(transcode)):
        return nan, nan, nan, NO_ACCOUNTING
    if idle is None or not math.isfinite(idle.idle_w):
        why = unknown_idle_reason(idle) if idle else "idle power unknown"
        return nan, nan, nan, why
    duration = float(row["duration_s"])
    dynamic = float(row["cpu_energy_j"]) - idle.idle_w * duration
    if row["phase"] != "transcode":
        return idle.idle_w, dynamic, 0.0, None  # none of a baseline's energy is a transcode's
    if busy <= 0:
        return idle.idle_w, dynamic, nan, "the host's busy CPU time is 0 (accounting broken?)"
    attributed = dynamic * min(1.0, transcode / busy)
    gpu = float(row.get("gpu_energy_j", nan))
    if uses_gpu_encoder(str(row.get("encoder", ""))) and math.isfinite(gpu):
        if not math.isfinite(idle.gpu_idle_w):
            return (
                idle.idle_w,
                dynamic,
                nan,
                "GPU idle power unknown: the run has no baseline window "
                "(run ffmpeg-runner with --with-baseline)",
            )
        attributed += gpu - idle.gpu_idle_w * duration
    if attributed <= 0:
        cpu_w = float(row["cpu_energy_j"]) / duration
        return (
            idle.idle_w,
            dynamic,
            nan,
            f"no energy above idle power to attribute (CPU {cpu_w:.3g} W, idle "
            f"{idle.idle_w:.3g} W at zero busy CPU): the load is within the noise; measure "
            "longer windows",
        )
    return idle.idle_w, dynamic, attributed, None


def attribute(df: pd.DataFrame) -> tuple[pd.DataFrame, list[IdlePower]]:
    """The windows table (after ``add_scores``) with ``idle_power_w``, ``dynamic_energy_j``,
    ``attributed_energy_j``, ``attribution_problem`` and the attributed scores; and each run's
    idle power. Windows without accounting get NaN and say so."""
    df = df.copy()
    idle: dict[str, IdlePower] = {}
    if "host_busy_cpu_s" in df and np.isfinite(df["host_busy_cpu_s"].to_numpy(float)).any():
        for run_id, rows in df.groupby("run_id", sort=True):
            idle[str(run_id)] = idle_power(str(run_id), rows)
    else:
        df["host_busy_cpu_s"] = np.nan
        df["transcode_cpu_s"] = np.nan
    parts = [
        _window_attribution(row, idle.get(str(row["run_id"])))
        for row in df.to_dict(orient="records")
    ]
    df["idle_power_w"] = [p[0] for p in parts]
    df["dynamic_energy_j"] = [p[1] for p in parts]
    df["attributed_energy_j"] = [p[2] for p in parts]
    df["attribution_problem"] = [p[3] for p in parts]
    attributed = df["attributed_energy_j"].where(df["attributed_energy_j"] > 0)
    minutes = df["output_minutes"]
    df["attributed_energy_per_output_minute_j"] = attributed / minutes.where(minutes > 0)
    df["attributed_pixels_per_joule"] = df["output_pixels"] / attributed
    return df, list(idle.values())


# -- the basis --------------------------------------------------------------------------------


def check_basis(requested: str | None) -> str | None:
    if requested is not None and requested not in BASES:
        raise AdvisorConfigError(
            f"energy_basis {requested!r}: choose one of {', '.join(BASES)} (or leave it out: "
            "attributed where every window has CPU accounting)",
            settings=("energy_basis",),
        )
    return requested


def require_accounting(windows: Sequence[WindowRecord], requested: str | None) -> None:
    """The attributed basis asked for on windows without CPU accounting: exit 2 with the fix."""
    if requested != "attributed":
        return
    lacking = [w for w in windows if w.status == "ok" and w.accounting is None]
    if lacking:
        runs = ", ".join(sorted({w.run_id for w in lacking}))
        raise AdvisorConfigError(
            f"energy_basis attributed: {len(lacking)} window(s) of run(s) {runs} have no CPU "
            "accounting (e.g. "
            f"{lacking[0].window_id}; manifest schema 2 or older, or no ffmpeg_window_cpu_seconds "
            "series): re-run the scenarios with an ffmpeg-runner that records process accounting "
            "(manifest schema 3), or pass energy_basis net (or gross)",
            settings=("energy_basis",),
        )


def every_window_accounted(df: pd.DataFrame) -> bool:
    ok = df[df["status"] == "ok"]
    if ok.empty or "host_busy_cpu_s" not in ok:
        return False
    return bool(np.isfinite(ok[["host_busy_cpu_s", "transcode_cpu_s"]].to_numpy(float)).all())


def resolve_basis(df: pd.DataFrame, requested: str | None) -> tuple[str, list[Note]]:
    """The basis every figure uses, and notes saying why where it was chosen for the user.

    Left to itself: ``attributed`` when every ok window has CPU accounting, else ``net`` when
    every ok transcode window has a baseline, else ``gross``. It never changes because of one
    window's value: a window whose figure on the basis is unknown is named and left out.
    """
    if requested is not None:
        return requested, []
    if every_window_accounted(df):
        return "attributed", []
    notes = [note("not_attributed", any_accounted=_any_accounted(df))]
    tr = df[(df["phase"] == "transcode") & (df["status"] == "ok")]
    base = tr["baseline_power_w"] if "baseline_power_w" in tr else pd.Series(math.nan, tr.index)
    no_base = tr[~np.isfinite(base.to_numpy(dtype=np.float64))]
    if tr.empty or no_base.empty:
        return "net", notes
    notes.append(note("gross_basis", scenarios=sorted(set(no_base["scenario"].astype(str)))))
    return "gross", notes


def _any_accounted(df: pd.DataFrame) -> bool:
    return "host_busy_cpu_s" in df and bool(
        np.isfinite(df["host_busy_cpu_s"].to_numpy(float)).any()
    )


def basis_problem(row: Mapping[Any, Any], basis: str) -> str | None:
    """Why an ok transcode window has no energy on ``basis``; None when it has one."""
    if basis == "attributed":
        problem = row.get("attribution_problem")
        return str(problem) if isinstance(problem, str) else None
    if basis == "net":
        base = row.get("baseline_power_w", math.nan)
        if not math.isfinite(float(base)):
            return "no baseline window (run ffmpeg-runner with --with-baseline)"
        net = float(row.get("net_energy_j", math.nan))
        if math.isfinite(net) and net <= 0:
            return (
                f"drew no more power than its baseline (net energy {net:.3g} J ≤ 0: the load "
                "is within the baseline's noise; measure longer windows or more repeats)"
            )
        return None
    energy = float(row.get("energy_j", math.nan))
    return None if energy > 0 else "no energy measured"


def basis_notes(df: pd.DataFrame, basis: str) -> list[Note]:
    """Each ok transcode window flagged for its background load, and each that has no energy
    on the basis, with the reason."""
    out: list[Note] = []
    tr = df[(df["phase"] == "transcode") & (df["status"] == "ok")]
    for row in tr.to_dict(orient="records"):
        share = float(row.get("background_cpu_share", math.nan))
        if math.isfinite(share) and share > BACKGROUND_FLAG_SHARE:
            out.append(note("background_share", window=row["window_id"], share=share, basis=basis))
        problem = basis_problem(row, basis)
        if problem:
            out.append(
                note("no_basis_energy", window=row["window_id"], basis=basis, problem=problem)
            )
    return out
