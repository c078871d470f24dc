"""Energy attribution (Kepler's ratio model) and the energy basis: the idle-power fit and its
fallback, per-window attribution with CPU and GPU encoders, the basis chosen and never changed
by one window's value, frames read at the window edges, and (integration) known answers on a
real receiver: attributed energies within 2 % of the truth, the right winner where the
whole-machine energy picks the wrong one, and manifests of the old schema."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from advisor.attribution import (
    NO_ACCOUNTING,
    attribute,
    basis_score,
    fit_line,
    fit_problem,
    idle_power,
    require_accounting,
    resolve_basis,
)
from advisor.cli import flag_message, main
from advisor.errors import AdvisorConfigError
from advisor.present.notes import idle_text, note_text
from advisor.present.words import BASIS_TEXT, describe_score
from advisor.prom import PrometheusAPI, Series
from advisor.recommender import AdvisorReport, TranscodingRecommender
from advisor.synthetic import Experiment, ladder, window_record
from advisor.windows import discover_windows
from ffmpeg_runner.contract import FRAMES_METRIC, RunManifest
from wattpush_testing import ReceiverProcess

from .conftest import (
    ATTRIB_AT_93,
    ATTRIB_BACKGROUND_CPUS,
    ATTRIB_IDLE_W,
    ATTRIB_W_PER_CPU,
    World,
)

# -- the fit ----------------------------------------------------------------------------------


def test_fit_recovers_idle_power_and_watts_per_busy_cpu() -> None:
    busy = np.array([0.05, 0.65, 1.1, 1.6, 1.9])
    power = 18.0 + 12.0 * busy
    fit = fit_line(busy, power, np.array([2.0, 2.0, 4.0, 4.0, 4.0]))
    assert fit is not None
    assert (fit.idle_w, fit.w_per_cpu, fit.r2) == pytest.approx((18.0, 12.0, 1.0))
    assert (fit.n, fit.busy_min, fit.busy_max) == (5, 0.05, 1.9)
    assert fit_problem(fit, 5) is None
    # Durations weigh: a long window off the line pulls the fit more than a short one.
    noisy = power.copy()
    noisy[3] += 2.0

    def error(weight: float) -> float:
        fit = fit_line(busy, noisy, np.array([1.0, 1.0, 1.0, weight, 1.0]))
        assert fit is not None
        return abs(fit.idle_w - 18.0) + abs(fit.w_per_cpu - 12.0)

    assert error(10.0) > error(1.0) > error(0.1) > 0


@pytest.mark.parametrize(
    ("busy", "power", "expect"),
    [
        ([0.1, 1.0], [20.0, 30.0], "2 window(s) with CPU accounting, 3 needed"),
        ([1.0, 1.05, 1.1], [30.0, 31.0, 32.0], "busy CPU spans only 0.10 CPUs (1.00-1.10)"),
        ([0.1, 1.0, 1.9], [30.0, 25.0, 20.0], "power falls as CPU load rises"),
        ([0.5, 1.0, 1.5], [5.0, 15.0, 25.0], "crosses zero busy CPU at -5 W, below zero"),
    ],
)
def test_an_unusable_fit_says_why(busy: list[float], power: list[float], expect: str) -> None:
    x, y = np.array(busy), np.array(power)
    fit = fit_line(x, y, np.ones(x.size))
    problem = fit_problem(fit, x.size)
    assert problem is not None and expect in problem


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Windows as add_scores leaves them: defaults for a 4 s CPU window of one run."""
    out = []
    for i, r in enumerate(rows):
        d = r.get("duration_s", 4.0)
        out.append(
            {
                "window_id": f"r/{r.get('scenario', 's')}/{r.get('phase', 'transcode')}/{i}",
                "run_id": r.get("run_id", "r"),
                "scenario": r.get("scenario", "s"),
                "phase": r.get("phase", "transcode"),
                "status": r.get("status", "ok"),
                "encoder": r.get("encoder", "libx264"),
                "duration_s": d,
                "cpu_energy_j": r["cpu_w"] * d,
                "gpu_energy_j": r.get("gpu_w", math.nan) * d,
                "energy_j": (
                    r["cpu_w"] + (0.0 if math.isnan(r.get("gpu_w", math.nan)) else r["gpu_w"])
                )
                * d,
                "transcode_cpu_s": r.get("tr", math.nan) * d,
                "host_busy_cpu_s": r.get("busy", math.nan) * d,
                "baseline_power_w": r.get("baseline_w", 20.0),
                "output_minutes": 2.0 / 30.0
                if r.get("phase", "transcode") == "transcode"
                else math.nan,
                "output_pixels": 1e8,
            }
        )
    return pd.DataFrame(out)


