"""What a title costs: the closed form, known answers on the synthetic quality families for
both delivery models, the cost file's errors, every report format, the Parquet round trip, and
(integration) the CLI on a real receiver."""

from __future__ import annotations

import importlib.util
import io
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from advisor.carbon_data import GridData, load_grid_data
from advisor.cli import main
from advisor.cost import (
    FamilyAtTarget,
    TitleCostRequest,
    break_even_views,
    delivery_gb,
    encode_kwh,
    family_costs,
    least_total_ranges,
    title_cost,
)
from advisor.cost_config import (
    CARBON_TRUST_FIXED_KWH_PER_GB,
    CostConfig,
    load_cost_config,
    parse_cost_config,
)
from advisor.errors import AdvisorConfigError
from advisor.export import PARQUET_TABLES, write_parquet
from advisor.present.report import summary
from advisor.prom import PrometheusAPI, Series
from advisor.recommender import AdvisorReport, TranscodingRecommender
from advisor.render import render, render_csv
from advisor.synthetic import Experiment
from wattpush_testing import ReceiverProcess

from .conftest import CPU_IDLE_W, GPU_IDLE_W, QUALITY_AT_93, World, add_quality_run

# The synthetic runner records each output's achieved bitrate at 0.97 x its target.
ACHIEVED_RATIO = 0.97
# Its windows last 4 s at 30 fps, one output: 2 frames/s = 1/15 output minute per 4 s, so
# 60 s of encoding per output minute.
WALL_S_PER_OUTPUT_MINUTE = 60.0
VERYFAST, MEDIUM, X265 = list(QUALITY_AT_93)
PRICED = {
    "currency": "EUR",
    "electricity_price_per_kwh": 0.25,
    "compute_price_per_vcpu_hour": 0.04,
    "encode_vcpus": 8,
    "egress_price_per_gb": 0.02,
    "carbon_intensity_g_per_kwh": 300,
    "delivery_kwh_per_gb": {"fixed": 0.0065, "mobile": 0.1, "mobile_share": 0.2},
    "delivery_marginal_kwh_per_gb": 0.0005,
}
KWH_PER_GB = {"allocation": 0.8 * 0.0065 + 0.2 * 0.1, "marginal": 0.0005}


def no_grid() -> GridData | None:
    return None


def fake_grid() -> GridData:
    mix = {
        "FRA": {"country_name": "France", "carbon_intensity": 56.0, "year": 2023},
        "FRO": {"country_name": "Faroe Islands", "carbon_intensity": 300.0, "year": 2022},
        "DEU": {"country_name": "Germany", "carbon_intensity": 381.0, "year": 2023},
        "USA": {"country_name": "United States", "carbon_intensity": 369.5, "year": 2023},
        "XYZ": {"country_name": "Nowhere", "carbon_intensity": None, "year": 2023},
    }
    return GridData.from_documents(
        mix, {"world_average": 475, "world_average_source": "a report"}, "fake data", "fake"
    )


def config(doc: dict[str, Any], grid: Callable[[], GridData | None] = no_grid) -> CostConfig:
    return parse_cost_config(doc, "cost.json", grid)


# -- closed form ------------------------------------------------------------------------------


def test_energy_and_bits_of_one_title() -> None:
    assert encode_kwh(3600.0, 1000.0) == pytest.approx(1.0)  # 3.6 MJ = 1 kWh
    # 8 Mb/s for 1000/60 minutes: 1e6 bytes/s x 1000 s = 1 GB (10^9 bytes)
    assert delivery_gb(8e6, 1000.0 / 60.0) == pytest.approx(1.0)


