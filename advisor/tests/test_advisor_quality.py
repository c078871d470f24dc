"""Quality per joule: closed-form interpolation, not-reached, the frontier and compare, the
target flag, prediction gating, and (integration) the four-family report on a real receiver."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from advisor.cli import flag_message, main
from advisor.errors import AdvisorConfigError
from advisor.predict import PowerPredictor
from advisor.present.notes import notes_text
from advisor.present.quality import compare_doc, excluded, family_reason
from advisor.present.quality import lines as quality_lines
from advisor.present.report import prediction_message
from advisor.quality import (
    Point,
    compare_curves,
    dominance,
    interpolate,
    parse_target,
    rate_curve,
)
from advisor.recommender import _predict_block, drop_unusable_predictions
from wattpush_testing import ReceiverProcess

from .conftest import QUALITY_AT_93, QUALITY_FAMILIES, QUALITY_FRONTIER, World


def P(bps: float, q: float, e: float, qci: float = math.nan, eci: float = math.nan) -> Point:
    return Point(bitrate_bps=bps, quality=q, energy=e, quality_ci95=qci, energy_ci95=eci)


# -- closed form ------------------------------------------------------------------------------


def test_interpolation_is_linear_in_quality_between_the_bracketing_points() -> None:
    curve = [P(5e5, 85, 600), P(1e6, 90, 100 * 9), P(2e6, 95, 1500)]
    at = interpolate(curve, 93.0)
    assert at is not None
    # w = (93 - 90) / (95 - 90) = 0.6
    assert at.weight == pytest.approx(0.6)
    assert at.energy == pytest.approx(900 + 0.6 * 600)
    assert at.bitrate_bps == pytest.approx(1e6 + 0.6 * 1e6)
    assert (at.lower.bitrate_bps, at.upper.bitrate_bps) == (1e6, 2e6)
    # Exactly at a measured point: that point's values, whichever bracket holds it.
    at90 = interpolate(curve, 90.0)
    assert at90 is not None and at90.energy == 900 and at90.bitrate_bps == 1e6
    at95 = interpolate(curve, 95.0)
    assert at95 is not None and at95.energy == 1500


def test_interpolated_uncertainty_propagates_both_points_energy_and_quality() -> None:
    a, b = P(1e6, 90, 900, qci=1.0, eci=30.0), P(2e6, 95, 1500, qci=2.0, eci=40.0)
    at = interpolate([a, b], 93.0)
    assert at is not None
    w, slope = 0.6, 600 / 5
    expected = math.sqrt(
        (1 - w) ** 2 * (30.0**2 + slope**2 * 1.0**2) + w**2 * (40.0**2 + slope**2 * 2.0**2)
    )
    assert at.energy_ci95 == pytest.approx(expected)
    # One repeat at a bracketing point: the uncertainty is unknown, not zero.
    one = interpolate([P(1e6, 90, 900), b], 93.0)
    assert one is not None and math.isnan(one.energy_ci95)


def test_never_extrapolates() -> None:
    curve = [P(5e5, 80, 400), P(1e6, 88, 600)]
    assert interpolate(curve, 93.0) is None  # not reached
    assert interpolate(curve, 75.0) is None  # exceeded at the lowest bitrate
    assert interpolate([P(1e6, 93, 700)], 93.0) is not None
    assert interpolate([P(1e6, 92.9, 700)], 93.0) is None
    assert interpolate([], 93.0) is None


def test_curve_leaves_out_points_whose_quality_does_not_rise_with_bitrate() -> None:
    pts = [P(4e6, 94, 1300), P(1e6, 90, 100), P(2e6, 95, 1100)]
    curve, left = rate_curve(pts)
    assert [p.bitrate_bps for p in curve] == [1e6, 2e6]
    assert [p.bitrate_bps for p in left] == [4e6]
    at = interpolate(curve, 93.0)
    assert at is not None and at.energy == pytest.approx(100 + 0.6 * 1000)


def test_frontier_is_the_pareto_set_with_ties_kept() -> None:
    pts = [
        ("cheap", 100.0, 80.0),
        ("good", 200.0, 95.0),
        ("mid", 150.0, 90.0),
        ("worse", 160.0, 88.0),  # mid: less energy, more quality
        ("same-q-more-e", 210.0, 95.0),  # good: equal quality, less energy
        ("same-e-less-q", 200.0, 94.0),  # good: equal energy, more quality
        ("twin-a", 300.0, 99.0),
        ("twin-b", 300.0, 99.0),  # identical: neither is strictly beaten
    ]
    dom = dominance(pts)
    assert sorted(n for n, d in dom.items() if d is None) == [
        "cheap",
        "good",
        "mid",
        "twin-a",
        "twin-b",
    ]
    assert dom["worse"] == "mid"
    assert dom["same-q-more-e"] == "good"
    assert dom["same-e-less-q"] == "good"


def test_compare_integrates_the_difference_over_the_common_quality_range() -> None:
    # A: E = 100 + 10 (q - 90) on [90, 96]; B: E = 130 + 10 (q - 90) on [92, 98]:
    # overlap [92, 96], B spends 30 J/min more everywhere there.
    a = [P(1, 90, 100), P(2, 93, 130), P(3, 96, 160)]
    b = [P(1, 92, 150), P(2, 98, 210)]
    res = compare_curves(a, b)
    assert res.overlap == (92, 96)
    assert res.difference == pytest.approx(30.0)
    assert res.mean_a == pytest.approx(100 + 10 * 4)  # mean of A over [92, 96] at q = 94
    assert res.difference_pct == pytest.approx(30.0 / 140.0 * 100)
    # A kink inside the range: exact by the union of breakpoints. B flat 200 on [90, 100];
    # A from 100 (q=90) to 300 (q=95) to 300 (q=100): mean of A = (5*200 + 5*300) / 10 = 250.
    kink = [P(1, 90, 100), P(2, 95, 300), P(3, 100, 300)]
    flat = [P(1, 90, 200), P(2, 100, 200)]
    res = compare_curves(kink, flat)
    assert res.mean_a == pytest.approx(250.0) and res.difference == pytest.approx(-50.0)


def test_compare_without_overlap_or_touching_at_one_quality() -> None:
    low = [P(1, 80, 100), P(2, 85, 200)]
    high = [P(1, 90, 300), P(2, 95, 400)]
    assert compare_curves(low, high).overlap is None
    touch = compare_curves(low, [P(1, 85, 260), P(2, 95, 400)])
    assert touch.overlap == (85, 85) and touch.difference == pytest.approx(60.0)


@pytest.mark.parametrize(
    ("text", "metric", "value"),
    [("vmaf=93", "vmaf", 93.0), ("PSNR=40", "psnr", 40.0), ("ssim=0.98", "ssim", 0.98)],
)
def test_target_quality_parses(text: str, metric: str, value: float) -> None:
    t = parse_target(text)
    assert (t.metric, t.value) == (metric, value)


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("vmaf", "write METRIC=VALUE"),
        ("butteraugli=3", "METRIC one of vmaf, psnr, ssim"),
        ("vmaf=high", "vmaf targets lie in (0, 100]"),
        ("ssim=98", "write e.g. ssim=0.98"),
        ("vmaf=nan", "vmaf targets lie in"),
    ],
)
def test_bad_target_quality_names_the_setting_and_the_cli_its_flag(text: str, expect: str) -> None:
    with pytest.raises(AdvisorConfigError) as exc:
        parse_target(text)
    assert str(exc.value).startswith(f"target_quality {text!r}") and expect in str(exc.value)
    assert exc.value.settings == ("target_quality",) and exc.value.exit_code == 2
    assert flag_message(exc.value).startswith(f"--target-quality {text!r}")


def test_cli_bad_target_quality_exits_2_before_any_query(
    caplog: pytest.LogCaptureFixture,
) -> None:
    args = ["report", "--prometheus-url", "http://127.0.0.1:1", "--since", "1h"]
    assert main([*args, "--target-quality", "vmaf=abc"]) == 2
    assert "--target-quality 'vmaf=abc'" in caplog.text
    assert "cannot reach" not in caplog.text


# -- prediction gating ------------------------------------------------------------------------


def _frame(power: Any, streams: tuple[int, ...] = (1, 2, 3, 4, 6)) -> pd.DataFrame:
    rows = []
    for enc in ("libx264", "libx265"):
        for s in streams:
            for rep in range(3):
                rows.append(
                    {
                        "phase": "transcode",
                        "status": "ok",
                        "scenario": f"{enc}-{s}",
                        "ladder": "640x360@1M",
                        "encoder": enc,
                        "preset": "fast",
                        "bitrate": "1M",
                        "streams": s,
                        "pixels_per_s": s * 640 * 360 * 30.0,
                        "bitrate_bps": 1e6,
                        "mean_power_w": power(enc, s, rep),
                        "energy_per_frame_j": 0.1,
                    }
                )
    return pd.DataFrame(rows)


def test_large_heldout_error_replaces_predictions_by_one_sentence() -> None:
    rng = np.random.default_rng(1)
    noise = {
        (e, s, r): float(rng.uniform(10, 200))
        for e in ("libx264", "libx265")
        for s in (1, 2, 3, 4, 6)
        for r in range(3)
    }
    block, predictor = _predict_block(_frame(lambda e, s, r: noise[(e, s, r)]), "mean_power_w", 0)
    assert block["status"] == "withheld" and predictor is None
    assert block["heldout_mape_pct"] > 25
    assert block["why"]["kind"] == "withheld"
    msg = prediction_message(block)
    assert msg.startswith("Power prediction withheld:") and "limit 25 %" in msg
    assert msg.count(". ") == 0 and msg.endswith(".")
    assert "predictions" not in block and "measured_vs_predicted" not in block


def test_too_few_configurations_is_one_sentence_with_what_to_run() -> None:
    block, predictor = _predict_block(_frame(lambda e, s, r: 50.0 + s, (1, 2)), "mean_power_w", 0)
    assert block["status"] == "insufficient" and predictor is None
    assert block["why"]["kind"] == "too_few"
    msg = prediction_message(block)
    assert msg.startswith("Power prediction withheld: too few configurations")
    assert "measure at least 5" in msg
    # One stream count: the 1-12 streams table would be all extrapolation.
    block, predictor = _predict_block(_frame(lambda e, s, r: 50.0 + r, (1,)), "mean_power_w", 0)
    assert block["status"] == "insufficient" and predictor is None
    assert block["why"] == {"kind": "one_stream_count", "streams": 1}
    assert "every configuration ran 1 stream(s)" in prediction_message(block)
    assert "ffmpeg-runner multi --count 2" in prediction_message(block)


def test_extrapolations_that_repeat_the_last_measured_value_are_dropped() -> None:
    frame = _frame(lambda e, s, r: 30.0 + 8.0 * s + (5 if e == "libx265" else 0), (1, 2, 3))
    frame["group"] = frame["scenario"]
    p = PowerPredictor(candidates=("gradient_boosting",)).fit(frame)
    from advisor.predict import stream_predictions

    raw = stream_predictions(p, frame)
    twelve = raw[raw["streams"] == 12]["predicted"].to_numpy()
    three = p.predict(frame[frame["streams"] == 3].drop_duplicates("encoder"))["predicted"]
    assert np.allclose(sorted(twelve), sorted(three))  # the tree repeats its last value
    kept, dropped = drop_unusable_predictions(raw, "gradient_boosting")
    assert dropped == {"flat": int(raw["extrapolated"].sum())} and dropped["flat"] > 0
    assert set(kept["streams"]) == {1, 2}
    # A linear model extrapolates for real: its rows stay, flagged.
    lin = PowerPredictor(candidates=("linear",)).fit(frame)
    kept, dropped = drop_unusable_predictions(stream_predictions(lin, frame), "linear")
    assert dropped == {} and set(kept["streams"]) == {1, 2, 4, 8, 12}


# -- the four families on a real receiver -----------------------------------------------------

_reports: dict[tuple[str, str], dict[str, Any]] = {}


def _report(receiver: ReceiverProcess, world: World, tmp: Path, source: str) -> dict[str, Any]:
    key = (receiver.base_url, source)
    if key not in _reports:
        out = tmp / "q.json"
        args = ["report", "--prometheus-url", receiver.base_url, "--run-id", "quality"]
        if source == "manifest":
            args += ["--results", str(world.manifests["quality"])]
        else:
            args += ["--since", "1h"]
        args += ["--target-quality", "vmaf=93", "--format", "json", "--no-predict"]
        assert main([*args, "--output", str(out)]) == 0
        _reports[key] = json.loads(out.read_text())
    return _reports[key]


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("source", ["manifest", "discovery"])
def test_target_quality_names_the_least_energy_family(
    receiver: ReceiverProcess, world: World, tmp_path: Path, source: str
) -> None:
    doc = _report(receiver, world, tmp_path, source)
    q = doc["quality"]
    assert q["target"] == {"metric": "vmaf", "value": 93.0}
    assert q["energy_basis"] == "net"
    assert doc["meta"]["queries"] == (1 if source == "manifest" else 2)
    fams = {f["family"]: f for f in q["families"]}
    assert set(fams) == {f"{e}/{p}/640x360" for e, p in QUALITY_FAMILIES}
    assert [f["family"] for f in q["families"][:3]] == list(QUALITY_AT_93)
    for name, (energy, bitrate) in QUALITY_AT_93.items():
        f = fams[name]
        assert f["status"] == "reached"
        assert f["energy_j_per_output_minute_at_target"] == pytest.approx(energy, rel=0.01)
        assert f["bitrate_at_target_bps"] == pytest.approx(bitrate, rel=0.01)
        assert (f["encoder"], f["preset"], f["resolution"]) == tuple(
            [*name.split("/")[:2], "640x360"]
        )
    slow = fams["libx264/ultrafast/640x360"]
    assert slow["status"] == "not reached" and slow["rank"] is None
    assert slow["energy_j_per_output_minute_at_target"] is None
    assert slow["bitrate_at_target_bps"] is None
    assert "not reached within the measured bitrates" in slow["reason"]
    assert q["frontier"] == QUALITY_FRONTIER
    assert q["winner"] == "libx264/veryfast/640x360"
    assert q["runner_up"] == "libx264/medium/640x360"
    assert q["margin"]["energy_j_per_output_minute"] == pytest.approx(40.0, rel=0.02)
    line = doc["summary"].splitlines()[0]
    assert line.startswith("At vmaf 93 (offline" if source == "manifest" else "At vmaf 93 (")
    assert "libx264/veryfast/640x360 at 1.83 Mb/s uses 1010 ±" in line
    assert "less than the runner-up libx264/medium/640x360" in line
    assert "Not reached within the measured bitrates: libx264/ultrafast/640x360" in doc["summary"]
    assert q["mode"] == ("offline" if source == "manifest" else "unknown")
    excluded = {e["scenario"]: e["reason"] for e in q["excluded"]}
    assert "cannot be split per output" in excluded["ladder-x264"]
    scen = {s["scenario"]: s for s in doc["scenarios"]}
    vmaf = scen["libx264-medium-1M"]["quality"]["vmaf"]
    assert vmaf["mean"] == pytest.approx(92.0) and vmaf["n"] == 3
    assert vmaf["ci95"] == pytest.approx(
        float(np.std([91.5, 92, 92.5], ddof=1) / math.sqrt(3) * 4.302652729911275), rel=1e-6
    )
    assert scen["libx264-medium-1M"]["on_frontier"] is True
    assert scen["libx264-veryfast-1M"]["dominated_by"] == "libx264-ultrafast-2M"
    assert scen["ladder-x264"]["quality"] is None
    assert set(scen["ladder-x264"]["quality_by_rung"]) == {"1280x720@2M", "640x360@800k"}


@pytest.mark.integration
@pytest.mark.slow
def test_without_target_the_frontier_marks_dominated_and_html_plots_it(
    receiver: ReceiverProcess, world: World, tmp_path: Path
) -> None:
    base = ["report", "--prometheus-url", receiver.base_url]
    base += ["--results", str(world.manifests["quality"]), "--no-predict"]
    assert main([*base, "--format", "json", "--output", str(tmp_path / "r.json")]) == 0
    q = json.loads((tmp_path / "r.json").read_text())["quality"]
    assert q["target"] is None and q["frontier"] == QUALITY_FRONTIER
    assert q["dominated"]["libx265-fast-1M"] == "libx264-veryfast-2M"
    assert all(f["energy_j_per_output_minute_at_target"] is None for f in q["families"])
    csv = tmp_path / "f.csv"
    assert main([*base, "--format", "csv", "--csv-table", "frontier", "--output", str(csv)]) == 0
    frontier = pd.read_csv(csv)
    assert sorted(frontier[frontier["on_frontier"]]["scenario"]) == QUALITY_FRONTIER
    assert main([*base, "--format", "csv", "--csv-table", "families", "--output", str(csv)]) == 0
    assert sorted(pd.read_csv(csv)["family"]) == sorted(
        f"{e}/{p}/640x360" for e, p in QUALITY_FAMILIES
    )
    assert main([*base, "--format", "html", "--output", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    order = [
        page.index("<h2>Recommendation</h2>"),
        page.index("aria-label='energy vs quality'"),
        page.index("aria-label='efficiency ranking'"),
        page.index("<table"),
    ]
    assert order == sorted(order)
    assert "the frontier (no other scenario" in page
    frontier_svg = re.search(r"<svg [^>]*aria-label='energy vs quality'.*?</svg>", page, re.S)
    assert frontier_svg is not None
    frontier_line = re.search(
        r"<polyline fill='none' stroke='#000' stroke-width='2.5' points='([^']*)'",
        frontier_svg.group(0),
    )
    assert frontier_line is not None and len(frontier_line.group(1).split()) == 7
    # Every window ran one stream: the prediction is one sentence, not a table.
    text = tmp_path / "r.txt"
    args = ["report", "--prometheus-url", receiver.base_url, "--results"]
    assert main([*args, str(world.manifests["quality"]), "--output", str(text)]) == 0
    report = text.read_text()
    assert "== Power prediction (W) ==\nPower prediction withheld: every configuration ran 1" in (
        report
    )
    assert "12 streams" not in report and "measured vs predicted" not in report


@pytest.mark.integration
@pytest.mark.slow
def test_quality_not_measured_ranks_as_before_and_says_so(
    receiver: ReceiverProcess, world: World, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    args = ["report", "--prometheus-url", receiver.base_url, "--results"]
    args += [str(world.manifests["rank"]), "--target-quality", "vmaf=93", "--no-predict"]
    assert main([*args, "--format", "json", "--output", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["quality"]["measured"] is False and doc["quality"]["families"] == []
    assert doc["summary"].startswith("Quality was not measured")
    assert [lad["ranking"] for lad in doc["ladders"]] == [["fast", "slow"], ["hd-a", "hd-b"]]


@pytest.mark.integration
@pytest.mark.slow
def test_compare_two_families_on_known_curves(
    receiver: ReceiverProcess,
    world: World,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The names come first: --results takes every word after it.
    opts = ["--prometheus-url", receiver.base_url, "--results", str(world.manifests["quality"])]
    a, b = "libx264/medium/640x360", "libx264/veryfast/640x360"

    def cmd(*names: str) -> list[str]:
        return ["compare", *names, *opts]

    assert main([*cmd(a, b), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    # Independent check: the mean of each curve on a fine grid over the common range.
    curves = {
        name: ([q for _, q, _ in pts], [e for _, _, e in pts])
        for name, pts in (
            (a, QUALITY_FAMILIES[("libx264", "medium")]),
            (b, QUALITY_FAMILIES[("libx264", "veryfast")]),
        )
    }
    lo, hi = 85.0, 94.0  # medium covers 85-96, veryfast 79-94
    grid = np.linspace(lo, hi, 900_001)
    mean = {n: float(np.interp(grid, *c).mean()) for n, c in curves.items()}
    assert doc["overlap"] == pytest.approx([lo, hi])
    assert doc["mean_energy_a"] == pytest.approx(mean[a], rel=1e-3)
    assert doc["difference_j_per_output_minute"] == pytest.approx(mean[b] - mean[a], rel=1e-3)
    assert doc["difference_pct"] == pytest.approx((mean[b] / mean[a] - 1) * 100, rel=1e-3)
    assert main(cmd(a, b)) == 0
    text = capsys.readouterr().out
    assert text.startswith("Over vmaf 85-94, libx264/veryfast/640x360 uses on average")
    assert "less than libx264/medium/640x360" in text
    # Curves that only touch (ultrafast ends at 88 where x265 fast starts): the difference
    # there, and a request for more bitrates.
    assert main(cmd("libx264/ultrafast/640x360", "libx265/fast/640x360")) == 0
    text = capsys.readouterr().out
    assert text.startswith("At vmaf 88, libx265/fast/640x360 uses on average 600 J")
    assert "touch at one quality only" in text
    assert main(cmd(a, "x264/nope/1x1")) == 2
    assert "unknown family 'x264/nope/1x1'; known families: libx264/medium/640x360" in caplog.text


# -- the analysis on a hand-built windows table -----------------------------------------------


def _windows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Transcode windows as add_scores leaves them, one output each unless rungs says more."""
    out = []
    for r in rows:
        bps = r.get("bps", 1e6)
        rung = f"640x360@{int(bps / 1000)}k"
        q = r.get("q")
        out.append(
            {
                "phase": "transcode",
                "status": "ok",
                "scenario": r["scenario"],
                "ladder": rung,
                "encoder": r.get("encoder", "libx264"),
                "preset": r.get("preset", "fast"),
                "streams": r.get("streams", 1),
                "rungs": r.get("rungs", 1),
                "resolution": "640x360",
                "bitrate_bps": bps,
                "rate_control": r.get("rate_control", "bitrate"),
                "quality_value": r.get("quality_value", math.nan),
                "realtime": r.get("realtime", False),
                "quality": {rung: {"vmaf": q}} if q is not None else None,
                "quality_error": r.get("quality_error"),
                "quality_vmaf": math.nan if q is None else q,
                "quality_psnr": math.nan,
                "quality_ssim": math.nan,
                "achieved_bitrate_bps": bps,
                "energy_per_output_minute_j": r["e"] + 100.0,
                "net_energy_per_output_minute_j": r.get("net", r["e"]),
                "baseline_power_w": 10.0,  # every window has a baseline
            }
        )
    return pd.DataFrame(out)


