"""Cross-host comparison: each scenario ranked across the hosts that ran it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from advisor.hosts import compare_hosts, describe_host, host_facts
from advisor.present.report import welch_verdict
from advisor.prom import Series


def info(instance: str, job: str, **labels: str) -> Series:
    lab = {"__name__": "wattpush_host_info", "instance": instance, "job": job, **labels}
    return Series(lab, np.array([1.0]), np.array([1.0]))


def window_rows(host: str, scenario: str, energies: list[float]) -> list[dict[str, Any]]:
    return [
        {
            "host": host,
            "scenario": scenario,
            "ladder": "640x360@1M",
            "phase": "transcode",
            "status": "ok",
            "energy_j": e,
            "mean_power_w": e / 30,
            "energy_per_output_minute_j": e * 2,
            "pixels_per_joule": 1e9 / e,
        }
        for e in energies
    ]


def test_facts_merge_the_gpu_model_from_the_gpu_client() -> None:
    series = [
        info("node-a", "cpu-rapl-client", cpu_model="Xeon 6338", cores="64", virtualized="false"),
        info("node-a", "gpu-nvml-client", cpu_model="Xeon 6338", gpu_model="NVIDIA L4"),
        info(
            "node-b",
            "cpu-rapl-client",
            cpu_model="EPYC 9654",
            cores="96",
            virtualized="true",
            hypervisor="kvm",
        ),
    ]
    facts = host_facts(series)
    assert facts["node-a"]["gpu_model"] == "NVIDIA L4" and facts["node-a"]["cores"] == "64"
    assert describe_host("node-a", facts["node-a"]) == (
        "node-a (Xeon 6338, 64 cores, bare metal, GPU: NVIDIA L4)"
    )
    assert describe_host("node-b", facts["node-b"]) == "node-b (EPYC 9654, 96 cores, VM: kvm)"
    assert describe_host("node-c", None) == "node-c (no wattpush_host_info)"


def test_ranks_hosts_by_the_score_and_tests_the_winner() -> None:
    rows = (
        window_rows("node-a", "x264", [100.0, 101.0, 99.0])
        + window_rows("node-b", "x264", [80.0, 81.0, 79.0])
        + window_rows("node-c", "x264", [120.0, 119.0, 121.0])
        + window_rows("node-a", "only-on-a", [50.0, 51.0])
    )
    facts = {"node-b": {"cpu_model": "EPYC 9654", "cores": "96"}}
    table, verdicts = compare_hosts(pd.DataFrame(rows), rank_by="energy_j", alpha=0.05, facts=facts)
    assert list(table["host"]) == ["node-b", "node-a", "node-c"]
    assert list(table["rank"]) == [1, 2, 3]
    assert set(table["scenario"]) == {"x264"}  # one host only: nothing to compare
    assert table.loc[0, "energy_j_mean"] == 80.0
    assert table.loc[0, "cpu_model"] == "EPYC 9654"
    assert abs(table.loc[0, "pixels_per_joule_mean"] - np.mean([1e9 / e for e in (80, 81, 79)])) < 1
    (verdict,) = verdicts
    assert (verdict["best_host"], verdict["runner_up"]) == ("node-b", "node-a")
    test = verdict["test"]
    assert test.significant is True and test.p_value is not None and test.p_value < 0.05


def test_higher_is_better_scores_and_overlapping_hosts_are_not_significant() -> None:
    rows = window_rows("node-a", "x264", [100.0, 130.0, 70.0]) + window_rows(
        "node-b", "x264", [105.0, 60.0, 140.0]
    )
    table, verdicts = compare_hosts(
        pd.DataFrame(rows), rank_by="pixels_per_joule", alpha=0.05, facts={}
    )
    best = table[table["rank"] == 1]["host"].item()
    means = table.set_index("host")["pixels_per_joule_mean"]
    assert means[best] == means.max()
    assert verdicts[0]["test"].significant is False
    assert "NOT significant" in welch_verdict(verdicts[0]["test"])


def test_a_run_belongs_to_the_runners_instance_not_its_pod_hostname(tmp_path: Path) -> None:
    from advisor.windows import load_manifest

    window = {"scenario": "a", "phase": "transcode", "start_ms": 1000, "end_ms": 9000}
    doc = {
        "schema_version": 2,
        "run_id": "r1",
        "host": {"hostname": "ffmpeg-runner-x7k2p", "instance": "node-a"},
        "windows": [window],
    }
    path = tmp_path / "r1.json"
    path.write_text(json.dumps(doc))
    run, windows = load_manifest(path)
    assert run.hostname == "node-a" and windows[0].instance == "node-a"
    del doc["host"]["instance"]  # schema-1 era manifests: the hostname is all there is
    path.write_text(json.dumps(doc))
    assert load_manifest(path)[0].hostname == "ffmpeg-runner-x7k2p"
