"""The Python half of e2e/gpu_check.sh: plan the NVENC sweep, run the dry run's fake GPU, and
summarise what the run proved. Run by the script with the venv's python; no component imports it.

    python -m wattpush_testing.gpu_check plan OUT [--dry-run]
        # pick the ffmpeg and the encoders that open; write OUT/batch.json and OUT/plan.json
    python -m wattpush_testing.gpu_check fake-client
        # gpu-nvml-client on the fake NVML (the dry run's GPU)
    python -m wattpush_testing.gpu_check summary OUT
        # OUT/summary.txt and OUT/summary.json; exit 0 when every part was proven, else 1

Every name of a series or label comes from the series contract.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shutil
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from base_monitoring_client import ClientConfig, contract
from base_monitoring_client.cli import run_client
from ffmpeg_runner.errors import QualityUnavailableError, RunnerError
from ffmpeg_runner.ffmpeg import check_encoders, probe_ffmpeg
from ffmpeg_runner.quality import choose_tool, extra_ffmpeg
from ffmpeg_runner.scenario import parse_scenario
from gpu_nvml_client import GpuNvmlClient
from gpu_nvml_client.nvml import Handle

from .nvml import FakeGpu, FakeNvml

NVENC_ENCODERS = ("h264_nvenc", "hevc_nvenc", "av1_nvenc")
NVENC_PRESET = "p4"  # NVENC's middle preset (p1 fastest .. p7 best)
REFERENCE_ENCODER, REFERENCE_PRESET = "libx264", "veryfast"  # the CPU encode beside them
DRY_RUN_PRESET = "ultrafast"
CLIENT_STORED_SHARE = 0.9  # of the samples 10 Hz would give, the least that counts as sampled


@dataclass(frozen=True)
class Sweep:
    """What one mode encodes: every encoder at every bitrate, once, from ``clip``."""

    clip: str
    resolution: str
    bitrates: tuple[str, ...]
    duration_s: float
    stabilization_s: float
    cooldown_s: float
    baseline_s: float


REAL = Sweep("bbb", "1280x720", ("1M", "2M", "4M"), 8.0, 2.0, 2.0, 10.0)
# Small and short: the dry run checks the path on a 2-core machine without a GPU.
DRY = Sweep("bikes", "320x136", ("300k", "800k"), 4.0, 1.0, 1.0, 3.0)


# -- plan -------------------------------------------------------------------------------------


def encoder_problem(encoder: str, ffmpeg: str) -> str | None:
    """Why ``encoder`` cannot run on this ``ffmpeg`` (None: it opened), in the runner's words."""
    try:
        info = probe_ffmpeg(ffmpeg)
        check_encoders([parse_scenario({"name": "probe", "encoder": encoder})], info)
    except RunnerError as exc:
        return str(exc).split("encoder: ", 1)[-1]
    return None


def ffmpeg_candidates() -> list[str]:
    """FFMPEG_PATH when set; else the system ffmpeg and the quality extra's static one."""
    if os.environ.get("FFMPEG_PATH"):
        return [os.environ["FFMPEG_PATH"]]
    found = [shutil.which("ffmpeg"), extra_ffmpeg()]
    return [p for p in dict.fromkeys(found) if p]


def pick_nvenc(candidates: Sequence[str]) -> tuple[str, dict[str, str | None]]:
    """The ffmpeg whose NVENC encoders open most often, and each encoder's problem there."""
    best: tuple[int, str, dict[str, str | None]] | None = None
    for ffmpeg in candidates:
        problems = {e: encoder_problem(e, ffmpeg) for e in NVENC_ENCODERS}
        ok = sum(p is None for p in problems.values())
        if best is None or ok > best[0]:
            best = (ok, ffmpeg, problems)
    if best is None:
        raise SystemExit("gpu_check: no ffmpeg found; install it (apt-get install ffmpeg)")
    return best[1], best[2]


def quality_metrics(ffmpeg: str) -> tuple[list[str], str | None]:
    """VMAF where an ffmpeg with libvmaf is found (the quality extra ships one), else PSNR and
    SSIM with the reason VMAF is missing."""
    try:
        tool = choose_tool(["vmaf"], os.environ.get("QUALITY_FFMPEG_PATH"), ffmpeg)
    except QualityUnavailableError as exc:
        return ["psnr", "ssim"], str(exc)
    return ["vmaf", "psnr"], f"VMAF by {tool.path} ({tool.origin})"


