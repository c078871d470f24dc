"""End to end against real receivers: the report's numbers equal the closed-form answers."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from advisor.cli import main
from advisor.present.notes import notes_text
from advisor.present.report import summary as summary_text
from advisor.present.report import welch_verdict
from advisor.recommender import AdvisorReport
from advisor.synthetic import SynthWindow
from wattpush_testing import ReceiverProcess

from advisor import TranscodingRecommender

from .conftest import CPU_IDLE_W, GPU_IDLE_W, World

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_cache: dict[tuple[str, ...], tuple[AdvisorReport, int]] = {}


def analyse(
    receiver: ReceiverProcess, world: World, run: str, **kw: Any
) -> tuple[AdvisorReport, int]:
    key = (receiver.base_url, run, *(f"{k}={v}" for k, v in sorted(kw.items())))
    if key not in _cache:
        since = kw.pop("since_s", None)
        rec = TranscodingRecommender(receiver.base_url, **kw)
        if since:
            windows = rec.load_windows(since_s=since, run_id=run)
        else:
            windows = rec.load_windows([world.manifests[run]])
        _cache[key] = (rec.analyze(windows), rec.api.query_count)
    return _cache[key]


def row(rep: AdvisorReport, sw: SynthWindow) -> pd.Series:
    df, w = rep.windows, sw.record
    hit = df[(df["scenario"] == w.scenario) & (df["repeat"] == w.repeat) & (df["phase"] == w.phase)]
    assert len(hit) == 1, f"{w.scenario}/{w.repeat}"
    return hit.iloc[0]


def test_window_energy_power_and_net_energy_match_closed_form(
    receiver: ReceiverProcess, world: World
) -> None:
    rep, queries = analyse(receiver, world, "rank")
    assert queries == 1  # one raw query for every window of the run
    checked = 0
    for sw in world.windows("rank"):
        w, load = sw.record, sw.load
        if w.status != "ok" or sw is world.gap_window:
            continue
        r = row(rep, sw)
        assert r["status"] == "ok"
        tol = 1e-2 if sw is world.reset_window else 1e-6
        assert r["energy_j"] == pytest.approx(sw.expected_energy_j, rel=tol)
        assert r["cpu_power_w"] == pytest.approx(load.cpu_w, rel=tol)
        assert r["gpu_power_w"] == pytest.approx(load.gpu_w, rel=1e-6)
        assert r["baseline_power_w"] == pytest.approx(CPU_IDLE_W + GPU_IDLE_W, rel=1e-6)
        net = (load.total_w - CPU_IDLE_W - GPU_IDLE_W) * w.duration_s
        assert r["net_energy_j"] == pytest.approx(net, rel=tol)
        assert r["pixels_per_joule"] == pytest.approx(
            (w.output_pixels or 0) / sw.expected_energy_j, rel=tol
        )
        # docker engine: 0.2 CPU-s/s of a host busy 1.0 CPU-s/s
        assert r["engine_cpu_s"] == pytest.approx(0.2 * w.duration_s, rel=1e-6)
        assert r["engine_cpu_share"] == pytest.approx(0.2, rel=1e-6)
        checked += 1
    assert checked == 12


def test_core_zone_and_estimated_shadow_are_not_added(
    receiver: ReceiverProcess, world: World
) -> None:
    rep, _ = analyse(receiver, world, "rank")
    sources = {(s["domain"], s["entity"]): s for s in rep.meta["power_sources"]}
    assert sources[("cpu", "core/0")]["added_to_total"] is False
    assert sources[("cpu", "package/0")]["source"] == "rapl"
    assert sources[("cpu", "dram/0")]["added_to_total"] is True
    assert "estimated" not in {s["source"] for s in rep.meta["power_sources"]}
    assert all("rapl" in s and "nvml" in s for s in rep.windows["power_source"])


def test_missing_and_failed_windows_are_reported_not_zero(
    receiver: ReceiverProcess, world: World
) -> None:
    rep, _ = analyse(receiver, world, "rank")
    gap = row(rep, world.gap_window)
    assert gap["status"] == "missing"
    assert pd.isna(gap["energy_j"])
    assert "gap" in gap["problem"]
    failed = rep.windows[(rep.windows["scenario"] == "hd-b") & (rep.windows["repeat"] == 3)]
    assert failed.iloc[0]["status"] == "failed"
    sc = rep.scenarios.set_index("scenario")
    assert sc.loc["hd-a", "n_ok"] == 3 and sc.loc["hd-a", "n_missing"] == 1
    assert sc.loc["hd-b", "n_ok"] == 3 and sc.loc["hd-b", "n_failed"] == 1
    said = notes_text(rep.warnings)
    assert any("hd-a/transcode/3" in w and "missing" in w for w in said)
    about_failed = [w for w in said if "hd-b/transcode/3" in w]
    assert any("failed" in w for w in about_failed)
    assert any("interpolated" in w for w in about_failed)


def test_ranking_within_ladders_and_welch_verdicts(receiver: ReceiverProcess, world: World) -> None:
    rep, _ = analyse(receiver, world, "rank")
    ladders = {lad.ladder: lad for lad in rep.ladders}
    sd = ladders["1280x720@2M+640x360@800k"]
    hd = ladders["1920x1080@4M"]
    assert sd.ranking == ["fast", "slow"]
    assert sd.test is not None and sd.test.significant is True
    assert "significantly better" in welch_verdict(sd.test)
    assert hd.ranking == ["hd-a", "hd-b"]
    assert hd.test is not None and hd.test.significant is False
    assert "NOT significant" in welch_verdict(hd.test)
    assert rep.best_overall is not None
    # Baselines and no CPU accounting: ranked by pixels per joule of net energy (the window's
    # power less its baseline's 20 W CPU + 10 W GPU, over 10 s).
    assert rep.meta["energy_basis"] == "net"
    assert rep.meta["rank_by"] == "net_pixels_per_joule"
    sd_ppj = (1280 * 720 + 640 * 360) * 300 / 1000.0
    hd_ppj = 1920 * 1080 * 300 / 2000.0
    assert rep.best_overall["scenario"] == ("fast" if sd_ppj > hd_ppj else "hd-a")
    assert rep.best_overall["net_pixels_per_joule_mean"] == pytest.approx(sd_ppj, rel=0.01)
    gross, _ = analyse(receiver, world, "rank", energy_basis="gross")
    assert gross.meta["rank_by"] == "pixels_per_joule"
    assert gross.best_overall is not None and gross.best_overall["scenario"] == "hd-a"
    summary = summary_text(rep)
    assert "significantly better" in summary and "NOT significant" in summary


def test_only_estimated_power_needs_allow_estimated(
    receiver: ReceiverProcess, world: World
) -> None:
    rep, _ = analyse(receiver, world, "est")
    assert (rep.windows["status"] == "missing").all()
    assert rep.windows["problem"].str.contains("--allow-estimated").all()
    rep2, _ = analyse(receiver, world, "est", allow_estimated=True)
    assert (rep2.windows["status"] == "ok").all()
    assert row(rep2, world.est.windows[0])["mean_power_w"] == pytest.approx(55.0, rel=1e-6)
    assert all("estimated" in s for s in rep2.windows["power_source"])


def test_window_starting_inside_a_counter_gap_is_interpolated_with_its_error(
    receiver: ReceiverProcess, world: World
) -> None:
    w = world.stalled_window
    rep, _ = analyse(receiver, world, "est", allow_estimated=True)
    got = row(rep, w)
    truth = 55.0 * w.record.duration_s
    assert got["status"] == "ok"
    # The gap also covers idle time before the window, so interpolation is not exact, but the
    # truth lies within the stated worst case, which is far below the window's energy.
    assert got["energy_j"] != pytest.approx(truth, rel=1e-6)
    assert 0 < abs(got["energy_j"] - truth) <= got["energy_error_j"] < 0.5 * truth
    assert row(rep, world.est.windows[0])["energy_error_j"] == 0
    part = rep.breakdown[rep.breakdown["window_id"] == got["window_id"]].iloc[0]
    # 2.5 s removed, 2.6 s between the samples around the hole
    assert re.search(
        r"start inside a 2\.6 s gap, interpolated, true value within -[\d.]+/\+", part["method"]
    )
    assert any(
        w.record.scenario in text and "interpolated" in text and "±" in text
        for text in notes_text(rep.warnings)
    )
    # A limit below the gap: the window is missing and the reason names the setting.
    strict, _ = analyse(receiver, world, "est", allow_estimated=True, max_edge_gap_s=2.0)
    got = row(strict, w)
    assert got["status"] == "missing" and "max_edge_gap_s=2" in got["problem"]


@pytest.mark.parametrize("mode", [{"query_mode": "range"}, {"since_s": 3600.0}])
def test_range_mode_and_discovery_agree_with_manifest(
    receiver: ReceiverProcess, world: World, mode: dict[str, Any]
) -> None:
    ref, _ = analyse(receiver, world, "rank")
    other, queries = analyse(receiver, world, "rank", **mode)
    assert queries <= 10
    cols = ["scenario", "n_ok", "mean_power_w_mean", "net_energy_j_mean"]
    a = ref.scenarios[cols].sort_values("scenario").reset_index(drop=True)
    b = other.scenarios[cols].sort_values("scenario").reset_index(drop=True)
    if "since_s" in mode:  # discovered windows end at the last info sample
        a = a[a["scenario"] != "hd-b"].reset_index(drop=True)  # failed window unknown to labels
        b = b[b["scenario"] != "hd-b"].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, rtol=0.02)


def test_prediction_recovers_the_scaling_law(receiver: ReceiverProcess, world: World) -> None:
    rep, queries = analyse(receiver, world, "law")
    assert queries == 1  # 60 windows, still one query
    block = rep.prediction["power"]
    assert block["status"] == "ok"
    assert block["heldout_mape_pct"] < 8.0
    preds = block["predictions"]
    assert sorted(set(preds["streams"])) == [1, 2, 4, 8, 12]
    assert (preds["lower"] < preds["predicted"]).all() and (
        preds["predicted"] < preds["upper"]
    ).all()
    mvp = block["measured_vs_predicted"]
    assert len(mvp) == 20 and mvp["within_interval"].mean() >= 0.7


def test_cli_formats_and_saved_model(
    receiver: ReceiverProcess, world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = receiver.base_url
    law = str(world.manifests["law"])
    assert (
        main(
            [
                "report",
                "--prometheus-url",
                url,
                "--results",
                law,
                "--format",
                "json",
                "--output",
                str(tmp_path / "r.json"),
                "--save-model",
                str(tmp_path / "m"),
            ]
        )
        == 0
    )
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["schema_version"] == 1 and doc["meta"]["queries"] == 1
    assert {"meta", "ladders", "scenarios", "windows", "prediction", "summary"} <= set(doc)
    assert (
        main(
            [
                "report",
                "--prometheus-url",
                url,
                "--results",
                law,
                "--format",
                "html",
                "--output",
                str(tmp_path / "r.html"),
            ]
        )
        == 0
    )
    page = (tmp_path / "r.html").read_text()
    figures = re.findall(r"<svg .*?</svg>", page, re.S)
    # ranking, power over time, per scenario, prediction (no quality: no frontier plot)
    assert [ET.fromstring(f).get("aria-label") for f in figures] == [
        "efficiency ranking",
        "total power over time",
        "per scenario",
        "predicted power",
    ]
    assert page.index("<details><summary>Prediction") > page.index("aria-label='per scenario'")
    # Self-contained: nothing fetched from anywhere (the SVG namespace is a name, not a fetch).
    assert "http" not in page.replace(url, "").replace("xmlns='http://www.w3.org/2000/svg'", "")
    assert main(["report", "--prometheus-url", url, "--results", law, "--format", "csv"]) == 0
    csv = capsys.readouterr().out
    assert csv.splitlines()[0].startswith("scenario,ladder,") and len(csv.splitlines()) == 21
    assert (
        main(
            [
                "report",
                "--prometheus-url",
                url,
                "--results",
                law,
                "--format",
                "markdown",
                "--no-predict",
            ]
        )
        == 0
    )
    assert "| rank | scenario |" in capsys.readouterr().out
    assert (
        main(
            [
                "predict",
                "--model",
                str(tmp_path / "m"),
                "--streams",
                "1,2,4,8,12",
                "--resolution",
                "1280x720",
                "--fps",
                "30",
                "--bitrate",
                "2M",
                "--encoder",
                "libx264",
                "--preset",
                "medium",
                "--format",
                "json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    got = [p["predicted"] for p in out["predictions"]]
    assert got == sorted(got)  # more streams, more power
    from advisor.synthetic import scaling_law_power

    truth = scaling_law_power("libx264", 2, 2 * 1280 * 720 * 30, 2e6)
    assert got[1] == pytest.approx(truth, rel=0.1)


def test_cli_errors_name_the_fix(
    receiver: ReceiverProcess, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    assert main(["report", "--prometheus-url", receiver.base_url]) == 2
    assert "--results" in caplog.text
    assert (
        main(
            [
                "report",
                "--prometheus-url",
                "http://127.0.0.1:1",
                "--results",
                str(world.manifests["rank"]),
            ]
        )
        == 1
    )
    assert "cannot reach" in caplog.text
    assert main(["report", "--prometheus-url", receiver.base_url, "--since", "soon"]) == 2


@pytest.mark.parametrize(
    ("flag", "value", "expect"),
    [
        ("--max-edge-gap", "-1", "--max-edge-gap '-1': give seconds, 0 or more"),
        ("--max-edge-gap", "soon", "--max-edge-gap 'soon': give seconds, 0 or more"),
        ("--max-gap", "0", "--max-gap '0': give seconds, more than 0"),
    ],
)
def test_cli_rejects_bad_gap_settings_by_name(
    flag: str, value: str, expect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["report", "--prometheus-url", "http://127.0.0.1:1", "--since", "1h", flag, value])
    assert exc.value.code == 2
    assert expect in capsys.readouterr().err


def test_cli_max_edge_gap_reaches_the_analysis(
    receiver: ReceiverProcess, world: World, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    args = ["report", "--prometheus-url", receiver.base_url, "--allow-estimated"]
    args += ["--results", str(world.manifests["est"]), "--format", "json", "--no-predict"]
    for limit, status in (("0", "missing"), ("3", "ok")):
        assert main([*args, "--max-edge-gap", limit, "--output", str(out)]) == 0
        doc = json.loads(out.read_text())
        assert doc["meta"]["max_edge_gap_s"] == float(limit)
        statuses = {w["repeat"]: w["status"] for w in doc["windows"]}
        assert statuses == {0: "ok", 1: status}
