"""One scenario across hosts: which node type encodes it with the least energy.

A batch launched on several nodes at once (one runner Job per node) gives windows whose
``instance`` differs. Each host's windows are measured against that host's own power series
(never added across machines), then every scenario that ran on two or more hosts is ranked
across them. What each host is comes from ``wattpush_host_info``, which every client pushes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from base_monitoring_client.hostinfo import HOST_INFO_METRIC

from .analysis import SCORE_DIRECTIONS, welch_test
from .energy import mean_ci95
from .prom import Series

__all__ = ["HOST_INFO_METRIC", "compare_hosts", "describe_host", "host_facts"]

FACT_LABELS = ("cpu_model", "cores", "gpu_model", "virtualized", "hypervisor")
# Figures shown per host beside the ranking score (mean ± 95 % CI over the repeats).
HOST_FIGURES = ("energy_j", "mean_power_w", "energy_per_output_minute_j", "pixels_per_joule")


def host_facts(series: Sequence[Series]) -> dict[str, dict[str, str]]:
    """instance -> its facts, merged over the clients that pushed ``wattpush_host_info``.

    Every client of a host pushes the same CPU facts; only the GPU client knows the GPU model,
    so non-empty values win over empty ones.
    """
    facts: dict[str, dict[str, str]] = {}
    for s in series:
        if s.name != HOST_INFO_METRIC:
            continue
        instance = s.labels.get("instance", "")
        merged = facts.setdefault(instance, {k: "" for k in FACT_LABELS})
        for key in FACT_LABELS:
            value = s.labels.get(key, "")
            if value and not merged[key]:
                merged[key] = value
    return facts


def describe_host(instance: str, facts: Mapping[str, str] | None) -> str:
    """``node-a (Intel Xeon Gold 6338, 64 cores, VM: kvm, GPU: NVIDIA H200)``."""
    if not facts:
        return f"{instance} (no wattpush_host_info)"
    parts = [facts.get("cpu_model") or "CPU unknown"]
    if facts.get("cores"):
        parts.append(f"{facts['cores']} cores")
    if facts.get("virtualized") == "true":
        parts.append(f"VM: {facts.get('hypervisor') or 'unknown'}")
    elif facts.get("virtualized") == "false":
        parts.append("bare metal")
    if facts.get("gpu_model"):
        parts.append(f"GPU: {facts['gpu_model']}")
    return f"{instance} ({', '.join(parts)})"


def compare_hosts(
    windows: pd.DataFrame,
    *,
    rank_by: str,
    alpha: float,
    facts: Mapping[str, Mapping[str, str]],
    energy_column: str | None = None,
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Rank each (scenario, ladder) that ran on two or more hosts across those hosts.

    ``windows`` is the per-window table with a ``host`` column, each window measured against
    its own host's series. Returns one row per (scenario, ladder, host) with the rank within
    the scenario, and one verdict per compared scenario (Welch's t-test of the best host
    against the runner-up, as for configurations). ``energy_column`` (the report's energy
    basis, e.g. ``attributed_energy_j``) is shown beside ``HOST_FIGURES``.
    """
    higher = SCORE_DIRECTIONS.get(rank_by, True)
    ok = windows[(windows["phase"] == "transcode") & (windows["status"] == "ok")]
    rows: list[dict[str, Any]] = []
    verdicts: list[dict[str, Any]] = []
    for (scenario, ladder), group in ok.groupby(["scenario", "ladder"], sort=True, dropna=False):
        hosts = sorted(group["host"].unique())
        if len(hosts) < 2:
            continue
        per_host: list[dict[str, Any]] = []
        scores: dict[str, np.ndarray[Any, Any]] = {}
        for host in hosts:
            mine = group[group["host"] == host]
            score = mine[rank_by].to_numpy(dtype=float)
            scores[host] = score
            mean, ci, n_ok = mean_ci95(score)
            row: dict[str, Any] = {
                "scenario": scenario,
                "ladder": ladder,
                "host": host,
                "host_description": describe_host(host, facts.get(host)),
                "n_ok": n_ok,
                f"{rank_by}_mean": mean,
                f"{rank_by}_ci95": ci,
            }
            for figure in dict.fromkeys((*HOST_FIGURES, energy_column or "energy_j")):
                if figure != rank_by:
                    m, c, _ = mean_ci95(mine[figure].to_numpy(dtype=float))
                    row[f"{figure}_mean"], row[f"{figure}_ci95"] = m, c
            for key in FACT_LABELS:
                row[key] = (facts.get(host) or {}).get(key, "")
            per_host.append(row)
        ranked = [r for r in per_host if np.isfinite(r[f"{rank_by}_mean"])]
        ranked.sort(key=lambda r: r[f"{rank_by}_mean"], reverse=higher)
        for rank, row in enumerate(ranked, start=1):
            row["rank"] = rank
        for row in per_host:
            row.setdefault("rank", None)
        rows.extend(sorted(per_host, key=lambda r: (r["rank"] is None, r["rank"] or 0)))
        if len(ranked) >= 2:
            best, runner = ranked[0]["host"], ranked[1]["host"]
            test = welch_test((best, runner), scores[best], scores[runner], rank_by, alpha)
            verdicts.append(
                {"scenario": scenario, "ladder": ladder, "best_host": best, "runner_up": runner,
                 "test": test}
            )  # fmt: skip
    return pd.DataFrame(rows), verdicts