def scenarios(sweep: Sweep, encoders: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for encoder, preset in encoders:
        for bitrate in sweep.bitrates:
            name = f"{encoder}-{preset}-{bitrate}"
            out.append({"name": name, "encoder": encoder, "preset": preset, "bitrate": bitrate})
    if out:
        out[0] |= {"with_baseline": True, "baseline_duration": sweep.baseline_s}
    return out


def cmd_plan(out: Path, dry_run: bool) -> int:
    sweep = DRY if dry_run else REAL
    if dry_run:
        ffmpeg = shutil.which(os.environ.get("FFMPEG_PATH") or "ffmpeg") or "ffmpeg"
        _, nvenc = pick_nvenc(ffmpeg_candidates())  # what a GPU run would find; not used
        encoders = [(REFERENCE_ENCODER, DRY_RUN_PRESET)]  # libx264 stands in for NVENC
    else:
        ffmpeg, nvenc = pick_nvenc(ffmpeg_candidates())
        encoders = [(e, NVENC_PRESET) for e, problem in nvenc.items() if problem is None]
        if not encoder_problem(REFERENCE_ENCODER, ffmpeg):
            encoders.append((REFERENCE_ENCODER, REFERENCE_PRESET))
    metrics, quality_note = quality_metrics(ffmpeg)
    planned = scenarios(sweep, encoders)
    names = [e for e, _ in encoders]
    batch = {
        "description": "e2e/gpu_check.sh: "
        + ("dry run, libx264 standing in for NVENC" if dry_run else "NVENC sweep and libx264"),
        "defaults": {
            "input": sweep.clip,
            "resolution": sweep.resolution,
            "realtime": True,  # at the clip's rate: every window encodes the same video
            "duration": sweep.duration_s,
            "stabilization": sweep.stabilization_s,
            "cooldown": sweep.cooldown_s,
            "quality": metrics,
        },
        "scenarios": planned,
    }
    plan = {
        "mode": "dry-run" if dry_run else "gpu",
        "ffmpeg": ffmpeg,
        "nvenc": nvenc,
        "encoders": names,
        "quality": metrics,
        "quality_note": quality_note,
        "windows": len(planned) + 1,  # and the baseline
    }
    (out / "batch.json").write_text(json.dumps(batch, indent=2) + "\n")
    (out / "plan.json").write_text(json.dumps(plan, indent=2) + "\n")
    print(f"gpu_check: encoding with {ffmpeg}")
    for encoder, problem in nvenc.items():
        print(f"gpu_check: {encoder}: " + ("opens" if problem is None else f"unusable: {problem}"))
    print(f"gpu_check: quality {','.join(metrics)}: {quality_note}")
    print(f"gpu_check: sweep of {len(planned) + 1} windows: {', '.join(names)}")
    return 0 if planned else 1


# -- the dry run's GPU --------------------------------------------------------------------------


class DrawingNvml(FakeNvml):
    """The fake NVML with energy counters that follow the wall clock at each GPU's power."""

    def total_energy_mj(self, handle: Handle) -> int:
        with self.lock:
            gpu = self.gpus[int(handle)]
            gpu.energy_mj = round(gpu.power_mw * time.monotonic())
        return super().total_energy_mj(handle)


class DryRunGpuClient(GpuNvmlClient):
    """gpu-nvml-client on one drawing fake GPU (FakeGpu's default draw, 30 W)."""

    @classmethod
    def from_settings(cls, config: ClientConfig, values: Mapping[str, Any]) -> DryRunGpuClient:
        gpu = FakeGpu("GPU-00000000-0000-4000-8000-00000000d2e1", "NVIDIA Fake (dry run)")
        return cls(DrawingNvml([gpu]))


def cmd_fake_client() -> int:
    return run_client(DryRunGpuClient, argv=[])  # settings from the environment


# -- summary ------------------------------------------------------------------------------------


def query(prom: str, promql: str, at: float) -> list[dict[str, Any]]:
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": promql, "time": at})
    with urllib.request.urlopen(url, timeout=30) as resp:
        body = json.load(resp)
    if body.get("status") != "success":
        raise RuntimeError(f"query {promql!r} failed: {body}")
    return list(body["data"]["result"])


def client_check(prom: str, start: float, end: float, interval_s: float) -> dict[str, Any]:
    """What gpu-nvml-client stored from its first sample to ``end`` (it was started at
    ``start``): per GPU, the energy samples against what ``interval_s`` gives, the largest
    gap, the energy, the mean power and whether the counter only rose."""
    window_ms = int((end - start) * 1000)
    raw = query(prom, f"{contract.GPU_ENERGY.name}[{window_ms}ms]", end)
    gpus = []
    for series in raw:
        labels = series["metric"]
        points = [(float(t), float(v)) for t, v in series["values"]]
        times = [t for t, _ in points]
        span = times[-1] - times[0]
        joules = points[-1][1] - points[0][1]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        gpus.append(
            {
                "gpu": labels.get("gpu"),
                "name": labels.get("name"),
                "uuid": labels.get("uuid"),
                "source": labels.get("source"),
                "seconds": span,
                "samples": len(points),
                "expected_samples": round(span / interval_s) + 1,
                "max_gap_s": round(max(gaps), 3) if gaps else None,
                "energy_j": joules,
                "mean_power_w": joules / span if span > 0 else math.nan,
                "monotonic": all(b[1] >= a[1] for a, b in itertools.pairwise(points)),
            }
        )
    return {"start": start, "end": end, "seconds": end - start, "gpus": gpus}


def client_problems(check: Mapping[str, Any]) -> list[str]:
    hardware = {
        s
        for s, kind in contract.SOURCES.items()
        if kind in (contract.SourceKind.HARDWARE_COUNTER, contract.SourceKind.HARDWARE_POWER)
    }
    problems = []
    if not check["gpus"]:
        problems.append("gpu-nvml-client stored no GPU energy")
    for g in check["gpus"]:
        who = f"GPU {g['gpu']} ({g['name']})"
        if g["samples"] < CLIENT_STORED_SHARE * g["expected_samples"]:
            problems.append(f"{who}: {g['samples']} of {g['expected_samples']} samples stored")
        if g["source"] not in hardware:
            problems.append(f"{who}: energy from {g['source']!r}, not the hardware")
        if not g["monotonic"] or not g["energy_j"] > 0:
            problems.append(f"{who}: the energy counter did not rise steadily")
    return problems


def sweep_check(report: Mapping[str, Any], plan: Mapping[str, Any]) -> dict[str, Any]:
    """Per encoder, from the advisor's windows: how many windows were ok, their GPU and total
    energy, quality and energy per output minute."""
    rows: dict[str, dict[str, Any]] = {}
    metric = plan["quality"][0]
    for w in report.get("windows", []):
        if w.get("phase") != "transcode":
            continue
        row = rows.setdefault(w["encoder"], {"windows": 0, "ok": 0, "points": []})
        row["windows"] += 1
        if w.get("status") != "ok":
            continue
        row["ok"] += 1
        row["points"].append(
            {
                "bitrate": w.get("bitrate"),
                metric: w.get(f"quality_{metric}"),
                "gpu_energy_j": w.get("gpu_energy_j"),
                "energy_j": w.get("energy_j"),
                "j_per_output_minute": w.get("energy_per_output_minute_j"),
            }
        )
    return {"metric": metric, "encoders": rows}


def sweep_problems(sweep: Mapping[str, Any], plan: Mapping[str, Any]) -> list[str]:
    problems = []
    metric = sweep["metric"]
    wanted = [e for e in plan["encoders"] if plan["mode"] == "dry-run" or e.endswith("_nvenc")]
    if not wanted:
        reasons = "; ".join(f"{e}: {p}" for e, p in plan["nvenc"].items())
        problems.append(f"no NVENC encoder opens with {plan['ffmpeg']} ({reasons})")
    for encoder in wanted:
        row = sweep["encoders"].get(encoder)
        if not row or not row["ok"]:
            problems.append(f"{encoder}: no window completed (see runner.log)")
            continue
        if not all(p[metric] is not None for p in row["points"]):
            problems.append(f"{encoder}: {metric} missing for some windows (see runner.log)")
        if not all((p["gpu_energy_j"] or 0) > 0 for p in row["points"]):
            problems.append(f"{encoder}: the advisor found no GPU energy for its windows")
    return problems


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def summary_lines(
    *,
    plan: Mapping[str, Any],
    client: Mapping[str, Any],
    sweep: Mapping[str, Any],
    report: Mapping[str, Any],
    verdicts: Mapping[str, Sequence[str]],
    elapsed_s: float,
) -> list[str]:
    dry = plan["mode"] == "dry-run"
    lines = [f"gpu_check ({plan['mode']}): {elapsed_s:.0f} s"]
    lines.append(f"gpu-nvml-client, {client['seconds']:.0f} s into Prometheus:")
    for g in client["gpus"]:
        lines.append(
            f"  GPU {g['gpu']} {g['name']}: {g['samples']}/{g['expected_samples']} samples, "
            f"max gap {_fmt(g['max_gap_s'], 2)} s, {_fmt(g['energy_j'])} J, "
            f"mean {_fmt(g['mean_power_w'])} W, source {g['source']}"
        )
    for encoder, problem in plan["nvenc"].items():
        state = "opens" if problem is None else f"unusable: {problem}"
        lines.append(f"{encoder}{' (not used in a dry run)' if dry else ''}: {state}")
    metric = sweep["metric"]
    lines.append(f"sweep ({plan['quality_note']}):")
    for encoder, row in sweep["encoders"].items():
        lines.append(f"  {encoder}: {row['ok']}/{row['windows']} windows ok")
        for p in row["points"]:
            lines.append(
                f"    {p['bitrate']}: {metric} {_fmt(p[metric])}, GPU {_fmt(p['gpu_energy_j'])} J, "
                f"total {_fmt(p['energy_j'])} J, {_fmt(p['j_per_output_minute'])} J/output min"
            )
    first = str(report.get("summary", "")).splitlines()[:3]
    lines += ["advisor:", *(f"  {x}" for x in first), "verdict:"]
    for part, problems in verdicts.items():
        lines.append(f"  {part}: {'NOT PROVEN' if problems else 'PROVEN'}")
        lines += [f"    - {p}" for p in problems]
    return lines


def cmd_summary(out: Path) -> int:
    plan = json.loads((out / "plan.json").read_text())
    times = json.loads((out / "times.json").read_text())
    prom = times["prometheus_url"]
    try:
        client = client_check(
            prom, times["client_start"], times["client_end"], float(times["sample_interval_s"])
        )
        unread = []
    except (OSError, RuntimeError) as exc:  # urllib's errors are OSErrors
        client = {"seconds": 0.0, "gpus": []}
        unread = [f"cannot read the client's samples from {prom}: {exc}"]
    report_path = out / "report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    sweep = sweep_check(report, plan)
    encode = sweep_problems(sweep, plan)
    if not report:
        encode.append("the advisor wrote no report (see logs/advisor.log)")
    dry = plan["mode"] == "dry-run"
    verdicts = {
        "NVML: gpu-nvml-client into Prometheus" + (" (fake NVML)" if dry else ""): (
            unread or client_problems(client)
        ),
        (
            "encode: libx264 standing in for NVENC, quality, GPU energy per window"
            if dry
            else "NVENC: encode, quality, GPU energy per window in the advisor"
        ): encode,
    }
    lines = summary_lines(
        plan=plan,
        client=client,
        sweep=sweep,
        report=report,
        verdicts=verdicts,
        elapsed_s=time.time() - times["started"],
    )
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    doc = {"plan": plan, "client": client, "sweep": sweep, "verdicts": verdicts}
    (out / "summary.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print("\n".join(lines))
    return 1 if any(verdicts.values()) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wattpush_testing.gpu_check", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    plan = sub.add_parser("plan")
    plan.add_argument("out", type=Path)
    plan.add_argument("--dry-run", action="store_true")
    sub.add_parser("fake-client")
    summary = sub.add_parser("summary")
    summary.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    if args.command == "plan":
        return cmd_plan(args.out, args.dry_run)
    if args.command == "fake-client":
        return cmd_fake_client()
    return cmd_summary(args.out)


if __name__ == "__main__":
    sys.exit(main())