def test_break_even_is_where_the_lines_cross_and_none_when_they_never_do() -> None:
    # Reference: 1 kWh + 0.01 kWh per view; candidate: 3 kWh + 0.006 per view -> 500 views.
    n = break_even_views(3.0, 0.006, 1.0, 0.01)
    assert n == pytest.approx(500.0)
    assert 3.0 + n * 0.006 == pytest.approx(1.0 + n * 0.01)
    assert break_even_views(3.0, 0.01, 1.0, 0.01) is None  # as many bits: never
    assert break_even_views(3.0, 0.02, 1.0, 0.01) is None  # more bits: never
    assert break_even_views(1.0, 0.005, 1.0, 0.01) == 0.0  # same encode, fewer bits


def test_least_total_ranges_walk_the_lower_envelope() -> None:
    lines = [
        ("cheap-encode", 1.0, 0.010),
        ("mid", 2.0, 0.006),  # crosses cheap-encode at 250
        ("slow", 5.0, 0.002),  # crosses mid at 750
        ("dominated", 3.0, 0.008),  # more encode and more bits than mid
        ("above-hull", 4.0, 0.0045),  # beats mid late, but slow is already lower by then
    ]
    ranges = least_total_ranges(lines)
    assert ranges["cheap-encode"] == pytest.approx((0.0, 250.0))
    assert ranges["mid"] == pytest.approx((250.0, 750.0))
    assert ranges["slow"][0] == pytest.approx(750.0) and math.isinf(ranges["slow"][1])
    assert "dominated" not in ranges and "above-hull" not in ranges
    # Brute force on a grid agrees.
    for n in (0, 100, 249, 251, 500, 749, 751, 1e4, 1e7):
        best = min(lines, key=lambda x: x[1] + n * x[2])[0]
        lo, hi = ranges[best]
        assert lo <= n <= hi


def test_frontier_and_never_worth_it_on_hand_made_families() -> None:
    fams = [
        FamilyAtTarget("cheap-encode", 60.0 * 1000, 4e6, "achieved", 30.0),
        FamilyAtTarget("slow", 60.0 * 4000, 2e6, "achieved", 120.0),
        FamilyAtTarget("dominated", 60.0 * 5000, 3e6, "achieved", 150.0),
    ]
    req = TitleCostRequest(60.0, 1e6, config({"carbon_intensity_g_per_kwh": 100}))
    rows, ref = family_costs(fams, req)
    by = {r.family: r for r in rows}
    assert ref == "cheap-encode"
    assert by["dominated"].on_frontier is False and by["dominated"].dominated_by == "slow"
    assert by["dominated"].least_total_from_views is None
    assert by["slow"].on_frontier and by["cheap-encode"].on_frontier
    # Encode kWh: J/min x 60 min / 3.6e6; GB per view: bps x 3600 s / 8e9.
    assert by["slow"].encode_kwh == pytest.approx(4.0)
    assert by["slow"].delivery_gb_per_view == pytest.approx(0.9)
    be = (4.0 - 1.0) / ((1.8 - 0.9) * CARBON_TRUST_FIXED_KWH_PER_GB)
    assert by["slow"].break_even_views == pytest.approx(be)
    assert by["slow"].least_total_from_views == pytest.approx(be)
    assert by["cheap-encode"].least_total_to_views == pytest.approx(be)
    assert by["slow"].encode_compute_hours == pytest.approx(2.0)  # 120 s/min x 60 min
    assert math.isnan(by["slow"].total_cost)  # no prices: no money


# -- known answers on the synthetic quality families --------------------------------------------


def as_series(exp: Experiment) -> list[Series]:
    return [
        Series({"__name__": name, **labels}, t / 1000.0, v) for name, labels, t, v in exp.series()
    ]


@pytest.fixture(scope="module")
def quality_report() -> AdvisorReport:
    """The four quality families of conftest (closed-form energy and bitrate at vmaf 93),
    analysed from their generated series without a receiver."""
    exp = Experiment(
        start_ms=1_700_000_000_000, gpu=True, idle_gpu_w=GPU_IDLE_W, idle_cpu_w=CPU_IDLE_W
    )
    exp.idle(2)
    add_quality_run(exp)
    req = TitleCostRequest(90.0, 1e6, config({}))
    rec = TranscodingRecommender(
        api=PrometheusAPI("http://127.0.0.1:1"),
        target_quality="vmaf=93",
        predict=False,
        title_cost=req,
    )
    return rec.analyze([w.record for w in exp.windows], series=as_series(exp))


