"""Advisor benchmark: a report for 100 scenarios x 3 repeats over 2 hours of 10 Hz data.

Target (issue 8): < 10 s end to end and < 20 Prometheus queries per report.

Method: start a fresh Prometheus 2.42 (and VictoriaMetrics) on a free loopback port, backfill
2 h of synthetic 10 Hz series by remote write in chronological 60 s slices (Prometheus appends
out-of-order-free data of any age into an empty head as long as every request is newer than the
last; only samples older than head max time - 1 h are refused), write the manifest, then time
the `advisor report` CLI as a subprocess (interpreter start, imports, queries, analysis,
prediction, rendering) with `time.perf_counter` around `subprocess.run`. The query count comes
from the JSON report (`meta.queries`).

Run:  PYTHONPATH=base-monitoring-client:advisor .venv/bin/python bench/advisor_bench.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from advisor.synthetic import Experiment, ladder, noisy, scaling_law_power
from base_monitoring_client.testing import PrometheusProcess, VictoriaMetricsProcess

ROOT = Path(__file__).resolve().parent.parent
PRESET_FACTOR = {"ultrafast": 0.7, "veryfast": 0.85, "fast": 1.0, "medium": 1.2, "slow": 1.5}


def build(end_ms: int, span_s: float = 7200.0, seed: int = 0) -> Experiment:
    rng = np.random.default_rng(seed)
    exp = Experiment(start_ms=int(end_ms - span_s * 1000), gpu=False, idle_cpu_w=25.0)
    ladders = [ladder((1280, 720, "2M"), (640, 360, "800k")), ladder((1920, 1080, "4M"))]
    configs = [
        (enc, preset, s, lad)
        for enc in ("libx264", "libx265")
        for preset in PRESET_FACTOR
        for s in (1, 2, 4, 8, 12)
        for lad in ladders
    ]
    assert len(configs) == 100
    per_scenario = 8 + 3 * 20
    exp.idle(span_s - 100 * per_scenario - 5)
    for enc, preset, s, lad in configs:
        name = f"{enc}-{preset}-{s}x-{lad[0].height}p"
        px = s * sum(r.pixels for r in lad) * 30
        true_p = 25.0 + (scaling_law_power(enc, s, px, 2e6) - 25.0) * PRESET_FACTOR[preset]
        exp.add(
            6,
            run_id="bench",
            scenario=name,
            phase="baseline",
            repeat=0,
            cpu_w=25.0,
            rungs=lad,
            encoder=enc,
            preset=preset,
            streams=s,
        )
        exp.idle(2)
        for rep in range(3):
            exp.add(
                18,
                run_id="bench",
                scenario=name,
                phase="transcode",
                repeat=rep,
                cpu_w=noisy(rng, true_p, 0.05),
                rungs=lad,
                encoder=enc,
                preset=preset,
                streams=s,
                engine_rate=0.05,
                host_rate=min(2.0, 0.2 * s),
            )
            exp.idle(2)
    return exp


def run_report(url: str, args: list[str], env: dict[str, str]) -> tuple[float, dict]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "advisor.cli",
            "--log-level",
            "WARNING",
            "report",
            "--prometheus-url",
            url,
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"advisor failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, {}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--receivers", default="prometheus,victoria-metrics")
    opts = ap.parse_args()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "base-monitoring-client"), str(ROOT / "advisor"), env.get("PYTHONPATH", "")]
    )
    with tempfile.TemporaryDirectory(prefix="advisor-bench-") as tmp:
        work = Path(tmp)
        end_ms = int(time.time() * 1000) - 60_000
        exp = build(end_ms)
        manifests = exp.write_manifests(work / "results")
        n_windows = len(exp.windows)
        print(
            f"synthetic: {n_windows} windows, span {(exp.end_ms - exp.start_ms) / 3.6e6:.2f} h,"
            f" 10 Hz"
        )
        classes = {"prometheus": PrometheusProcess, "victoria-metrics": VictoriaMetricsProcess}
        for kind in opts.receivers.split(","):
            with classes[kind](work / kind) as recv:
                t0 = time.perf_counter()
                n = exp.push(recv.write_url)
                recv.flush()
                print(f"\n[{kind}] backfilled {n} samples in {time.perf_counter() - t0:.1f} s")
                cases = [
                    (
                        "manifest, raw, json",
                        ["--results", *map(str, manifests), "--format", "json"],
                    ),
                    ("manifest, raw, table", ["--results", *map(str, manifests)]),
                    (
                        "manifest, raw, html",
                        ["--results", *map(str, manifests), "--format", "html"],
                    ),
                    (
                        "manifest, range, json",
                        [
                            "--results",
                            *map(str, manifests),
                            "--format",
                            "json",
                            "--query-mode",
                            "range",
                        ],
                    ),
                    (
                        "discovery --since 2h30m, raw, json",
                        ["--since", "2h30m", "--format", "json"],
                    ),
                ]
                for label, args in cases:
                    out = work / f"{kind}-{len(label)}.out"
                    wall, _ = run_report(recv.base_url, [*args, "--output", str(out)], env)
                    line = f"  {label:38s} {wall:6.2f} s end to end"
                    if "json" in label:
                        doc = json.loads(out.read_text())
                        pw = doc["prediction"]["power"]
                        ok = sum(1 for w in doc["windows"] if w["status"] == "ok")
                        line += (
                            f", {doc['meta']['queries']:2d} queries, analysis "
                            f"{doc['meta']['analysis_seconds']:.2f} s, {ok}/"
                            f"{len(doc['windows'])} windows ok, power model "
                            f"{pw.get('model')} held-out MAPE "
                            f"{pw.get('heldout_mape_pct', float('nan')):.2f}%"
                        )
                    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
