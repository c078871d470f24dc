"""Advisor benchmark: a report for 100 scenarios x 3 repeats over 2 hours of 10 Hz data.

Targets: < 10 s end to end (issues 8 and 14, the latter with quality data) and < 20
Prometheus queries per report.

Scenarios: 2 encoders x 5 presets x (a two-rung 720p+360p ladder at 1, 2, 4, 8 and 12
streams, and one 1080p output at 2, 4, 6, 8 and 12 Mb/s). Every transcode window has quality
(vmaf, psnr, ssim per output, as ffmpeg-runner records it after the window: in the schema-2
manifest and as ffmpeg_output_quality / ffmpeg_output_bitrate_bits_per_second series), so the
reports run the quality analysis (`--target-quality vmaf=93`: 10 families of 5 bitrates).

Method: start a fresh Prometheus 2.42 (and VictoriaMetrics) on a free loopback port, backfill
2 h of synthetic 10 Hz series by remote write in chronological 60 s slices (Prometheus appends
out-of-order-free data of any age into an empty head as long as every request is newer than the
last; only samples older than head max time - 1 h are refused), write the manifest, then time
the `advisor report` CLI as a subprocess (interpreter start, imports, queries, analysis,
prediction, rendering) with `time.perf_counter` around `subprocess.run`, and its CPU time
(user + system of the child, from `resource.getrusage(RUSAGE_CHILDREN)`), which the other load
on a shared machine inflates less than the wall time. The query count comes from the JSON
report (`meta.queries`).

Run:  .venv/bin/python bench/advisor_bench.py [--receivers prometheus] [--cases "manifest, raw"]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from advisor.synthetic import Experiment, ladder, noisy, scaling_law_power
from wattpush_testing import PrometheusProcess, VictoriaMetricsProcess

ROOT = Path(__file__).resolve().parent.parent
PRESET_FACTOR = {"ultrafast": 0.7, "veryfast": 0.85, "fast": 1.0, "medium": 1.2, "slow": 1.5}
# Quality loss per preset and encoder: slower presets and x265 keep more picture per bit.
PRESET_LOSS = {"ultrafast": 1.4, "veryfast": 1.15, "fast": 1.0, "medium": 0.9, "slow": 0.8}
ENCODER_LOSS = {"libx264": 1.0, "libx265": 0.8}
TARGET = "vmaf=93"


def vmaf_of(enc: str, preset: str, bps: float) -> float:
    """100 - 12 x loss x (4 Mb/s / bitrate)^0.6: rises with bitrate, saturating."""
    return 100.0 - 12.0 * PRESET_LOSS[preset] * ENCODER_LOSS[enc] * (4e6 / bps) ** 0.6


def build(end_ms: int, span_s: float = 7200.0, seed: int = 0) -> Experiment:
    rng = np.random.default_rng(seed)
    exp = Experiment(start_ms=int(end_ms - span_s * 1000), gpu=False, idle_cpu_w=25.0)
    sd = ladder((1280, 720, "2M"), (640, 360, "800k"))
    configs = [
        (enc, preset, s, lad)
        for enc in ("libx264", "libx265")
        for preset in PRESET_FACTOR
        for s, lad in [(s, sd) for s in (1, 2, 4, 8, 12)]
        + [(1, ladder((1920, 1080, br))) for br in ("2M", "4M", "6M", "8M", "12M")]
    ]
    assert len(configs) == 100
    per_scenario = 8 + 3 * 20
    exp.idle(span_s - 100 * per_scenario - 5)
    for enc, preset, s, lad in configs:
        name = f"{enc}-{preset}-{s}x-{lad[0].height}p-{lad[0].bitrate}"
        px = s * sum(r.pixels for r in lad) * 30
        bps = lad[0].bitrate_bps
        true_p = 25.0 + (scaling_law_power(enc, s, px, bps) - 25.0) * PRESET_FACTOR[preset]
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
            vmaf = vmaf_of(enc, preset, bps) + 0.3 * rng.standard_normal()
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
                quality={"vmaf": vmaf, "psnr": 20.0 + vmaf / 4, "ssim": 0.9 + vmaf / 1000},
            )
            exp.idle(2)
    return exp


def run_report(url: str, args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall s, CPU s) of one `advisor report` subprocess."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
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
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"advisor failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, cpu


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--receivers", default="prometheus,victoria-metrics")
    ap.add_argument("--cases", default="", help="comma-separated case labels to run (default all)")
    opts = ap.parse_args()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [
            str(ROOT / "base-monitoring-client"),
            str(ROOT / "ffmpeg-runner"),
            str(ROOT / "advisor"),
            env.get("PYTHONPATH", ""),
        ]
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
                results = ["--results", *map(str, manifests)]
                target = ["--target-quality", TARGET]
                cases = [
                    ("manifest, raw, json", [*results, *target, "--format", "json"]),
                    ("manifest, raw, table", [*results, *target]),
                    ("manifest, raw, html", [*results, *target, "--format", "html"]),
                    (
                        "manifest, range, json",
                        [*results, *target, "--format", "json", "--query-mode", "range"],
                    ),
                    (
                        "discovery --since 2h30m, raw, json",
                        ["--since", "2h30m", *target, "--format", "json"],
                    ),
                ]
                wanted = [c.strip() for c in opts.cases.split(",") if c.strip()]
                for label, args in cases:
                    if wanted and not any(label.startswith(w) for w in wanted):
                        continue
                    out = work / f"{kind}-{len(label)}.out"
                    wall, cpu = run_report(recv.base_url, [*args, "--output", str(out)], env)
                    line = f"  {label:38s} {wall:6.2f} s end to end ({cpu:5.2f} s CPU)"
                    if "json" in label:
                        doc = json.loads(out.read_text())
                        pw = doc["prediction"]["power"]
                        ok = sum(1 for w in doc["windows"] if w["status"] == "ok")
                        line += (
                            f", {doc['meta']['queries']:2d} queries, analysis "
                            f"{doc['meta']['analysis_seconds']:.2f} s, {ok}/"
                            f"{len(doc['windows'])} windows ok, power model "
                            f"{pw.get('model')} held-out MAPE "
                            f"{pw.get('heldout_mape_pct', float('nan')):.2f}%, quality: "
                            f"{len(doc['quality']['families'])} families, winner "
                            f"{doc['quality']['winner']}"
                        )
                    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
