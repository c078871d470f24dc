"""Shared fixtures: a synthetic experiment with closed-form answers, pushed by remote write
into a real Prometheus and a real VictoriaMetrics (started once per session, stopped by PID)."""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def _import_real_advisor() -> None:
    """The component directory is also called ``advisor``: pytest (importlib mode, repo root on
    sys.path) registers it as a namespace package ``advisor`` for ``advisor.tests.*``. Replace
    that stand-in with the real package (advisor/advisor) before anything imports from it."""
    mod = sys.modules.get("advisor")
    if mod is not None and getattr(mod, "__file__", None) is None:
        del sys.modules["advisor"]
    importlib.import_module("advisor")


_import_real_advisor()

# The imports below must follow _import_real_advisor().
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from advisor.synthetic import (  # noqa: E402
    Experiment,
    SynthWindow,
    ladder,
    noisy,
    scaling_law_power,
)
from wattpush_testing import (  # noqa: E402
    PrometheusProcess,
    ReceiverProcess,
    VictoriaMetricsProcess,
)
from wattpush_testing.fixtures import restore_root_logging  # noqa: E402

__all__ = ["restore_root_logging"]  # a fixture for the test modules

L_SD = ladder((1280, 720, "2M"), (640, 360, "800k"))
L_HD = ladder((1920, 1080, "4M"))
GPU_IDLE_W = 10.0
CPU_IDLE_W = 20.0

# Run "quality": four families at 640x360 with known (bitrate, vmaf, net J per output minute)
# points. One stream, so net J per output minute = 60 x net power (W). At vmaf 93:
# veryfast 660 + 5/6 x 420 = 1010 at 1.8333M; medium 900 + 1/4 x 600 = 1050 at 1.25M;
# x265 fast 1200 + 10/11 x 600 = 1745.45 at 954.5k; ultrafast never reaches 93.
QUALITY_FAMILIES: dict[tuple[str, str], list[tuple[str, float, float]]] = {
    ("libx264", "medium"): [("500k", 85.0, 630.0), ("1M", 92.0, 900.0), ("2M", 96.0, 1500.0)],
    ("libx264", "veryfast"): [("500k", 79.0, 430.0), ("1M", 88.0, 660.0), ("2M", 94.0, 1080.0)],
    ("libx265", "fast"): [("500k", 88.0, 1200.0), ("1M", 93.5, 1800.0), ("2M", 97.0, 2400.0)],
    ("libx264", "ultrafast"): [("500k", 70.0, 300.0), ("1M", 80.0, 420.0), ("2M", 88.0, 600.0)],
}
QUALITY_AT_93 = {
    "libx264/veryfast/640x360": (1010.0, 1_833_333.3),
    "libx264/medium/640x360": (1050.0, 1_250_000.0),
    "libx265/fast/640x360": (1200.0 + 600.0 * 10 / 11, 500_000.0 + 500_000.0 * 10 / 11),
}
QUALITY_FRONTIER = sorted(
    [
        "libx264-ultrafast-500k",
        "libx264-ultrafast-1M",
        "libx264-ultrafast-2M",
        "libx264-medium-1M",
        "libx264-veryfast-2M",
        "libx264-medium-2M",
        "libx265-fast-2M",
    ]
)
# Repeats spread power and quality symmetrically, so the means are the points above.
QUALITY_SPREAD = (-0.02, 0.0, 0.02)
VMAF_SPREAD = (-0.5, 0.0, 0.5)

# Run "attrib" (host "attribhost", with the runner's CPU accounting): CPU power on a line,
# P = ATTRIB_IDLE_W + ATTRIB_W_PER_CPU x busy CPUs, each window off it by ±0.3 % (noise). Two
# families with known (bitrate, vmaf, transcode CPU seconds per second) points; while medium
# encodes, a background load keeps 0.6 more CPUs busy (and draws 0.6 x 12 W), also during
# medium's first baseline. Truth: attributed energy = 12 W x transcode CPU s; 4 s windows of
# 120 frames at 30 fps are 1/15 output minute, so J per output minute = 720 x the rate. At
# vmaf 93: medium 720 x (1.0 + 0.2 / 3) = 768, veryfast 720 x (1.05 + 0.75 x 0.2) = 864:
# medium wins by 96. Gross (whole machine) and net energy count medium's background load
# (medium 2316 vs veryfast 1980 J/min gross, 1200 vs 864 net) and pick veryfast.
ATTRIB_IDLE_W = 18.0
ATTRIB_W_PER_CPU = 12.0
ATTRIB_IDLE_BUSY = 0.05
ATTRIB_BACKGROUND_CPUS = 0.6
ATTRIB_FAMILIES: dict[tuple[str, str], list[tuple[str, float, float]]] = {
    ("libx264", "medium"): [("500k", 88.0, 0.9), ("1M", 92.0, 1.0), ("2M", 95.0, 1.2)],
    ("libx264", "veryfast"): [("500k", 85.0, 0.8), ("1M", 90.0, 1.05), ("2M", 94.0, 1.25)],
}
ATTRIB_BACKGROUND = {("libx264", "medium")}
ATTRIB_AT_93 = {"libx264/medium/640x360": 768.0, "libx264/veryfast/640x360": 864.0}