def expected(name: str, model: str, minutes: float, views: float) -> dict[str, float]:
    """By hand from conftest's closed-form points, independent of the cost module."""
    j_per_min, bps = QUALITY_AT_93[name]
    e = j_per_min * minutes / 3.6e6
    gb = bps * ACHIEVED_RATIO * minutes * 60 / 8 / 1e9
    d = gb * KWH_PER_GB[model]
    total = e + views * d
    hours = WALL_S_PER_OUTPUT_MINUTE * minutes / 3600
    money = e * 0.25 + hours * 8 * 0.04 + views * gb * 0.02
    return {
        "encode_kwh": e,
        "delivery_gb_per_view": gb,
        "delivery_kwh_per_view": d,
        "total_kwh": total,
        "total_kg_co2e": total * 300 / 1000,
        "total_cost": money,
        "encode_compute_hours": hours,
    }


@pytest.mark.parametrize("model", ["allocation", "marginal"])
def test_known_answers_for_both_delivery_models(quality_report: AdvisorReport, model: str) -> None:
    minutes, views = 90.0, 250_000.0
    req = TitleCostRequest(minutes, views, config({**PRICED, "delivery_model": model}))
    cost = title_cost(quality_report.quality, quality_report.windows, req)
    assert cost.reference == VERYFAST  # least encode energy at vmaf 93 (1010 J/min)
    assert {f.family for f in cost.families} == set(QUALITY_AT_93)
    assert [e["family"] for e in cost.excluded] == ["libx264/ultrafast/640x360"]
    for f in cost.families:
        want = expected(f.family, model, minutes, views)
        for key, value in want.items():
            assert getattr(f, key) == pytest.approx(value, rel=0.01), (f.family, key)
    ref = expected(VERYFAST, model, minutes, views)
    for name in (MEDIUM, X265):
        mine = expected(name, model, minutes, views)
        be = (mine["encode_kwh"] - ref["encode_kwh"]) / (
            ref["delivery_kwh_per_view"] - mine["delivery_kwh_per_view"]
        )
        assert cost.family(name).break_even_views == pytest.approx(be, rel=0.01)
    assert cost.family(VERYFAST).break_even_views is None
    # Literal values, worked out once on paper (allocation 0.0252 kWh/GB, marginal 0.0005).
    x265 = cost.family(X265)
    if model == "allocation":
        assert x265.total_kwh == pytest.approx(3937.47, rel=0.01)
        assert x265.break_even_views == pytest.approx(1.268, rel=0.01)
    else:
        assert x265.total_kwh == pytest.approx(78.167, rel=0.01)
        assert x265.break_even_views == pytest.approx(63.91, rel=0.01)
    assert x265.total_cost == pytest.approx(3125.43, rel=0.01)  # money ignores the model
    assert cost.cheapest is not None and cost.cheapest.family == X265


def test_report_names_the_energy_basis_and_says_what_it_assumes(
    quality_report: AdvisorReport,
) -> None:
    cost = quality_report.cost
    assert cost is not None and cost.energy_basis == quality_report.quality.basis == "net"
    names = {a.name: a for a in cost.assumptions}
    assert names["encode_energy_basis"].value == "net"
    assert "Carbon Trust (2021)" in names["delivery_kwh_per_gb.fixed"].source
    assert names["delivery_kwh_per_gb.mobile"].value == 0.1
    assert "Aslan et al. (2018)" in names["delivery_kwh_per_gb_2015_trend"].source
    assert "marginal" in names["delivery_model"].source
    assert all(a.default for a in cost.assumptions)  # nothing came from a cost file
    assert cost.money_missing == ["electricity_price_per_kwh", "egress_price_per_gb"]
    line = summary(quality_report).splitlines()[-1]
    assert line.startswith("Title cost at vmaf 93, a 90-minute title watched 1,000,000 times")
    assert "money not computed (set electricity_price_per_kwh and egress_price_per_gb" in line