def test_attributed_energy_is_the_transcodes_share_of_the_dynamic_energy() -> None:
    # P = 18 + 12 x busy. One window shares the CPU with a background load of 0.6 CPUs.
    line = lambda busy: 18.0 + 12.0 * busy  # noqa: E731
    df = _frame(
        [
            {"phase": "baseline", "cpu_w": line(0.05), "tr": 0.0, "busy": 0.05},
            {"cpu_w": line(1.05), "tr": 1.0, "busy": 1.05},
            {"phase": "baseline", "cpu_w": line(0.65), "tr": 0.0, "busy": 0.65},
            {"cpu_w": line(1.65), "tr": 1.0, "busy": 1.65},
            {"cpu_w": line(0.55), "tr": 0.5, "busy": 0.55},
        ]
    )
    out, (idle,) = attribute(df)
    assert idle.method == "fit" and idle.idle_w == pytest.approx(18.0)
    assert idle.w_per_cpu == pytest.approx(12.0)
    assert "P = 18 W + 12 W x busy CPUs" in idle_text(idle)
    # 12 W per CPU x 1 CPU x 4 s, whatever else ran; baselines get none of it.
    assert list(out["attributed_energy_j"]) == pytest.approx([0.0, 48.0, 0.0, 48.0, 24.0])
    assert out["attribution_problem"].isna().all()
    assert out.loc[3, "dynamic_energy_j"] == pytest.approx(12.0 * 1.65 * 4)
    assert out.loc[1, "attributed_energy_per_output_minute_j"] == pytest.approx(48.0 * 15)
    assert out.loc[1, "attributed_pixels_per_joule"] == pytest.approx(1e8 / 48.0)


def test_a_gpu_encoder_gets_the_gpus_own_energy_above_idle_unsplit() -> None:
    line = lambda busy: 18.0 + 12.0 * busy  # noqa: E731
    df = _frame(
        [
            {"phase": "baseline", "cpu_w": line(0.05), "gpu_w": 15.0, "tr": 0.0, "busy": 0.05},
            {"phase": "baseline", "cpu_w": line(0.05), "gpu_w": 17.0, "tr": 0.0, "busy": 0.05},
            # NVENC: a little CPU for decode, shared half with others; the GPU at 76 W.
            {"encoder": "h264_nvenc", "cpu_w": line(0.4), "gpu_w": 76.0, "tr": 0.2, "busy": 0.4},
            # A CPU encoder beside an idle GPU: none of the GPU's energy.
            {"cpu_w": line(1.05), "gpu_w": 16.0, "tr": 1.0, "busy": 1.05},
        ]
    )
    out, (idle,) = attribute(df)
    assert idle.gpu_idle_w == pytest.approx(16.0)
    cpu_part = 12.0 * 0.4 * 4 * (0.2 / 0.4)
    assert out.loc[2, "attributed_energy_j"] == pytest.approx(cpu_part + (76.0 - 16.0) * 4)
    assert out.loc[3, "attributed_energy_j"] == pytest.approx(12.0 * 1.0 * 4)
    assert "GPU idle power 16 W" in idle_text(idle)


def test_without_a_usable_fit_the_baseline_is_corrected_by_its_own_busy_cpu() -> None:
    # Two windows only: no fit. The baseline ran at 0.5 busy CPUs (not idle): 18 + 6 W.
    df = _frame(
        [
            {"phase": "baseline", "cpu_w": 24.0, "tr": 0.0, "busy": 0.5},
            {"cpu_w": 18.0 + 12.0 * 1.5, "tr": 1.0, "busy": 1.5},
        ]
    )
    idle = idle_power("r", df)
    assert idle.method == "baseline corrected"
    assert (idle.idle_w, idle.w_per_cpu) == pytest.approx((18.0, 12.0))
    text = idle_text(idle)
    assert "the fit is not usable (2 window(s) with CPU accounting, 3 needed)" in text
    assert "corrected by its own busy CPU at 12 W per busy CPU" in text
    out, _ = attribute(df)
    assert out.loc[1, "attributed_energy_j"] == pytest.approx(12.0 * 1.5 * 4 / 1.5)


