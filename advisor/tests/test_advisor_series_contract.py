"""The series contract end to end: the real clients (cpu-rapl-client on a fake powercap tree,
gpu-nvml-client on the fake NVML, and an estimating cpu-rapl-client beside them) push into a
real Prometheus, and the advisor picks the hardware counters by the contract's precedence."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from advisor.present.notes import notes_text
from base_monitoring_client import ClientConfig, contract
from base_monitoring_client.pipeline import Pipeline
from cpu_rapl_client.client import CpuRaplClient
from ffmpeg_runner.contract import RunManifest, WindowRecord
from gpu_nvml_client.client import GpuNvmlClient
from wattpush_testing import PrometheusProcess
from wattpush_testing.nvml import FakeNvml, fake_gpus
from wattpush_testing.rapl import DEFAULT_MAX_UJ, ScheduleWriter, intel_single_socket

from advisor import TranscodingRecommender

pytestmark = [pytest.mark.integration]

PERIOD_S = 0.05
CPU_W = 80.0  # the fake package counter's rate
GPU_W = 150.0
INSTANCE = "contract-host"


class EstimatingClient(CpuRaplClient):
    """A second cpu-rapl-client on the same host, estimating; its own job so that its
    self-metrics do not collide with the measuring one's."""

    name = "cpu-rapl-client-estimate"


def test_advisor_picks_the_hardware_counters_of_the_real_clients(tmp_path: Path) -> None:
    tree = intel_single_socket(tmp_path / "powercap", mmio=False, psys=False)
    step_uj = round(CPU_W * PERIOD_S * 1e6)
    writer = ScheduleWriter(
        tree,
        {"intel-rapl:0": 1_000_000},
        {"intel-rapl:0": DEFAULT_MAX_UJ},
        [{"intel-rapl:0": step_uj}] * 120,  # 6 s at 80 W
        PERIOD_S,
    )
    nvml = FakeNvml(fake_gpus(2, name="NVIDIA Fake L4"))
    # GPU 1 has no energy counter: the client integrates its power (source=integrated_power)
    # beside the power it reads (nvml_power_instant). Hardware power must win; by name alone
    # (the old preference) the integral would.
    nvml.gpus[1].unsupported.add("total_energy_mj")
    clients = [
        CpuRaplClient(tree.root()),
        EstimatingClient(backend=contract.SOURCE_ESTIMATED),  # an estimate that must lose
        GpuNvmlClient(nvml),
    ]
    stop = threading.Event()
    with PrometheusProcess(tmp_path / "prom") as prom:
        config = ClientConfig(
            remote_write_url=prom.write_url,
            sample_interval_s=PERIOD_S,
            push_interval_s=0.2,
            instance=INSTANCE,
        )
        pipelines = [Pipeline(c, config) for c in clients]
        for p in pipelines:
            p.start()
        writer.start()
        try:
            start_s = last = time.time()
            while not writer.done.is_set() and last - start_s < 20:
                stop.wait(PERIOD_S)
                # The time that really passed: a loaded machine runs this loop late, and a
                # fixed step would draw less than GPU_W per second of the window.
                now = time.time()
                nvml.run(0, now - last, GPU_W)
                nvml.run(1, now - last, GPU_W)
                last = now
            for p in pipelines:
                assert p.flush(timeout=10)
        finally:
            writer.stop()
            for p in pipelines:
                p.stop()
        # A window well inside the 6 s both fakes drew their power.
        window = WindowRecord(
            "probe",
            "transcode",
            0,
            round((start_s + 1.5) * 1000),
            round((start_s + 4.5) * 1000),
            run_id="contract",
            instance=INSTANCE,
        )
        manifest = tmp_path / "contract.json"
        run = RunManifest("contract", window.start_ms, {"instance": INSTANCE}, windows=[window])
        manifest.write_text(json.dumps(run.to_json()))
        prom.flush()

        rec = TranscodingRecommender(prom.base_url)
        report = rec.analyze(rec.load_windows([manifest]))

    used = {(s["domain"], s["entity"]): s for s in report.meta["power_sources"]}
    gpu_key = f"gpu0:{nvml.gpus[0].uuid}"
    assert used[("cpu", "package/0")]["source"] == contract.SOURCE_RAPL
    assert used[("gpu", gpu_key)]["source"] == contract.SOURCE_NVML_ENERGY_COUNTER
    gpu1 = f"gpu1:{nvml.gpus[1].uuid}"
    assert used[("gpu", gpu1)]["source"] == contract.SOURCE_NVML_POWER_INSTANT
    assert used[("cpu", "core/0")]["added_to_total"] is False
    assert contract.SOURCE_ESTIMATED not in {s["source"] for s in used.values()}
    said = notes_text(report.warnings)
    assert any("estimated power excluded" in w for w in said), said
    methods = dict(zip(report.breakdown["entity"], report.breakdown["method"], strict=True))
    assert methods["package/0"].startswith("counter") and methods[gpu_key].startswith("counter")
    row = report.windows.iloc[0]
    assert row["status"] == "ok"
    # The fakes' powers, within the sampling's edge error (a 50 ms tick at each edge).
    assert row["cpu_power_w"] == pytest.approx(CPU_W, rel=0.06)
    assert row["gpu_power_w"] == pytest.approx(2 * GPU_W, rel=0.06)
