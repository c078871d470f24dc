"""--compare-hosts end to end: three instances with their own host facts in one real Prometheus."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from advisor.present.report import host_summary
from advisor.synthetic import Experiment, ladder
from wattpush_testing import PrometheusProcess

from advisor import TranscodingRecommender

pytestmark = [pytest.mark.integration, pytest.mark.slow]

L720 = ladder((1280, 720, "2M"))
# host -> (CPU watts while encoding, facts); the same scenario on each host.
HOSTS = {
    "node-a": (90.0, {"cpu_model": "Intel Xeon Gold 6338", "cores": "64", "virtualized": "false"}),
    "node-b": (60.0, {"cpu_model": "AMD EPYC 9654", "cores": "96", "virtualized": "false"}),
    "node-c": (
        120.0,
        {
            "cpu_model": "Intel Xeon E5-2690",
            "cores": "8",
            "virtualized": "true",
            "hypervisor": "kvm",
        },
    ),
}
IDLE_W = 20.0


def build(tmp: Path) -> tuple[dict[str, Experiment], list[Path]]:
    now_ms = int(time.time() * 1000)
    exps: dict[str, Experiment] = {}
    paths: list[Path] = []
    for i, (host, (watts, facts)) in enumerate(HOSTS.items()):
        exp = Experiment(
            start_ms=now_ms - 20 * 60_000 + i * 1000,
            instance=host,
            idle_cpu_w=IDLE_W,
            host_info={"instance": host, "job": "cpu-rapl-client", **facts},
            with_estimated_shadow=False,
        )
        exp.idle(2)
        for rep in range(3):
            exp.add(
                4,
                run_id=f"fleet-{host}",
                scenario="x264-720p",
                phase="baseline",
                repeat=rep,
                cpu_w=IDLE_W,
                rungs=L720,
            )
            exp.idle(1)
            exp.add(
                8,
                run_id=f"fleet-{host}",
                scenario="x264-720p",
                phase="transcode",
                repeat=rep,
                cpu_w=watts + rep,
                rungs=L720,
                encoder="libx264",
                preset="fast",
            )
            exp.idle(1)
        if host == "node-a":  # a scenario only one host ran: listed per host, not compared
            exp.add(
                8,
                run_id=f"fleet-{host}",
                scenario="x265-720p",
                phase="transcode",
                repeat=0,
                cpu_w=95.0,
                rungs=L720,
                encoder="libx265",
            )
        exp.idle(2)
        exps[host] = exp
        paths += exp.write_manifests(tmp / "results")
    return exps, paths


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[PrometheusProcess, list[Path]]]:
    tmp = tmp_path_factory.mktemp("fleet")
    exps, paths = build(tmp)
    prom = PrometheusProcess(tmp / "prom")
    prom.start()
    try:
        for exp in exps.values():
            # host_info labels carry instance/job themselves; the encoder adds its own too.
            exp.push(prom.write_url)
        prom.flush()
        yield prom, paths
    finally:
        prom.stop()


def test_one_scenario_ranked_across_three_hosts(
    fleet: tuple[PrometheusProcess, list[Path]],
) -> None:
    prom, paths = fleet
    rec = TranscodingRecommender(prom.base_url, rank_by="energy_j")
    windows = rec.load_windows(paths)
    comparison = rec.compare_hosts(windows)
    assert comparison.queries == 1  # one fetch for every host
    table = comparison.table
    assert list(table["host"]) == ["node-b", "node-a", "node-c"]
    assert list(table["rank"]) == [1, 2, 3]
    assert set(table["scenario"]) == {"x264-720p"}
    for _, row in table.iterrows():
        watts = HOSTS[row["host"]][0]
        expected = sum((watts + rep) * 8 for rep in range(3)) / 3
        assert row["energy_j_mean"] == pytest.approx(expected, rel=1e-6)
        assert row["cpu_model"] == HOSTS[row["host"]][1]["cpu_model"]
    (verdict,) = comparison.verdicts
    assert (verdict["best_host"], verdict["runner_up"]) == ("node-b", "node-a")
    assert verdict["test"].significant is True
    summary = host_summary(comparison, "energy_j")
    assert summary.startswith("x264-720p: least energy on node-b (AMD EPYC 9654, 96 cores")
    # Each host's own report used only its own series: node-a's x265 window is there.
    assert set(comparison.reports["node-a"].windows["scenario"]) == {"x264-720p", "x265-720p"}


def test_report_cli_compare_hosts_json(
    fleet: tuple[PrometheusProcess, list[Path]], tmp_path: Path
) -> None:
    from advisor.cli import main

    prom, paths = fleet
    out = tmp_path / "hosts.json"
    args = [
        "report",
        "--prometheus-url",
        prom.base_url,
        "--compare-hosts",
        "--rank-by",
        "energy_j",
        "--format",
        "json",
        "--output",
        str(out),
    ]
    for p in paths:
        args += ["--results", str(p)]
    assert main(args) == 0
    doc = json.loads(out.read_text())
    hosts = doc["hosts"]
    assert [r["host"] for r in hosts["comparison"]] == ["node-b", "node-a", "node-c"]
    assert hosts["facts"]["node-c"]["hypervisor"] == "kvm"
    assert hosts["verdicts"][0]["best_host"] == "node-b"


def test_report_cli_compare_hosts_table_names_hosts_and_facts(
    fleet: tuple[PrometheusProcess, list[Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    from advisor.cli import main

    prom, paths = fleet
    args = [
        "report",
        "--prometheus-url",
        prom.base_url,
        "--compare-hosts",
        "--results",
        *map(str, paths),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    # Every host has baselines and no CPU accounting: pixels per joule of net energy.
    assert out.startswith(
        "Hosts compared (net_pixels_per_joule: output pixels per joule of net energy)"
    )
    assert "Energy basis: net (net of idle power)." in out
    assert "least energy on node-b (AMD EPYC 9654, 96 cores, bare metal)" in out
    assert "node-c (Intel Xeon E5-2690, 8 cores, VM: kvm)" in out


def test_compare_hosts_refuses_instance_and_save_model(caplog: pytest.LogCaptureFixture) -> None:
    from advisor.cli import main

    args = ["report", "--prometheus-url", "http://127.0.0.1:9", "--results", "x.json"]
    assert main([*args, "--compare-hosts", "--instance", "node-a"]) == 2
    assert "--compare-hosts analyses every host on its own" in caplog.text
