"""The analysis' notes (``advisor.notes.Note``) in words: one function per kind."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..attribution import IdlePower, unknown_idle_reason
from ..notes import Note
from . import numbers as n


def idle_text(idle: IdlePower) -> str:
    """One sentence for the report's notes: a run's idle power and how it was found."""
    head = f"run {idle.run_id}: idle power"
    fit = idle.fit
    if idle.method == "fit" and fit is not None:
        text = (
            f"{head} {idle.idle_w:.3g} W at zero busy CPU, from a fit of CPU power against "
            f"busy CPUs over {fit.n} windows: P = {fit.idle_w:.3g} W + {fit.w_per_cpu:.3g} W "
            f"x busy CPUs (busy {fit.busy_min:.2f}-{fit.busy_max:.2f} CPUs, "
            f"R² {fit.r2:.3f})"
        )
    elif idle.method == "baseline corrected":
        text = (
            f"{head} {idle.idle_w:.3g} W: the fit is not usable ({idle.fit_problem}), so the "
            f"baseline's power is corrected by its own busy CPU at {idle.w_per_cpu:.3g} W "
            f"per busy CPU (the median slope from the baseline to the transcode windows)"
        )
    elif idle.method == "baseline":
        text = (
            f"{head} {idle.idle_w:.3g} W, the baseline's power as measured: the fit is not "
            f"usable ({idle.fit_problem}) and no transcode window used more CPU than the "
            "baseline, so its own busy CPU cannot be corrected for"
        )
    else:
        return f"run {idle.run_id}: {unknown_idle_reason(idle)}"
    if math.isfinite(idle.gpu_idle_w):
        text += (
            f"; GPU idle power {idle.gpu_idle_w:.3g} W (mean of {idle.baselines} baseline "
            "window(s)), taken from a GPU encoder's windows in full"
        )
    return text


def _names(names: Sequence[str], most: int = 5) -> str:
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def _edge(a: Mapping[str, Any]) -> str:
    e, err = a["energy_j"], a["error_j"]
    return (
        f"window {a['window']}: an edge fell inside a gap in the energy counter and was "
        f"interpolated; energy {e:.4g} J is within ±{err:.3g} J ({100 * err / e:.0f} %) in the "
        "worst case"
    )


def _background(a: Mapping[str, Any]) -> str:
    basis = a["basis"]
    how = (
        "its energy is attributed by CPU share"
        if basis == "attributed"
        else f"its {basis} energy includes theirs (--energy-basis attributed separates them)"
    )
    return (
        f"window {a['window']}: other processes used {100 * a['share']:.0f} % of the CPU "
        f"during this window; {how}"
    )


def _not_rising(a: Mapping[str, Any]) -> str:
    p, below = a["point"], a["below"]
    return (
        f"{a['family']}: {a['metric']} does not rise with bitrate: {n.point_setting(p)} "
        f"scores {n.score(p.quality)}, not above {n.score(below.quality)} at "
        f"{n.point_setting(below)}; left out of the family's curve"
    )


def _no_score(a: Mapping[str, Any]) -> str:
    why = f"no {a['metric']} score"
    if a["error"]:
        return why + f" (quality step failed: {a['error']})"
    if a["unmeasured"]:
        return why + f"; run it with --quality {a['metric']}"
    return why


def _no_energy(a: Mapping[str, Any]) -> str:
    if a["problem"]:
        return f"no {a['basis']} energy in any repeat: {a['problem']}"
    return "no energy per output minute (frames or fps unknown)"


_TEXT: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "instance_chosen": lambda a: (
        f"power series from {a['instances']} instances; using {a['chosen']!r} (the run's "
        "host); pass --instance to choose another"
    ),
    "source_chosen": lambda a: (
        f"{a['entity']}: using source {a['source']!r}, ignoring {list(a['ignored'])}"
    ),
    "estimated_excluded": lambda a: (
        "estimated power excluded for "
        + ", ".join(a["entities"])
        + " (pass --allow-estimated to use it)"
    ),
    "cpu_psys": lambda a: "CPU power = psys (platform) zone, which contains package and DRAM",
    "cpu_package_dram": lambda a: (
        "CPU power = package + dram zones; core/uncore are parts of package"
    ),
    "window_missing": lambda a: f"window {a['window']}: power data missing ({a['problem']})",
    "window_failed": lambda a: f"window {a['window']}: {a['status']} ({a['problem']})",
    "edge_interpolated": _edge,
    "window_label": lambda a: f"window {a['window']}: {a['problem']}",
    "no_baseline": lambda a: (
        f"{a['count']} transcode window(s) have no baseline: net energy unknown; run "
        "ffmpeg-runner with --with-baseline"
    ),
    "not_attributed": lambda a: (
        "energy is not attributed to the transcode: "
        + ("some windows lack" if a["any_accounted"] else "no window has")
        + " CPU accounting (an ffmpeg-runner without process accounting, manifest schema 2 or "
        "older); attribution needs a newer ffmpeg-runner"
    ),
    "gross_basis": lambda a: (
        "energy is the whole machine's (baseline not subtracted) for every figure, because "
        f"{_names(a['scenarios'])} lack a baseline (run ffmpeg-runner with --with-baseline)"
    ),
    "idle_power": lambda a: idle_text(a["idle"]),
    "background_share": _background,
    "no_basis_energy": lambda a: (
        f"window {a['window']}: no {a['basis']} energy ({a['problem']}); left out of the "
        f"{a['basis']} figures"
    ),
    "not_rising": _not_rising,
    "search_targets": lambda a: (
        "searches ran at "
        + ", ".join(n.target(t) for t in a["targets"])
        + f"; the recommendation answers the first, {n.target(a['target'])} (pass "
        "--target-quality for another)"
    ),
    "common_basis": lambda a: (
        f"energy basis {a['basis']} for every host: the hosts' data allow "
        f"{', '.join(sorted(a['bases']))}"
    ),
    # why a scenario is left out of the quality analysis
    "ladder": lambda a: (
        "a ladder of several outputs: its energy is spent on all rungs at once and cannot be "
        "split per output; measure single-output scenarios"
    ),
    "no_score": _no_score,
    "no_energy": _no_energy,
    "search_windows": lambda a: (
        f"the energy windows of a target-quality search for {a['family']}: its quality is the "
        f"chosen probe's ({a['metric']} {a['score']:.4g}), in the search section"
    ),
}


def note_text(note: Note) -> str:
    return _TEXT[note.kind](note.about)


def notes_text(notes: Sequence[Note]) -> list[str]:
    return [note_text(x) for x in notes]