@dataclass
class World:
    main: Experiment
    est: Experiment
    attrib: Experiment
    manifests: dict[str, Path]
    gap_window: SynthWindow
    reset_window: SynthWindow
    stalled_window: SynthWindow  # its start lies inside a 2.5 s gap in the CPU counter

    def windows(self, run_id: str, phase: str = "transcode") -> list[SynthWindow]:
        return [
            w
            for w in self.main.windows + self.est.windows + self.attrib.windows
            if w.record.run_id == run_id and w.record.phase == phase
        ]


def build_world(tmp: Path) -> World:
    now_ms = int(time.time() * 1000)
    # Everything within the last ~50 minutes: Prometheus takes it into its head block.
    exp = Experiment(
        start_ms=now_ms - 45 * 60_000, gpu=True, idle_gpu_w=GPU_IDLE_W, idle_cpu_w=CPU_IDLE_W
    )
    exp.idle(2)
    gap_w = reset_w = None
    # Run "rank": ladder SD, fast clearly beats slow; ladder HD, a ~ b (not significant).
    plan = [
        ("fast", L_SD, [100.0, 101.0, 99.0]),
        ("slow", L_SD, [120.0, 121.0, 119.0]),
        ("hd-a", L_HD, [200.0, 210.0, 190.0]),
        ("hd-b", L_HD, [201.0, 211.0, 191.0]),
    ]
    for name, lad, powers in plan:
        for rep, p in enumerate(powers):
            exp.add(
                5,
                run_id="rank",
                scenario=name,
                phase="baseline",
                repeat=rep,
                cpu_w=CPU_IDLE_W,
                rungs=lad,
            )
            exp.idle(1)
            w = exp.add(
                10,
                run_id="rank",
                scenario=name,
                phase="transcode",
                repeat=rep,
                cpu_w=p,
                gpu_w=30.0,
                rungs=lad,
                engine_rate=0.2,
                host_rate=1.0,
            )
            if name == "fast" and rep == 1:
                exp.counter_resets_ms.append(w.record.start_ms + 4000 + 50)
                reset_w = w
            exp.idle(1)
    # A failed repeat (reported, not ranked) and a repeat whose CPU data has a gap.
    failed_w = exp.add(
        10,
        run_id="rank",
        scenario="hd-b",
        phase="transcode",
        repeat=3,
        cpu_w=500.0,
        gpu_w=30.0,
        rungs=L_HD,
        status="failed",
    )
    # Its start also falls in a short CPU gap: both facts must be reported.
    exp.cpu_gaps.append((failed_w.record.start_ms - 800, failed_w.record.start_ms + 1700))
    exp.idle(1)
    gap_w = exp.add(
        10,
        run_id="rank",
        scenario="hd-a",
        phase="transcode",
        repeat=3,
        cpu_w=205.0,
        gpu_w=30.0,
        rungs=L_HD,
    )
    # Over the window's end: the edge cannot be interpolated (a gap strictly inside a counter's
    # window would not matter: the counter difference is exact).
    exp.cpu_gaps.append((gap_w.record.start_ms + 6000, gap_w.record.start_ms + 13000))
    exp.idle(2)
    # Run "law": the scaling law with 5 % noise, for prediction.
    rng = np.random.default_rng(7)
    for enc in ("libx264", "libx265"):
        for s in (1, 2, 3, 4, 6):
            for lad in (ladder((1280, 720, "2M")), ladder((640, 360, "800k"))):
                px = s * sum(r.pixels for r in lad) * 30
                br = 2e6 if lad[0].height == 720 else 8e5
                for rep in range(3):
                    p = noisy(rng, scaling_law_power(enc, s, px, br), 0.05)
                    exp.add(
                        4,
                        run_id="law",
                        scenario=f"{enc}-{s}x-{lad[0].height}p",
                        phase="transcode",
                        repeat=rep,
                        cpu_w=p - GPU_IDLE_W,
                        gpu_w=GPU_IDLE_W,
                        rungs=lad,
                        encoder=enc,
                        preset="medium",
                        streams=s,
                    )
                    exp.idle(0.5)
    add_quality_run(exp)
    # Another host whose CPU power is only an estimate (VM without RAPL).
    est = Experiment(
        start_ms=now_ms - 44 * 60_000, instance="esthost", cpu_source="estimated", with_info=False
    )
    stalled = []
    for rep in range(2):
        w = est.add(
            6,
            run_id="est",
            scenario="vm-x264",
            phase="transcode",
            repeat=rep,
            cpu_w=55.0,
            rungs=L_SD,
        )
        stalled.append(w)
        est.idle(1)
    # A client stalled by load (seen in Docker when encoders start): 2.5 s without samples from
    # 0.8 s before the second window (after the first one ended) to 1.7 s into it.
    start = stalled[1].record.start_ms
    est.cpu_gaps.append((start - 800, start + 1700))
    attrib = build_attrib(now_ms - 43 * 60_000)
    paths = exp.write_manifests(tmp / "results") + est.write_manifests(tmp / "results")
    paths += attrib.write_manifests(tmp / "results")
    assert max(exp.end_ms, attrib.end_ms) < now_ms - 60_000, "synthetic data must end in the past"
    assert gap_w is not None and reset_w is not None
    return World(exp, est, attrib, {p.stem: p for p in paths}, gap_w, reset_w, stalled[1])


