"""Unit tests of the energy, statistics, source-selection and manifest logic."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from advisor.analysis import add_scores, aggregate_scenarios, assign_baselines, welch_test
from advisor.energy import (
    FloatArray,
    WindowIntegrals,
    counter_cumulative,
    mean_ci95,
    power_cumulative,
    resample_power,
    window_integrals,
)
from advisor.errors import ManifestError
from advisor.present.notes import notes_text
from advisor.present.report import welch_verdict
from advisor.prom import Series
from advisor.sources import drop_repeated_counter_values, select_entities, zone_kind
from advisor.synthetic import Experiment, ladder
from advisor.windows import load_manifest
from base_monitoring_client.config import InvalidValue
from ffmpeg_runner.contract import ladder_key, parse_bitrate, parse_ladder
from scipy import stats


def test_counter_resets_count_the_new_value_as_increase() -> None:
    v = np.array([10.0, 12.0, 15.0, 1.0, 4.0])
    assert counter_cumulative(v).tolist() == [0.0, 2.0, 5.0, 6.0, 9.0]


def test_power_integral_is_trapezoidal() -> None:
    t = np.array([0.0, 1.0, 3.0])
    p = np.array([10.0, 20.0, 20.0])
    assert power_cumulative(t, p).tolist() == [0.0, 15.0, 55.0]


def test_window_integral_interpolates_edges_exactly_for_linear_energy() -> None:
    t = np.arange(0, 100.0, 0.1)
    cum = 50.0 * t  # 50 W
    res = window_integrals(t, cum, np.array([10.03, 20.0]), np.array([19.98, 30.05]), max_gap_s=1.0)
    assert res.values == pytest.approx([50.0 * 9.95, 50.0 * 10.05])
    assert res.reasons == [None, None]


def test_window_integral_reports_gaps_and_missing_edges() -> None:
    t = np.concatenate((np.arange(0, 10, 0.1), np.arange(15, 30, 0.1)))
    cum = 5.0 * t
    res = window_integrals(
        t,
        cum,
        np.array([-20.0, 8.0, 20.0, 25.0]),
        np.array([-10.0, 17.0, 25.0, 40.0]),
        max_gap_s=2.0,
    )
    assert np.isnan(res.values[[0, 1, 3]]).all()
    assert res.values[2] == pytest.approx(25.0)
    assert "after the window start" in str(res.reasons[0])
    assert "gap of 5.1 s" in str(res.reasons[1])
    assert "before the window end" in str(res.reasons[3])


def test_window_integral_scales_a_slightly_late_start_instead_of_counting_zero() -> None:
    t = np.arange(1.0, 11.0, 0.1)
    res = window_integrals(t, 10.0 * t, np.array([0.5]), np.array([10.0]), max_gap_s=1.0)
    assert res.values[0] == pytest.approx(10.0 * 9.5, rel=1e-9)


def test_resample_power_marks_gaps_unknown() -> None:
    t = np.concatenate((np.arange(0, 5, 0.1), np.arange(10, 15, 0.1)))
    grid = np.arange(0, 15, 1.0)
    p = resample_power(t, 7.0 * t, grid, max_gap_s=1.0)
    assert p[0] == pytest.approx(7.0)
    assert np.isnan(p[6])


def test_mean_ci95_matches_student_t() -> None:
    x = np.array([1.0, 2.0, 4.0, np.nan])
    mean, half, n = mean_ci95(x)
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(x[:3]), scale=stats.sem(x[:3]))
    assert (mean, n) == (pytest.approx(7 / 3), 3)
    assert half == pytest.approx((hi - lo) / 2)
    assert np.isnan(mean_ci95(np.array([3.0]))[1])


def test_welch_verdicts_in_words() -> None:
    a, b = np.array([10.0, 10.2, 9.8]), np.array([8.0, 8.1, 7.9])
    sig = welch_test(("A", "B"), a, b, "pixels_per_joule", 0.05)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert sig.significant is True and sig.p_value == pytest.approx(ref.pvalue)
    assert "A is significantly better than B" in welch_verdict(sig)
    ns = welch_test(
        ("A", "B"),
        np.array([10.0, 12.0, 8.0]),
        np.array([9.9, 11.9, 7.9]),
        "pixels_per_joule",
        0.05,
    )
    assert ns.significant is False and "NOT significant" in welch_verdict(ns)
    few = welch_test(("A", "B"), np.array([10.0]), b, "pixels_per_joule", 0.05)
    assert few.significant is None and "at least 2" in welch_verdict(few)


def _series(name: str, **labels: str) -> Series:
    t = np.arange(0, 10, 1.0)
    return Series({"__name__": name, "instance": "h", **labels}, t, t * 2)


def test_zone_selection_package_dram_or_psys_never_core() -> None:
    base = [
        _series("cpu_energy_joules_total", zone="package", socket="0", source="rapl"),
        _series("cpu_energy_joules_total", zone="core", socket="0", source="rapl"),
        _series("cpu_energy_joules_total", zone="dram", socket="0", source="rapl"),
        _series("cpu_energy_joules_total", zone="package", socket="1", source="rapl"),
    ]
    sel = select_entities(base, allow_estimated=False)
    added = {e.key for e in sel.entities if e.additive}
    assert added == {"package/0", "dram/0", "package/1"}
    sel = select_entities(
        [*base, _series("cpu_energy_joules_total", zone="psys", socket="0", source="rapl")],
        allow_estimated=False,
    )
    assert {e.key for e in sel.entities if e.additive} == {"psys/0"}
    assert zone_kind("package-0") == "package" and zone_kind("uncore") == "uncore"


def test_estimated_source_excluded_unless_allowed_and_measured_preferred() -> None:
    est = _series("cpu_energy_joules_total", zone="package", socket="0", source="estimated")
    sel = select_entities([est], allow_estimated=False)
    assert not sel.has_cpu and sel.excluded_estimated == ["cpu:package/0"]
    assert any(n.kind == "estimated_excluded" for n in sel.notes)
    assert any("--allow-estimated" in n for n in notes_text(sel.notes))
    assert select_entities([est], allow_estimated=True).entities[0].source == "estimated"
    both = [est, _series("cpu_energy_joules_total", zone="package", socket="0", source="pyjoules")]
    assert select_entities(both, allow_estimated=True).entities[0].source == "pyjoules"


def test_repeated_counter_values_from_query_range_become_gaps() -> None:
    s = Series(
        {"__name__": "cpu_energy_joules_total"},
        np.arange(6.0),
        np.array([1.0, 2.0, 2.0, 2.0, 3.0, 4.0]),
    )
    assert drop_repeated_counter_values(s).t.tolist() == [0.0, 1.0, 4.0, 5.0]
    other = Series({"__name__": "docker_engine_cpu_seconds_total"}, s.t, s.v)
    assert drop_repeated_counter_values(other) is other


def test_ladder_key_bitrate_parsing() -> None:
    rungs = ladder((640, 360, "800k"), (1280, 720, "2M"))
    assert ladder_key(rungs) == "1280x720@2M+640x360@800k"
    assert [r.height for r in parse_ladder("1280x720@2M+640x360@800k")] == [720, 360]
    assert parse_bitrate("2M") == 2e6 and parse_bitrate("800k") == 8e5
    with pytest.raises(InvalidValue, match="not a bitrate"):
        parse_bitrate("fast")


def test_manifest_loading_and_errors(tmp_path: Path) -> None:
    exp = Experiment(start_ms=1_700_000_000_000)
    exp.add(
        5,
        run_id="r1",
        scenario="s",
        phase="transcode",
        repeat=0,
        cpu_w=50.0,
        rungs=ladder((1280, 720, "2M")),
    )
    (path,) = exp.write_manifests(tmp_path)
    run, windows = load_manifest(path)
    assert run.run_id == "r1" and run.sample_interval_s == 0.1
    assert windows[0].duration_s == 5.0 and windows[0].ladder == "1280x720@2M"
    assert windows[0].output_pixels == 1280 * 720 * 150
    doc = json.loads(path.read_text())
    doc["schema_version"] = 99
    path.write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match="schema_version 99"):
        load_manifest(path)
    with pytest.raises(ManifestError, match="ffmpeg-runner"):
        load_manifest(tmp_path / "absent.json")


def _windows_frame() -> pd.DataFrame:
    rows = []
    for rep, (p, base) in enumerate([(100.0, 20.0), (110.0, 30.0)]):
        common = {
            "run_id": "r",
            "scenario": "s",
            "repeat": rep,
            "ladder": "L",
            "encoder": "x",
            "preset": "p",
            "bitrate": "2M",
            "streams": 1,
            "power_source": "cpu=rapl",
            "status": "ok",
            "fps": 30.0,
            "rungs": 1,
            "nominal_pixels_per_s": 1e6,
            "engine_cpu_s": 1.0,
            "engine_cpu_share": 0.1,
            "cpu_power_w": p,
            "gpu_power_w": np.nan,
        }
        t0 = rep * 100.0
        rows.append(
            {
                **common,
                "window_id": f"b{rep}",
                "phase": "baseline",
                "start_s": t0,
                "end_s": t0 + 5,
                "duration_s": 5.0,
                "mean_power_w": base,
                "energy_j": base * 5,
                "frames_total": np.nan,
                "output_pixels": np.nan,
            }
        )
        rows.append(
            {
                **common,
                "window_id": f"t{rep}",
                "phase": "transcode",
                "start_s": t0 + 10,
                "end_s": t0 + 30,
                "duration_s": 20.0,
                "mean_power_w": p,
                "energy_j": p * 20,
                "frames_total": 600.0,
                "output_pixels": 600.0 * 1e5,
            }
        )
    return pd.DataFrame(rows)


def test_net_energy_uses_mean_power_difference_times_duration() -> None:
    df = add_scores(assign_baselines(_windows_frame()))
    tr = df[df["phase"] == "transcode"].reset_index(drop=True)
    assert tr["baseline_window"].tolist() == ["b0", "b1"]
    assert tr["net_energy_j"].tolist() == [(100 - 20) * 20.0, (110 - 30) * 20.0]
    assert tr["pixels_per_joule"][0] == pytest.approx(6e7 / 2000.0)
    assert tr["throughput_per_watt"][0] == pytest.approx(30.0 / 100.0)
    assert tr["energy_per_output_minute_j"][0] == pytest.approx(2000.0 / (600 / 30 / 60))
    agg = aggregate_scenarios(df, "pixels_per_joule")
    assert agg.loc[0, "n_ok"] == 2 and agg.loc[0, "mean_power_w_mean"] == 105.0
    assert agg.loc[0, "mean_power_w_ci95"] == pytest.approx(stats.t.ppf(0.975, 1) * 5.0)


def test_report_numbers_keep_three_significant_digits_below_one() -> None:
    from advisor.present.numbers import fmt as _fmt

    # Joules per frame: both ends of an interval must stay distinguishable.
    assert (_fmt(0.0123), _fmt(0.0187)) == ("0.0123", "0.0187")
    assert _fmt(0.5) == "0.5"
    assert _fmt(0.000123456) == "0.000123"
    assert (_fmt(12.345), _fmt(0.0), _fmt(123456.0)) == ("12.35", "0.00", "1.235e+05")
    assert (_fmt(float("nan")), _fmt("x")) == ("n/a", "x")


def _window_5_15_with_gap(
    gap_from: float,
    gap_to: float,
    *,
    reset: bool = False,
    counter: bool = True,
    max_edge_gap_s: float = 0.0,
    watts: Callable[[FloatArray], FloatArray] | None = None,
) -> WindowIntegrals:
    """Window 5..15 s over a 10 W counter sampled at 10 Hz with no samples in (gap_from,
    gap_to); with ``reset`` the counter starts again from 0 after the gap (a restarted client).
    ``watts`` replaces the constant 10 W by the energy function E(t) given."""
    t = np.round(np.arange(0.0, 20.0001, 0.1), 3)
    t = t[(t <= gap_from) | (t >= gap_to)]
    energy = watts or (lambda x: 10.0 * x)
    v = (
        np.where(t >= gap_to, energy(t) - energy(np.full_like(t, gap_to)), energy(t))
        if reset
        else energy(t)
    )
    return window_integrals(
        t,
        counter_cumulative(v),
        np.array([5.0]),
        np.array([15.0]),
        max_gap_s=1.0,
        raw_counter=v if counter else None,
        max_edge_gap_s=max_edge_gap_s,
    )


def test_counter_gap_inside_a_window_keeps_the_exact_difference() -> None:
    res = _window_5_15_with_gap(8.0, 11.0)  # 3 s without samples, well inside the window
    assert res.values[0] == pytest.approx(100.0)
    assert res.reasons == [None]
    assert res.notes == ["gap of 3.0 s inside, difference exact"]
    # A power gauge's integral (no raw counter): the same gap makes the window missing.
    gauge = _window_5_15_with_gap(8.0, 11.0, counter=False)
    assert np.isnan(gauge.values[0]) and gauge.reasons == ["gap of 3.0 s in the data"]


@pytest.mark.parametrize(
    ("gap", "reset", "reason"),
    [
        ((4.0, 7.0), False, "gap of 3.0 s in the data"),  # the window starts inside the gap
        ((13.0, 16.0), False, "gap of 3.0 s in the data"),  # it ends inside the gap
        ((8.0, 11.0), True, "counter reset inside a gap of 3.0 s"),  # energy up to it is lost
    ],
)
def test_counter_gap_at_an_edge_or_with_a_reset_stays_missing(
    gap: tuple[float, float], reset: bool, reason: str
) -> None:
    res = _window_5_15_with_gap(*gap, reset=reset)
    assert np.isnan(res.values[0])
    assert res.reasons == [reason]


@pytest.mark.parametrize(
    ("gap", "note", "minus", "plus"),
    [
        # E(t) = 10 t: E(5) interpolated between E(4) = 40 and E(7) = 70 is 50, the true start
        # value lies in [40, 70], so the energy lies in [100 - 20, 100 + 10].
        ((4.0, 7.0), "start inside a 3.0 s gap", 20.0, 10.0),
        ((13.0, 16.0), "end inside a 3.0 s gap", 20.0, 10.0),
    ],
)
def test_counter_edge_inside_a_short_gap_is_interpolated_with_its_worst_case(
    gap: tuple[float, float], note: str, minus: float, plus: float
) -> None:
    res = _window_5_15_with_gap(*gap, max_edge_gap_s=5.0)
    assert res.values[0] == pytest.approx(100.0)
    assert res.reasons == [None]
    assert res.notes == [f"{note}, interpolated, true value within -{minus:g}/+{plus:g} J"]
    assert res.edge_error[0] == pytest.approx(max(minus, plus))


def test_interpolated_edge_bound_holds_when_power_steps_inside_the_gap() -> None:
    # 2 W until t = 6.5, then 40 W (an encoder starting while the client stalls, 4..7 s).
    def energy(x: FloatArray) -> FloatArray:
        return np.where(x < 6.5, 2.0 * x, 13.0 + 40.0 * (x - 6.5))

    res = _window_5_15_with_gap(4.0, 7.0, max_edge_gap_s=5.0, watts=energy)
    truth = float(energy(np.array([15.0]))[0] - energy(np.array([5.0]))[0])
    assert res.values[0] != pytest.approx(truth)  # interpolation is wrong here ...
    assert abs(res.values[0] - truth) <= res.edge_error[0]  # ... but within what it states


@pytest.mark.parametrize(
    ("gap", "reset", "reason"),
    [
        (
            (3.0, 9.0),
            False,
            "the window start lies inside a gap of 6.0 s in the data, longer than "
            "max_edge_gap_s=5 (--max-edge-gap)",
        ),
        ((4.0, 7.0), True, "counter reset inside a gap of 3.0 s"),
        ((4.0, 16.0), False, "the whole window lies inside a gap of 12.0 s"),
    ],
)
def test_edge_gaps_too_long_reset_or_covering_the_window_stay_missing(
    gap: tuple[float, float], reset: bool, reason: str
) -> None:
    res = _window_5_15_with_gap(*gap, reset=reset, max_edge_gap_s=5.0)
    assert np.isnan(res.values[0]) and res.reasons == [reason]
    assert res.edge_error[0] == 0