def test_live_and_offline_windows_make_separate_families() -> None:
    from advisor.quality import QualityTarget, analyze_quality

    rows = []
    for live in (False, True):
        for bps, q, e in ((5e5, 85.0, 100.0), (1e6, 95.0, 200.0)):
            for rep in range(2):
                rows.append(
                    {
                        "scenario": f"{'live' if live else 'file'}-{bps:g}",
                        "bps": bps,
                        "q": q,
                        "e": e * (3 if live else 1) + rep,
                        "realtime": live,
                    }
                )
    qa = analyze_quality(_windows(rows), QualityTarget("vmaf", 90.0))
    assert qa.mode == "mixed"
    assert [f.name for f in qa.families] == [
        "libx264/fast/640x360",
        "libx264/fast/640x360/live",
    ]
    assert qa.families[0].at_target is not None
    assert qa.families[0].at_target.energy == pytest.approx((100.5 + 200.5) / 2)
    assert set(qa.frontier_groups) == {"640x360", "640x360 live"}


def test_a_missing_baseline_switches_every_family_to_gross_energy() -> None:
    from advisor.quality import analyze_quality

    rows = [
        {"scenario": "a", "bps": 5e5, "q": 80.0, "e": 100.0},
        {"scenario": "b", "bps": 1e6, "q": 90.0, "e": 150.0, "net": math.nan},
    ]
    frame = _windows(rows).assign(baseline_power_w=[10.0, math.nan])
    qa = analyze_quality(frame)
    assert qa.basis == "gross" and qa.energy_column == "energy_per_output_minute_j"
    said = notes_text(qa.notes)
    assert any("attribution needs a newer ffmpeg-runner" in n for n in said)
    assert any(
        "because b lack a baseline (run ffmpeg-runner with --with-baseline)" in n for n in said
    )
    assert sorted(qa.points["energy"]) == [200.0, 250.0]