def attrib_cpu_w(busy_cpus: float, noise: float = 0.0) -> float:
    return (ATTRIB_IDLE_W + ATTRIB_W_PER_CPU * busy_cpus) * (1.0 + noise)


def build_attrib(start_ms: int) -> Experiment:
    """Run "attrib" (see ATTRIB_FAMILIES): one host, CPU power only, CPU accounting on."""
    exp = Experiment(
        start_ms=start_ms,
        instance="attribhost",
        idle_cpu_w=attrib_cpu_w(ATTRIB_IDLE_BUSY),
        idle_host_rate=ATTRIB_IDLE_BUSY,
        with_estimated_shadow=False,
        accounting=True,
    )
    exp.idle(2)
    l360 = {br: ladder((640, 360, br)) for br in ("500k", "1M", "2M")}
    k = 0
    for (enc, preset), points in ATTRIB_FAMILIES.items():
        bg = ATTRIB_BACKGROUND_CPUS if (enc, preset) in ATTRIB_BACKGROUND else 0.0
        for br, vmaf, rate in points:
            name = f"{enc}-{preset}-{br}"
            for rep, (dp, dq) in enumerate(zip(QUALITY_SPREAD, VMAF_SPREAD, strict=True)):
                k += 1
                common = {"run_id": "attrib", "scenario": name, "repeat": rep, "rungs": l360[br]}
                common |= {"encoder": enc, "preset": preset}
                base_bg = bg if rep == 0 else 0.0  # a baseline that is not idle
                exp.add(
                    2,
                    phase="baseline",
                    cpu_w=attrib_cpu_w(ATTRIB_IDLE_BUSY),
                    background_rate=base_bg,
                    background_w=ATTRIB_W_PER_CPU * base_bg,
                    **common,
                )
                tr = rate * (1 + dp)
                exp.add(
                    4,
                    phase="transcode",
                    cpu_w=attrib_cpu_w(ATTRIB_IDLE_BUSY + tr, 0.003 * (-1) ** k),
                    host_rate=ATTRIB_IDLE_BUSY + tr,
                    transcode_rate=tr,
                    background_rate=bg,
                    background_w=ATTRIB_W_PER_CPU * bg,
                    quality={"vmaf": vmaf + dq, "psnr": 30 + vmaf / 10, "ssim": 0.9 + vmaf / 1000},
                    **common,
                )
                exp.idle(0.5)
    return exp


def add_quality_run(exp: Experiment) -> None:
    """Run "quality": QUALITY_FAMILIES, three repeats each after its own baseline, plus a
    two-rung ladder with quality (left out: its energy cannot be split per output)."""
    l360 = {br: ladder((640, 360, br)) for br in ("500k", "1M", "2M")}
    for (enc, preset), points in QUALITY_FAMILIES.items():
        for br, vmaf, j_per_min in points:
            name = f"{enc}-{preset}-{br}"
            for rep, (dp, dq) in enumerate(zip(QUALITY_SPREAD, VMAF_SPREAD, strict=True)):
                common = {"run_id": "quality", "scenario": name, "repeat": rep, "rungs": l360[br]}
                exp.add(2, phase="baseline", cpu_w=CPU_IDLE_W, encoder=enc, preset=preset, **common)
                net_w = j_per_min / 60.0 * (1 + dp)
                exp.add(
                    4,
                    phase="transcode",
                    cpu_w=CPU_IDLE_W + net_w,
                    gpu_w=GPU_IDLE_W,
                    encoder=enc,
                    preset=preset,
                    quality={"vmaf": vmaf + dq, "psnr": 30 + vmaf / 10, "ssim": 0.9 + vmaf / 1000},
                    **common,
                )
                exp.idle(0.5)
    for rep in range(2):
        common = {"run_id": "quality", "scenario": "ladder-x264", "repeat": rep, "rungs": L_SD}
        exp.add(2, phase="baseline", cpu_w=CPU_IDLE_W, **common)
        exp.add(
            4, phase="transcode", cpu_w=60.0, gpu_w=GPU_IDLE_W, quality={"vmaf": 90.0}, **common
        )
        exp.idle(0.5)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("advisor-world"))


def _start(kind: str, workdir: Path, world: World) -> Iterator[ReceiverProcess]:
    cls = PrometheusProcess if kind == "prometheus" else VictoriaMetricsProcess
    recv = cls(workdir)
    recv.start()
    try:
        world.main.push(recv.write_url)
        world.est.push(recv.write_url)
        world.attrib.push(recv.write_url)
        recv.flush()
        yield recv
    finally:
        recv.stop()


@pytest.fixture(scope="session", params=["prometheus", "victoria-metrics"])
def receiver(
    request: pytest.FixtureRequest, world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ReceiverProcess]:
    yield from _start(request.param, tmp_path_factory.mktemp(request.param), world)