def test_a_busy_baseline_without_a_slope_is_not_taken_for_idle_power() -> None:
    # A saturated host: every window, the baseline too, at ~2 of 2 busy CPUs, power flat. No
    # fit, no slope; the baseline's power is the full-load power, not idle power.
    rows = [{"phase": "baseline", "cpu_w": 7.0, "tr": 0.0, "busy": 1.98}]
    rows += [{"cpu_w": 7.0, "tr": 0.3, "busy": 1.95 + 0.01 * i} for i in range(4)]
    df = _frame(rows).assign(host_total_cpu_s=2.0 * 4.0)
    idle = idle_power("r", df)
    assert idle.method == "unknown" and math.isnan(idle.idle_w)
    assert "the host was busy 1.98 of 2 CPUs during it" in idle_text(idle)
    out, _ = attribute(df)
    assert out["attributed_energy_j"].isna().all()
    assert "busy 1.98 of 2 CPUs" in str(out.loc[1, "attribution_problem"])
    # The same baseline on a quiet host (0.1 of 2 CPUs) is an idle reference.
    quiet = _frame(
        [
            {"phase": "baseline", "cpu_w": 2.0, "tr": 0.0, "busy": 0.1},
            {"cpu_w": 2.0, "tr": 0.1, "busy": 0.1},
        ]
    ).assign(host_total_cpu_s=8.0)
    assert idle_power("r", quiet).method == "baseline"


def test_windows_that_cannot_be_attributed_say_why() -> None:
    line = lambda busy: 18.0 + 12.0 * busy  # noqa: E731
    df = _frame(
        [
            {"phase": "baseline", "cpu_w": line(0.05), "tr": 0.0, "busy": 0.05},
            {"cpu_w": line(1.05), "tr": 1.0, "busy": 1.05},
            {"cpu_w": line(1.55), "tr": 1.5, "busy": 1.55},
            # short, and below idle power: nothing to attribute
            {"cpu_w": 16.0, "tr": 0.1, "busy": 0.15, "duration_s": 0.5},
            {"cpu_w": line(1.0)},  # no accounting (an older runner)
            {"cpu_w": line(1.0), "tr": 1.0, "busy": 1.0, "status": "failed"},
        ]
    )
    out, _ = attribute(df)
    problems = [p if isinstance(p, str) else None for p in out["attribution_problem"]]
    assert problems[:3] == [None, None, None]
    assert problems[3].startswith("no energy above idle power to attribute (CPU 16 W, idle 17.")
    assert problems[4] == NO_ACCOUNTING
    assert problems[5] is None  # a failed window is reported as failed, not here
    assert out["attributed_energy_j"].isna().tolist() == [False, False, False, True, True, True]
    # No fit and no baseline: the run's windows cannot be attributed, and the reason says so.
    lone, (idle,) = attribute(_frame([{"cpu_w": line(1.0), "tr": 1.0, "busy": 1.0}]))
    assert idle.method == "unknown"
    assert "no baseline window with CPU accounting" in str(lone.loc[0, "attribution_problem"])


# -- the basis --------------------------------------------------------------------------------


def test_rank_scores_follow_the_basis_and_are_named_in_words() -> None:
    assert basis_score("pixels_per_joule", "attributed") == "attributed_pixels_per_joule"
    assert basis_score("energy_j", "net") == "net_energy_j"
    assert basis_score("energy_per_output_minute_j", "gross") == "energy_per_output_minute_j"
    # Named with a basis, or without one: itself.
    assert basis_score("net_pixels_per_joule", "attributed") == "net_pixels_per_joule"
    assert basis_score("mean_power_w", "attributed") == "mean_power_w"
    assert describe_score("attributed_pixels_per_joule") == (
        "output pixels per joule of attributed energy"
    )
    assert describe_score("throughput_per_watt").endswith("(whole machine)")