def test_net_energy_at_or_below_zero_leaves_the_window_out_not_the_basis() -> None:
    """A baseline, but no more power than it: the basis stays net (it does not fall to gross
    because of one window's value), and the window is named with the reason."""
    from advisor.attribution import basis_notes
    from advisor.quality import analyze_quality

    rows = [
        {"scenario": "a", "bps": 5e5, "q": 80.0, "e": 100.0},
        {"scenario": "b", "bps": 1e6, "q": 90.0, "e": 150.0, "net": math.nan},
    ]
    frame = _windows(rows).assign(
        net_energy_j=[50.0, -3.0], window_id=["r/a/transcode/0", "r/b/transcode/0"]
    )
    qa = analyze_quality(frame)
    assert qa.basis == "net"
    assert list(qa.points["scenario"]) == ["a"]
    reasons = {e["scenario"]: e["reason"] for e in excluded(qa)}
    assert reasons["b"].startswith("no net energy in any repeat: drew no more power than its")
    warned = basis_notes(frame, "net")
    assert [w.kind for w in warned] == ["no_basis_energy"]
    assert notes_text(warned) == [
        "window r/b/transcode/0: no net energy (drew no more power than its baseline (net "
        "energy -3 J ≤ 0: the load is within the baseline's noise; measure longer windows or "
        "more repeats)); left out of the net figures"
    ]