# -- the cost file --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "expect"),
    [
        ({"egress_price_per_gb": -0.01, "currency": "EUR"}, "egress_price_per_gb -0.01: give a "),
        ({"electricity_price_per_kwh": "cheap", "currency": "EUR"}, "electricity_price_per_kwh"),
        ({"egress_price_per_gb": 0.02}, "currency missing"),
        ({"compute_price_per_vcpu_hour": 0.04, "currency": "EUR"}, "encode_vcpus missing"),
        ({"delivery_model": "average"}, "delivery_model 'average': choose allocation or marg"),
        ({"delivery_model": "marginal"}, "needs delivery_marginal_kwh_per_gb"),
        ({"delivery_kwh_per_gb": {"fixed": 0.0065, "mobile": 0.1}}, "missing mobile_share"),
        (
            {"delivery_kwh_per_gb": {"fixed": 0.0065, "mobile": 0.1, "mobile_share": 2}},
            "delivery_kwh_per_gb.mobile_share 2: give a number 0 or more and at most 1",
        ),
        ({"egres_price_per_gb": 0.02}, "unknown key 'egres_price_per_gb'; the keys are"),
        ({"region": "FRA", "carbon_intensity_g_per_kwh": 50}, "both set; keep one"),
        ({"region": "FRA"}, "codecarbon's data set, which is not installed"),
    ],
)
def test_cost_file_errors_name_the_key_and_the_fix(doc: dict[str, Any], expect: str) -> None:
    with pytest.raises(AdvisorConfigError) as exc:
        config(doc)
    assert expect in str(exc.value) and "cost.json" in str(exc.value)
    assert exc.value.exit_code == 2


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(AdvisorConfigError) as exc:
        config({"egress_price_per_gb": -1, "delivery_model": "x", "nope": 1})
    assert len(exc.value.problems) == 4  # negative, model, unknown key, currency


def test_region_from_the_country_data_set_with_source_and_year() -> None:
    c = config({"region": "fra"}, fake_grid)
    assert c.carbon is not None
    assert (c.carbon.g_per_kwh, c.carbon.place, c.carbon.year) == (56.0, "France", 2023)
    named = config({"region": "Germany"}, fake_grid)
    assert named.carbon is not None and named.carbon.region == "DEU"
    carbon = {a.name: a for a in c.assumptions}["carbon_intensity_g_per_kwh"]
    assert "fake data: France, year 2023" in carbon.source and carbon.default is False
    # Nothing set: the data set's world average, marked as a default.
    world = config({}, fake_grid)
    assert world.carbon is not None and world.carbon.g_per_kwh == 475.0
    assert "world_average (its source: a report)" in world.carbon.source
    # No data set and nothing set: no CO2e, and why.
    bare = config({})
    assert bare.carbon is None and "set region" in str(bare.carbon_missing)


@pytest.mark.parametrize(
    ("region", "expect"),
    [
        ("FR", "region 'FR': no such country in fake data; write an ISO 3166-1 alpha-3 code "
         "such as FRA (France), FRO (Faroe Islands)"),
        ("QQQ", "such as FRA (France), DEU (Germany), USA (United States)"),
        ("XYZ", "has no carbon intensity for Nowhere"),
    ],
)  # fmt: skip
def test_unknown_country_code_names_the_key_and_codes_that_exist(region: str, expect: str) -> None:
    with pytest.raises(AdvisorConfigError) as exc:
        config({"region": region}, fake_grid)
    assert expect in str(exc.value)


