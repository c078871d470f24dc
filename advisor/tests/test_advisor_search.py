"""Target-quality searches in the advisor: each family's energy is the one measured at its
chosen setting, ranked, with its probes and the frontier; another target is interpolated
between searched settings only where two bracket it, and the report says so."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from advisor.attribution import resolve_basis
from advisor.cli import main
from advisor.notes import note
from advisor.present.notes import note_text
from advisor.present.search import families_table, lines, probes_table, sections
from advisor.quality import QualityAnalysis, QualityTarget
from advisor.search import analyze_search
from advisor.synthetic import Experiment
from advisor.windows import RunInfo
from ffmpeg_runner.contract import Probe, Rung, RunManifest, SearchRecord
from wattpush_testing import PrometheusProcess

TARGET = QualityTarget("vmaf", 80.0)


def record(
    preset: str,
    crf: float | None,
    score: float | None = None,
    *,
    status: str = "found",
    target: float = 80.0,
    encoder: str = "libx264",
) -> SearchRecord:
    probes = (Probe(25.5, 68.1, 291_000.0, 2.5, 26.9), Probe(12.5, 88.1, 2_191_000.0, 3.6, 14.0))
    chosen = None if crf is None else Probe(crf, score, 630_000.0, 0.0, 0.0)
    if chosen is not None:
        probes = (*probes, Probe(crf, score, 630_000.0, 1.8, 12.0))
    return SearchRecord(
        family=f"{encoder}:{preset}@640x360/crf",
        encoder=encoder,
        preset=preset,
        resolution="640x360",
        rate_control="crf",
        target_metric="vmaf",
        target_value=target,
        status=status,
        probes=probes,
        chosen=chosen,
        scenario=None if crf is None else f"search-{encoder}-{preset}-360p-crf{crf:g}",
        message="crf within ±0.5" if crf is not None else "best vmaf 60.57 at crf 0",
    )


def run_info(run_id: str, records: list[SearchRecord]) -> RunInfo:
    manifest = RunManifest(run_id=run_id, started_ms=1, search=records)
    return RunInfo(run_id, "completed", "host", 0.1, "m.json", manifest=manifest)


def windows(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    """(run_id, scenario, net J per output minute) transcode windows, all ok."""
    return pd.DataFrame(
        [
            {
                "run_id": run_id,
                "scenario": scenario,
                "phase": "transcode",
                "status": "ok",
                "net_energy_per_output_minute_j": net,
                # the whole machine's: 600 J per output minute of idle power on top
                "energy_per_output_minute_j": (0.0 if math.isnan(net) else net) + 600.0,
            }
            for run_id, scenario, net in rows
        ]
    )


def test_each_family_gets_the_energy_measured_at_its_setting_and_is_ranked() -> None:
    fast, medium = record("veryfast", 20.5, 79.99), record("medium", 21.0, 80.2)
    ultra = record("ultrafast", None, status="unreachable")
    table = windows(
        [("r", fast.scenario or "", e) for e in (400.0, 420.0, 410.0)]
        + [("r", medium.scenario or "", e) for e in (700.0, 720.0, 710.0)]
        + [("other", fast.scenario or "", 9999.0)]  # another run's windows are not this one's
    )
    quality = QualityAnalysis(measured=False)
    quality.excluded.append(
        {
            "scenario": fast.scenario or "",
            "why": note("no_score", metric="vmaf", error=None, unmeasured=True),
        }
    )
    search = analyze_search([run_info("r", [fast, medium, ultra])], table, None, quality)
    assert search is not None and search.searched and search.basis == "net"
    assert [f.name for f in search.families] == [
        "libx264/veryfast/640x360/crf",
        "libx264/medium/640x360/crf",
        "libx264/ultrafast/640x360/crf",
    ]
    best, second, unreachable = search.families
    assert (second.rank, second.energy) == (2, pytest.approx(710.0))
    assert (best.energy, best.repeats, best.rank) == (pytest.approx(410.0), 3, 1)
    assert best.energy_ci95 == pytest.approx(4.3027 * 10 / math.sqrt(3), rel=1e-3)
    assert unreachable.rank is None and not unreachable.measured
    said = lines(search)
    line = said[0]
    assert line.startswith(
        "Target-quality search at vmaf 80 (energy measured at each family's setting, net of "
        "idle power): libx264/veryfast/640x360/crf at crf 20.5 (vmaf 79.99) uses 410 ± 25"
    )
    assert "300 ± 35 J per output minute (42 %) less than libx264/medium/640x360/crf" in line
    assert "the margin exceeds its 95 % uncertainty" in line
    assert said[1].startswith("Cannot reach the target at any setting searched: "
                                      "libx264/ultrafast/640x360/crf (best vmaf 60.57")  # fmt: skip
    # medium scores higher, so veryfast does not dominate it: both on the frontier
    assert search.frontier == ["libx264/medium/640x360/crf", "libx264/veryfast/640x360/crf"]
    assert "quality is the chosen probe's (vmaf 79.99)" in note_text(quality.excluded[0]["why"])
    shown = families_table(search).set_index("family")
    assert shown.loc["libx264/veryfast/640x360/crf", "setting"] == "crf 20.5"
    assert shown.loc["libx264/veryfast/640x360/crf", "probes"] == 3
    probes = probes_table(search)
    assert list(probes["chosen"]).count("yes") == 2 and len(probes) == 8
    assert [title for title, _, _ in sections(search)] == [
        "Target-quality search at vmaf 80: families",
        "Target-quality search at vmaf 80: frontier",
        "Target-quality search: probes",
    ]


def test_a_family_dominated_on_both_counts_is_off_the_frontier() -> None:
    fast, slow = record("veryfast", 20.5, 80.3), record("medium", 21.0, 79.8)
    table = windows([("r", fast.scenario or "", 400.0), ("r", slow.scenario or "", 700.0)])
    search = analyze_search([run_info("r", [fast, slow])], table, None)
    assert search is not None
    assert search.frontier == ["libx264/veryfast/640x360/crf"]
    assert search.families[1].dominated_by == "libx264/veryfast/640x360/crf"
    assert "uncertainty unknown: one repeat" in lines(search)[0]


def test_a_missing_baseline_makes_every_family_gross() -> None:
    fast = record("veryfast", 20.5, 80.0)
    table = windows([("r", fast.scenario or "", math.nan)])
    # The report's basis, one for every figure: without a baseline (or accounting), gross.
    basis, _ = resolve_basis(table, None)
    search = analyze_search([run_info("r", [fast])], table, None, basis=basis)
    assert search is not None and search.basis == "gross"
    assert search.families[0].energy == pytest.approx(600.0)
    assert "whole machine, baseline not subtracted" in lines(search)[0]


def test_another_target_is_interpolated_only_between_searched_settings() -> None:
    at80 = record("veryfast", 20.5, 80.0)
    at90 = record("veryfast", 14.0, 90.0, target=90.0)
    alone = record("medium", 21.0, 80.0, target=80.0)
    table = windows(
        [
            ("a", at80.scenario or "", 400.0),
            ("b", at90.scenario or "", 600.0),
            ("a", alone.scenario or "", 700.0),
        ]
    )
    runs = [run_info("a", [at80, alone]), run_info("b", [at90])]
    search = analyze_search(runs, table, QualityTarget("vmaf", 85.0))
    assert search is not None and not search.searched
    by_family = {r.family: r for r in search.interpolated}
    veryfast = by_family["libx264/veryfast/640x360/crf"].at
    assert veryfast is not None and veryfast.energy == pytest.approx(500.0)
    assert by_family["libx264/medium/640x360/crf"].at is None  # not reached
    assert lines(search)[0].startswith(
        "No search ran at vmaf 85 (searched: vmaf 80, vmaf 90): energies are interpolated"
    )
    assert (
        "libx264/veryfast/640x360/crf uses 500 J per output minute there (interpolated)"
        in (lines(search)[0])
    )
    one = analyze_search([run_info("a", [at80, alone])], table, QualityTarget("vmaf", 85.0))
    assert one is not None and one.winner is None
    assert "no family has two: run ffmpeg-runner search --target vmaf=85" in lines(one)[0]


def test_runs_without_a_search_have_no_search_section() -> None:
    assert analyze_search([run_info("r", [])], windows([]), TARGET) is None


# -- end to end: a search run's manifest and its power series in a real Prometheus ------------

IDLE_W = 20.0


@pytest.mark.integration
def test_report_on_a_search_run_recommends_the_family_measured_cheapest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = Experiment(start_ms=int(time.time() * 1000) - 600_000, idle_cpu_w=IDLE_W, gpu=False)
    exp.idle(5)
    records = []
    loads = {
        "veryfast": (20.5, 79.9, 45.0),
        "medium": (21.0, 80.1, 60.0),
        "fast": (24.0, 80.3, 80.0),
    }
    exp.add(4, run_id="s", scenario="baseline", phase="baseline", repeat=0, cpu_w=IDLE_W)
    for preset, (crf, score, watts) in loads.items():
        encoder = "libx265" if preset == "fast" else "libx264"
        rec = record(preset, crf, score, encoder=encoder)
        records.append(rec)
        rung = Rung("360p", 640, 360, 0, "crf", crf)
        for repeat in range(2):
            exp.idle(1)
            exp.add(4, run_id="s", scenario=rec.scenario, phase="transcode", repeat=repeat,
                    encoder=encoder, preset=preset, rungs=[rung], cpu_w=watts)  # fmt: skip
    exp.idle(5)
    with PrometheusProcess(tmp_path / "prom") as prom:
        exp.push(prom.write_url)
        manifest = exp.run_manifest("s")
        manifest.search = records
        path = tmp_path / "s.json"
        path.write_text(json.dumps(manifest.to_json()))
        code = main(["report", "--prometheus-url", prom.base_url, "--results", str(path),
                     "--format", "json", "--no-predict"], env={})  # fmt: skip
        assert code == 0
        doc: dict[str, Any] = json.loads(capsys.readouterr().out)
        code = main(["report", "--prometheus-url", prom.base_url, "--results", str(path),
                     "--no-predict"], env={})  # fmt: skip
        table = capsys.readouterr().out
        html = tmp_path / "r.html"
        code = main(["report", "--prometheus-url", prom.base_url, "--results", str(path),
                     "--no-predict", "--format", "html", "--output", str(html)],
                    env={})  # fmt: skip
        assert code == 0 and "Target-quality search: probes" in html.read_text()
    search = doc["search"]
    assert search["winner"] == "libx264/veryfast/640x360/crf"
    energies = {f["family"]: f["energy_j_per_output_minute"] for f in search["families"]}
    # one stream, frames for the whole window: J per output minute = 60 x net power
    assert energies == {
        "libx264/veryfast/640x360/crf": pytest.approx(60 * (45.0 - IDLE_W), rel=1e-3),
        "libx264/medium/640x360/crf": pytest.approx(60 * (60.0 - IDLE_W), rel=1e-3),
        "libx265/fast/640x360/crf": pytest.approx(60 * (80.0 - IDLE_W), rel=1e-3),
    }
    assert doc["summary"].startswith("Target-quality search at vmaf 80")
    # The windows measured no quality, but the search did: no "quality was not measured".
    assert "Quality was not measured" not in doc["summary"]
    assert "By energy efficiency alone (picture quality not considered)" in doc["summary"]
    assert "quality: the target-quality search's probes (vmaf 80)" in table
    assert search["frontier"] == [
        "libx264/medium/640x360/crf",
        "libx264/veryfast/640x360/crf",
        "libx265/fast/640x360/crf",
    ]
    assert "== Target-quality search at vmaf 80: families ==" in table
    assert "== Target-quality search: probes ==" in table