def test_exceeded_unmeasured_and_ladder_scenarios_are_explained() -> None:
    from advisor.quality import QualityTarget, analyze_quality

    rows = [
        {"scenario": "hi-1", "bps": 5e5, "q": 95.0, "e": 100.0},
        {"scenario": "hi-2", "bps": 1e6, "q": 97.0, "e": 150.0},
        {"scenario": "broken", "bps": 2e6, "q": None, "e": 90.0, "quality_error": "ffmpeg 1"},
        {"scenario": "ladder", "bps": 2e6, "q": 90.0, "e": 90.0, "rungs": 2},
    ]
    qa = analyze_quality(_windows(rows), QualityTarget("vmaf", 90.0))
    (fam,) = qa.families
    assert fam.status == "exceeded" and fam.at_target is None
    assert "measure lower bitrates" in str(family_reason(fam))
    reasons = {e["scenario"]: e["reason"] for e in excluded(qa)}
    assert "quality step failed: ffmpeg 1" in reasons["broken"]
    assert "cannot be split per output" in reasons["ladder"]
    assert quality_lines(qa)[0].startswith("At vmaf 90 (offline): no family reaches the target")
    # A metric nobody measured: said, with the metric that was.
    qa = analyze_quality(_windows(rows), QualityTarget("ssim", 0.98))
    assert qa.families == [] and "ssim was not measured" in quality_lines(qa)[0]
    assert "--target-quality vmaf=VALUE" in quality_lines(qa)[0]