@pytest.mark.skipif(
    importlib.util.find_spec("codecarbon") is None,
    reason="codecarbon (the carbon extra, make venv installs it) is not installed",
)
def test_codecarbon_data_is_read_without_importing_codecarbon() -> None:
    before = "codecarbon" in sys.modules
    grid = load_grid_data()
    assert grid is not None
    assert not before and "codecarbon" not in sys.modules
    fra = grid.lookup("FRA")
    assert fra.place == "France" and 0 < fra.g_per_kwh < 1000 and (fra.year or 0) >= 2015
    assert "global_energy_mix.json" in grid.source
    world = grid.world()
    assert world is not None and world.g_per_kwh > 0
    with pytest.raises(AdvisorConfigError, match="such as FRA"):
        grid.lookup("FR")


def test_cost_file_read_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "cost.json"
    path.write_text(json.dumps({**PRICED, "_comment": "comments start with _"}))
    c = load_cost_config(path, no_grid)
    assert c.currency == "EUR" and c.encode_vcpus == 8.0 and c.money_missing == []
    assert c.delivery.kwh_per_gb == pytest.approx(KWH_PER_GB["allocation"])
    assert {a.name: a for a in c.assumptions}["egress_price_per_gb"].source == (f"cost file {path}")
    example = Path(__file__).parents[1] / "cost-config.example.json"
    assert load_cost_config(example, fake_grid).currency  # the shipped example is valid


# -- the command line: bad input exits 2 before any query -----------------------------------


def run_cli(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "report",
        "--prometheus-url",
        "http://127.0.0.1:1",
        "--results",
        str(tmp_path / "none.json"),
        *extra,
    ]


@pytest.mark.parametrize(
    "case",
    [
        (None, ["--target-quality", "vmaf=93", "--title-minutes", "90", "--views", "10"],
         "no such file"),
        ("{not json", ["--target-quality", "vmaf=93", "--title-minutes", "90", "--views", "10"],
         "not valid JSON"),
        ('{"egress_price_per_gb": -1, "currency": "EUR"}',
         ["--target-quality", "vmaf=93", "--title-minutes", "90", "--views", "10"],
         "egress_price_per_gb -1: give a number 0 or more"),
        ('{"region": "ZZZ"}',
         ["--target-quality", "vmaf=93", "--title-minutes", "90", "--views", "10"],
         "region 'ZZZ': no such country"),
        ("{}", ["--title-minutes", "90", "--views", "10"],
         "--views needs --target-quality: the title cost prices each family at a quality "
         "target; add e.g. --target-quality vmaf=93"),
        ("{}", ["--target-quality", "vmaf=93", "--views", "10"],
         "need both --title-minutes M and --views N"),
    ],
)  # fmt: skip
def test_cli_bad_cost_input_exits_2_naming_the_field(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    case: tuple[str | None, list[str], str],
) -> None:
    content, flags, expect = case
    monkeypatch.setattr("advisor.cost_config.load_grid_data", fake_grid)
    path = tmp_path / "cost.json"
    if content is not None:
        path.write_text(content)
    assert main(run_cli(tmp_path, *flags, "--cost-config", str(path))) == 2
    assert expect in caplog.text
    assert "cannot reach" not in caplog.text and "no such manifest" not in caplog.text