def test_the_basis_is_attributed_where_every_window_is_accounted() -> None:
    line = lambda busy: 18.0 + 12.0 * busy  # noqa: E731
    accounted = _frame(
        [
            {"phase": "baseline", "cpu_w": line(0.05), "tr": 0.0, "busy": 0.05},
            {"cpu_w": line(1.05), "tr": 1.0, "busy": 1.05},
        ]
    )
    assert resolve_basis(accounted, None) == ("attributed", [])
    assert resolve_basis(accounted, "gross") == ("gross", [])
    old = accounted.assign(transcode_cpu_s=math.nan, host_busy_cpu_s=math.nan)
    basis, notes = resolve_basis(old, None)
    assert basis == "net" and notes[0].kind == "not_attributed"
    assert "attribution needs a newer ffmpeg-runner" in note_text(notes[0])
    basis, notes = resolve_basis(old.assign(baseline_power_w=math.nan), None)
    assert basis == "gross" and notes[1].kind == "gross_basis"
    assert "lack a baseline" in note_text(notes[1])
    assert BASIS_TEXT[basis] == "whole machine, baseline not subtracted"


def test_attributed_basis_without_accounting_exits_2_naming_the_fix() -> None:
    w = window_record(
        run_id="old", scenario="s", phase="transcode", repeat=0, start_ms=0, end_ms=4000
    )
    require_accounting([w], "net")  # only attributed needs it
    with pytest.raises(AdvisorConfigError) as exc:
        require_accounting([w], "attributed")
    # The analysis names the setting as the Python API does; the CLI says it as its flag.
    assert exc.value.exit_code == 2 and exc.value.settings == ("energy_basis",)
    assert str(exc.value).startswith("energy_basis attributed: 1 window(s) of run(s) old have")
    text = flag_message(exc.value)
    assert text.startswith("--energy-basis attributed: 1 window(s) of run(s) old have no CPU")
    assert "manifest schema 3" in text and "or pass --energy-basis net" in text


# -- discovery: accounting and frames at the edges ----------------------------------------------


def _as_series(exp: Experiment) -> list[Series]:
    """What a receiver returns for the experiment: stale markers are not samples."""
    out = []
    for name, labels, t, v in exp.series():
        keep = ~np.isnan(v)
        lab = {"__name__": name, "job": "synthetic", "instance": exp.instance, **labels}
        out.append(Series(lab, t[keep] / 1000.0, np.asarray(v[keep], dtype=np.float64)))
    return out


def _discovered_report(progress_ms: int, offset_ms: int) -> tuple[AdvisorReport, Experiment]:
    exp = Experiment(
        start_ms=1_700_000_000_000,
        accounting=True,
        with_estimated_shadow=False,
        progress_interval_ms=progress_ms,
        progress_offset_ms=offset_ms,
    )
    exp.idle(2)
    for rep, seconds in enumerate((9.2, 10.0, 12.8)):  # whole frames at 25 fps
        common = {"run_id": "edges", "scenario": "x264", "repeat": rep}
        common["rungs"] = ladder((640, 360, "1M"))
        exp.add(3, phase="baseline", cpu_w=20.0, **common)
        exp.add(seconds, phase="transcode", cpu_w=44.0, host_rate=1.05, transcode_rate=0.9,
                background_rate=0.3, background_w=3.6, fps=25, **common)  # fmt: skip
        exp.idle(1.3)
    series = _as_series(exp)
    rec = TranscodingRecommender(api=PrometheusAPI("http://127.0.0.1:9"), predict=False)
    return rec.analyze(discover_windows(series), series=series), exp