def test_compare_without_common_quality_range_says_what_to_measure() -> None:
    from advisor.quality import analyze_quality, compare

    rows = [
        {"scenario": "low-1", "preset": "ultrafast", "bps": 5e5, "q": 70.0, "e": 50.0},
        {"scenario": "low-2", "preset": "ultrafast", "bps": 1e6, "q": 75.0, "e": 60.0},
        {"scenario": "high-1", "preset": "slow", "bps": 5e5, "q": 90.0, "e": 300.0},
        {"scenario": "high-2", "preset": "slow", "bps": 1e6, "q": 95.0, "e": 400.0},
    ]
    qa = analyze_quality(_windows(rows))
    doc = compare_doc(qa, *compare(qa, "libx264/ultrafast/640x360", "libx264/slow/640x360"))
    assert doc["overlap"] is None and doc["difference_j_per_output_minute"] is None
    assert "cover no common quality range" in doc["summary"]
    with pytest.raises(AdvisorConfigError, match="known families: libx264/slow/640x360, "):
        compare(qa, "libx264/slow/640x360", "nope")


def test_discovery_reads_fps_and_quality_through_the_contract_labels(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from advisor.prom import Series
    from advisor.windows import discover_windows

    t = np.arange(100.0, 110.01, 0.1)
    base = {"run_id": "r", "scenario": "s", "repeat": "1"}
    info = {
        "__name__": "ffmpeg_scenario_info",
        **base,
        "phase": "transcode",
        "encoder": "libx264",
        "preset": "fast",
        "ladder": "640x360@1M",
        "streams": "1",
        "bitrate": "1M",
        "fps": "25",
    }
    frames = {"__name__": "ffmpeg_frames_total", **base, "stream": "0", "output": "low"}
    rung = {**base, "rung": "640x360@1M"}
    series = [
        Series(info, t, np.ones(t.size)),
        Series(frames, t, (t - 100.0) * 25),
        Series(
            {"__name__": "ffmpeg_output_quality", **rung, "metric": "vmaf"},
            t[-1:],
            np.array([91.5]),
        ),
        Series(
            {"__name__": "ffmpeg_output_bitrate_bits_per_second", **rung}, t[-1:], np.array([9.7e5])
        ),
        Series({**info, "scenario": "bad", "repeat": "one"}, t, np.ones(t.size)),
    ]
    (w,) = discover_windows(series)
    assert (w.scenario, w.repeat, w.fps) == ("s", 1, 25.0)
    assert w.frames_total == pytest.approx(250.0)
    assert w.output_pixels == pytest.approx(250.0 * 640 * 360)
    assert w.rung_quality("vmaf") == 91.5 and w.rung_achieved_bitrate() == 9.7e5
    assert "label repeat='one' is not a number" in caplog.text