def test_cli_negative_views_and_parquet_without_directory_exit_2(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(run_cli(tmp_path, "--target-quality", "vmaf=93", "--views", "-5"))
    assert exc.value.code == 2
    assert "--views '-5': give a number 0 or more" in capsys.readouterr().err
    assert main(run_cli(tmp_path, "--format", "parquet")) == 2
    assert "--format parquet writes one file per table: pass --output DIR" in caplog.text


# -- the formats ------------------------------------------------------------------------------


def test_json_names_and_every_format_shows_the_cost(quality_report: AdvisorReport) -> None:
    doc = json.loads(render(quality_report, "json"))
    cost = doc["cost"]
    assert cost["title_minutes"] == 90.0 and cost["views"] == 1e6
    assert {"name", "value", "unit", "source", "default"} <= set(cost["assumptions"][0])
    fam = cost["families"][0]
    for key in (
        "family",
        "encode_kwh",
        "delivery_gb_per_view",
        "delivery_kwh_per_view",
        "total_kwh",
        "total_kg_co2e",
        "total_cost",
        "break_even_views",
    ):
        assert key in fam
    assert fam["total_cost"] is None  # no prices by default
    ref = next(f for f in cost["families"] if f["family"] == VERYFAST)
    assert ref["break_even_views"] is None and cost["reference_family"] == VERYFAST
    csv = pd.read_csv(io.StringIO(render_csv(quality_report, "cost")))
    assert list(csv.columns) == list(fam)
    assert sorted(csv["family"]) == sorted(QUALITY_AT_93)
    table = render(quality_report, "table")
    assert "== What the title costs: 90 minutes, 1,000,000 views ==" in table
    assert "== Title cost per family (energy basis: net) ==" in table
    assert "== Title cost assumptions ==" in table
    md = render(quality_report, "markdown")
    assert "## Title cost per family (energy basis: net)" in md and "| break-even views |" in md
    page = render(quality_report, "html")
    views = re.search(r"<svg [^>]*aria-label='total energy vs views'.*?</svg>", page, re.S)
    assert views is not None
    # One line per family, the crossover of x265 with veryfast (after ~5 views) marked.
    assert len(re.findall(r"<polyline", views.group(0))) == 3
    assert "libx265/fast/640x360 overtakes libx264/veryfast/640x360 after 4.92 views" in (
        views.group(0)
    )
    assert "aria-label='encode energy vs delivered bits'" in page
    order = [
        page.index("<h2>Recommendation</h2>"),
        page.index("aria-label='total energy vs views'"),
        page.index("<h2>What the title costs"),
    ]
    assert order == sorted(order)


def test_parquet_round_trip_matches_the_csv_tables(
    quality_report: AdvisorReport, tmp_path: Path
) -> None:
    pytest.importorskip("pyarrow")
    written, skipped = write_parquet(quality_report, tmp_path / "out")
    assert sorted(p.stem for p in written) == sorted(PARQUET_TABLES) and skipped == {}
    for path in written:
        back = pd.read_parquet(path)
        csv = pd.read_csv(io.StringIO(render_csv(quality_report, path.stem)))
        assert list(back.columns) == list(csv.columns)
        assert back.dtypes.to_dict() == csv.dtypes.to_dict(), path.stem
        pd.testing.assert_frame_equal(back, csv)
    windows = pd.read_parquet(tmp_path / "out" / "windows.parquet")
    assert len(windows) == len(quality_report.windows)
    cost = pd.read_parquet(tmp_path / "out" / "cost.parquet")
    assert cost["encode_kwh"].dtype == "float64" and cost["on_frontier"].dtype == bool


# -- integration: the CLI on a real receiver ------------------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
def test_cli_title_cost_on_a_real_receiver(
    receiver: ReceiverProcess, world: World, tmp_path: Path
) -> None:
    cost_file = tmp_path / "cost.json"
    cost_file.write_text(json.dumps({**PRICED, "delivery_model": "marginal"}))
    base = ["report", "--prometheus-url", receiver.base_url, "--no-predict"]
    base += ["--results", str(world.manifests["quality"]), "--target-quality", "vmaf=93"]
    base += ["--title-minutes", "90", "--views", "250000", "--cost-config", str(cost_file)]
    out = tmp_path / "r.json"
    assert main([*base, "--format", "json", "--output", str(out)]) == 0
    cost = json.loads(out.read_text())["cost"]
    assert cost["delivery_model"] == "marginal" and cost["currency"] == "EUR"
    for f in cost["families"]:
        for key, value in expected(f["family"], "marginal", 90.0, 250_000.0).items():
            assert f[key] == pytest.approx(value, rel=0.01), (f["family"], key)
    assert main([*base, "--format", "parquet", "--output", str(tmp_path / "pq")]) == 0
    back = pd.read_parquet(tmp_path / "pq" / "cost.parquet")
    assert sorted(back["family"]) == sorted(QUALITY_AT_93)