def test_discovery_reads_accounting_and_frames_at_the_edges_at_any_progress_rate() -> None:
    slow, exp = _discovered_report(1000, 370)  # progress once a second, off the window edges
    fast, _ = _discovered_report(100, 0)
    edges = {ms for sw in exp.windows for ms in (sw.record.start_ms, sw.record.end_ms)}
    progress_t = {t for n, _, ts, _ in exp.series() if n == FRAMES_METRIC for t in ts}
    assert not edges & progress_t  # no sample on an edge: they must be interpolated
    a = slow.windows.set_index("window_id")
    b = fast.windows.set_index("window_id")
    tr = a[a["phase"] == "transcode"].index
    assert len(tr) == 3
    for col in ("energy_per_output_minute_j", "attributed_energy_per_output_minute_j"):
        assert np.allclose(a.loc[tr, col], b.loc[tr, col], rtol=0.002), col
    for sw in (s for s in exp.windows if s.record.phase == "transcode"):
        row = a.loc[sw.record.window_id]
        assert row["frames_total"] == pytest.approx(25 * sw.record.duration_s, rel=0.002)
        # Accounting came from ffmpeg_window_cpu_seconds: 0.9 of 1.35 busy CPUs.
        assert row["transcode_cpu_s"] == pytest.approx(0.9 * sw.record.duration_s)
        assert row["background_cpu_share"] == pytest.approx(1 - 0.9 / 1.35)
    assert slow.meta["energy_basis"] == "attributed"


# -- known answers on a real receiver -------------------------------------------------------------

_docs: dict[tuple[str, ...], dict[str, Any]] = {}


def _report(
    receiver: ReceiverProcess, world: World, tmp: Path, source: str, *extra: str
) -> dict[str, Any]:
    key = (receiver.base_url, source, *extra)
    if key not in _docs:
        out = tmp / "a.json"
        args = ["report", "--prometheus-url", receiver.base_url, "--run-id", "attrib"]
        if source == "manifest":
            args += ["--results", str(world.manifests["attrib"])]
        else:
            args += ["--since", "1h"]
        args += ["--target-quality", "vmaf=93", "--format", "json", "--no-predict", *extra]
        assert main([*args, "--output", str(out)]) == 0
        _docs[key] = json.loads(out.read_text())
    return _docs[key]


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("source", ["manifest", "discovery"])
def test_attributed_energy_matches_the_known_answer_and_names_the_right_winner(
    receiver: ReceiverProcess, world: World, tmp_path: Path, source: str
) -> None:
    doc = _report(receiver, world, tmp_path, source)
    assert doc["meta"]["queries"] == (1 if source == "manifest" else 2)
    assert doc["meta"]["energy_basis"] == "attributed"
    (fit,) = doc["meta"]["attribution"]
    assert fit["method"] == "fit"
    assert fit["idle_power_w"] == pytest.approx(ATTRIB_IDLE_W, rel=0.02)
    assert fit["w_per_busy_cpu"] == pytest.approx(ATTRIB_W_PER_CPU, rel=0.02)
    windows = {w["window_id"]: w for w in doc["windows"]}
    checked = 0
    for sw in world.windows("attrib"):
        w = windows[sw.record.window_id]
        truth = ATTRIB_W_PER_CPU * sw.load.transcode_rate * sw.record.duration_s
        assert w["attributed_energy_j"] == pytest.approx(truth, rel=0.02), w["window_id"]
        seconds = sw.record.duration_s
        assert w["transcode_cpu_s"] == pytest.approx(sw.load.transcode_rate * seconds)
        assert w["host_busy_cpu_s"] == pytest.approx(sw.load.host_busy_rate * seconds)
        assert w["background_cpu_share"] == pytest.approx(sw.background_cpu_share)
        checked += 1
    assert checked == 18
    q = doc["quality"]
    assert q["energy_basis"] == "attributed"
    fams = {f["family"]: f for f in q["families"]}
    for name, energy in ATTRIB_AT_93.items():
        assert fams[name]["energy_j_per_output_minute_at_target"] == pytest.approx(energy, rel=0.02)
    assert q["winner"] == "libx264/medium/640x360"
    assert q["margin"]["energy_j_per_output_minute"] == pytest.approx(96.0, rel=0.2)
    assert q["margin"]["significant"] is True
    line = doc["summary"].splitlines()[0]
    assert "attributed to the transcode by its share of busy CPU" in line
    assert "the margin exceeds its 95 % uncertainty" in line
    scen = {s["scenario"]: s for s in doc["scenarios"]}
    s = scen["libx264-medium-1M"]
    assert s["attributed_energy_j_mean"] == pytest.approx(12.0 * 1.0 * 4, rel=0.02)
    assert s["attributed_energy_j_ci95"] > 0
    assert s["attributed_energy_per_output_minute_j_mean"] == pytest.approx(720.0, rel=0.02)
    assert s["attributed_energy_per_output_minute_j_ci95"] > 0
    # medium shared the CPU with 0.6 busy CPUs: 1 - 1.0 / 1.65 = 39 %, flagged with the share.
    flagged = [w for w in doc["warnings"] if "other processes used" in w]
    assert len(flagged) == 9
    assert (
        "window attrib/libx264-medium-1M/transcode/1: other processes used 39 % of the CPU "
        "during this window; its energy is attributed by CPU share"
    ) in flagged
    assert not any("veryfast" in w for w in flagged)


@pytest.mark.integration
@pytest.mark.slow
def test_whole_machine_and_net_energy_pick_the_wrong_winner_and_say_their_basis(
    receiver: ReceiverProcess, world: World, tmp_path: Path
) -> None:
    for basis, words in (
        ("gross", "whole machine, baseline not subtracted"),
        ("net", "net of idle power"),
    ):
        doc = _report(receiver, world, tmp_path, "manifest", "--energy-basis", basis)
        q = doc["quality"]
        assert q["energy_basis"] == basis and doc["meta"]["energy_basis"] == basis
        assert q["winner"] == "libx264/veryfast/640x360", basis  # the background load's doing
        assert words in doc["summary"].splitlines()[0]
        flagged = [w for w in doc["warnings"] if "other processes used 39 %" in w]
        assert flagged and f"its {basis} energy includes theirs" in flagged[0]
    gross = _report(receiver, world, tmp_path, "manifest", "--energy-basis", "gross")
    fams = {f["family"]: f for f in gross["quality"]["families"]}
    medium = fams["libx264/medium/640x360"]["energy_j_per_output_minute_at_target"]
    busy = 0.05 + 1.0 + 0.2 / 3 + ATTRIB_BACKGROUND_CPUS
    assert medium == pytest.approx((ATTRIB_IDLE_W + ATTRIB_W_PER_CPU * busy) * 60, rel=0.02)


@pytest.mark.integration
@pytest.mark.slow
def test_compare_uses_the_attributed_basis_and_names_it(
    receiver: ReceiverProcess, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    medium, veryfast = ATTRIB_AT_93
    opts = ["--prometheus-url", receiver.base_url, "--results", str(world.manifests["attrib"])]
    assert main(["compare", medium, veryfast, *opts, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["energy_basis"] == "attributed"
    # Over vmaf 88-94 both lines are 720 x the transcode rate: veryfast spends more throughout.
    assert doc["difference_j_per_output_minute"] > 0
    assert main(["compare", medium, veryfast, *opts]) == 0
    text = capsys.readouterr().out
    assert "energy attributed to the transcode by its share of busy CPU" in text
    assert main(["compare", medium, veryfast, *opts, "--energy-basis", "gross"]) == 0
    assert "energy whole machine, baseline not subtracted" in capsys.readouterr().out


@pytest.mark.integration
@pytest.mark.slow
def test_an_old_schema_manifest_still_reports_and_refuses_attribution_by_name(
    receiver: ReceiverProcess,
    world: World,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = RunManifest.from_json(json.loads(world.manifests["attrib"].read_text()), "attrib")
    old = tmp_path / "old.json"
    old.write_text(json.dumps(run.to_json(schema_version=2)))
    args = ["report", "--prometheus-url", receiver.base_url, "--results", str(old)]
    args += ["--target-quality", "vmaf=93", "--format", "json", "--no-predict"]
    assert main([*args, "--output", str(tmp_path / "r.json")]) == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["quality"]["energy_basis"] == "net"
    assert any("attribution needs a newer ffmpeg-runner" in w for w in doc["warnings"])
    assert all(w["attributed_energy_j"] is None for w in doc["windows"])
    assert main([*args, "--energy-basis", "attributed"]) == 2
    assert "--energy-basis attributed: 36 window(s) of run(s) attrib have no CPU" in caplog.text
    assert "or pass --energy-basis net" in caplog.text
