"""The client end to end: through the real Pipeline into a real Prometheus, and as a process.

The fake NVML is injected in-process through ``Pipeline`` rather than selected by an
environment variable in a subprocess: no test-only switch exists in the shipped code, and the
test can change the fake (draw power, lose a GPU) while the pipeline's own threads run.
The process tests use the real NVML, which is missing here: that is what they test.
"""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from base_monitoring_client.config import ClientConfig
from base_monitoring_client.pipeline import Pipeline
from gpu_nvml_client import GpuNvmlClient
from wattpush_testing import PrometheusProcess, free_port, process_env, wait_until
from wattpush_testing.gpu import real_nvml_problem
from wattpush_testing.nvml import FakeNvml, fake_gpus

pytestmark = pytest.mark.integration


def _env(**extra: str) -> dict[str, str]:
    return process_env("gpu-nvml-client", drop_prefixes=("GPU_OPTIONAL",), **extra)


def _values(result: list[dict]) -> list[float]:  # type: ignore[type-arg]
    return [float(v) for _, v in result[0]["values"]] if result else []


def test_fake_gpus_through_the_pipeline_into_prometheus(tmp_path: Path) -> None:
    nvml = FakeNvml(fake_gpus(2, name="NVIDIA Fake L4"))
    nvml.gpus[1].encoder_percent = 45
    nvml.gpus[1].encoder_sessions = 2
    client = GpuNvmlClient(nvml)
    with PrometheusProcess(tmp_path / "prom") as prom:
        config = ClientConfig(
            remote_write_url=prom.write_url,
            sample_interval_s=0.05,
            push_interval_s=0.2,
            instance="gpu-test-host",
        )
        pipeline = Pipeline(client, config)
        start_s = time.time()
        pipeline.start()
        try:
            # 1 s of 150 W on GPU 0 and 60 W on GPU 1 in 20 steps, each read by the sampler
            # before the next (however late a loaded machine runs it): every step is stored.
            assert read_again(nvml, 20), "the sampler never read the GPUs"
            for _ in range(20):
                nvml.run(0, 0.05, 150.0)
                nvml.run(1, 0.05, 60.0)
                assert read_again(nvml, 20), "the sampler stopped reading the GPUs"
            nvml.gpus[1].lost = True
            assert read_again(nvml, 20, (1,), "power_instant_mw"), "GPU 1's loss was not seen"
            assert pipeline.flush(timeout=20)
        finally:
            pipeline.stop()
        end_s = time.time() + 0.001

        energy = prom.query("gpu_energy_joules_total", at=end_s)
        assert {r["metric"]["gpu"] for r in energy} == {"0"}  # GPU 1 ended by a stale marker
        labels = energy[0]["metric"]
        assert labels == {
            "__name__": "gpu_energy_joules_total",
            "job": "gpu-nvml-client",
            "instance": "gpu-test-host",
            "gpu": "0",
            "uuid": nvml.gpus[0].uuid,
            "name": "NVIDIA Fake L4",
            "source": "nvml_energy_counter",
        }
        gpu0 = _values(prom.raw_samples('gpu_energy_joules_total{gpu="0"}', start_s - 1, end_s))
        gpu1 = _values(prom.raw_samples('gpu_energy_joules_total{gpu="1"}', start_s - 1, end_s))
        assert gpu0 == sorted(gpu0) and gpu1 == sorted(gpu1)
        # 1000 J at the start, then every step of 7.5 J (GPU 0) and 3 J (GPU 1).
        assert sorted(set(gpu0)) == pytest.approx([1000 + 7.5 * k for k in range(21)])
        assert sorted(set(gpu1)) == pytest.approx([1000 + 3.0 * k for k in range(21)])

        enc = prom.raw_samples('gpu_encoder_utilization_ratio{gpu="1"}', start_s - 1, end_s)
        assert set(_values(enc)) == {0.45}
        power = prom.query('gpu_power_watts{gpu="0"}', at=end_s)
        assert power[0]["metric"]["source"] == "nvml_power_instant"
        assert math.isclose(float(power[0]["value"][1]), 150.0)
        devices = _values(prom.raw_samples("gpu_nvml_devices", start_s - 1, end_s))
        assert devices[0] == 2.0 and devices[-1] == 1.0
        # the lost GPU ended: no metric of it is current, while GPU 0's are
        assert prom.query('{gpu="1"}', at=end_s) == []
        assert len(prom.query('{gpu="0"}', at=end_s)) == 11


def read_again(
    nvml: FakeNvml, timeout: float, gpus: tuple[int, ...] = (0, 1), call: str = "total_energy_mj"
) -> bool:
    """Wait until the sampler has made ``call`` on each of ``gpus`` after this one: what the
    test set before is then in that tick (the energy counter is read after the power, and a
    lost GPU fails at its first call, the power)."""
    before = {i: nvml.calls_to(call, i) for i in gpus}
    return bool(
        wait_until(
            lambda: all(nvml.calls_to(call, i) > n for i, n in before.items()),
            timeout,
            interval=0.01,
        )
    )


def _nvml_missing() -> bool:
    return real_nvml_problem() is not None


@pytest.mark.skipif(not _nvml_missing(), reason="NVML works here; exit 3 needs it missing")
def test_process_exits_3_with_a_fix_when_nvml_is_missing() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gpu_nvml_client", "--remote-write-url", "http://127.0.0.1:9/w"],
        env=_env(),
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3, proc.stderr
    assert "libnvidia-ml.so.1" in proc.stderr
    assert "GPU_OPTIONAL=true" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_invalid_gpu_settings_exit_2_naming_each() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gpu_nvml_client", "--gpu-devices", "0,banana"],
        env=_env(GPU_OPTIONAL="maybe"),
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "GPU_OPTIONAL='maybe'" in proc.stderr
    assert "--gpu-devices='0,banana'" in proc.stderr and "banana" in proc.stderr


@pytest.mark.skipif(not _nvml_missing(), reason="NVML works here; idle mode needs it missing")
def test_gpu_optional_process_idles_healthy_and_stops_on_sigterm(tmp_path: Path) -> None:
    health_port = free_port()
    with PrometheusProcess(tmp_path / "prom") as prom:
        start_s = time.time()
        proc = subprocess.Popen(
            [sys.executable, "-m", "gpu_nvml_client"],
            env=_env(
                GPU_OPTIONAL="true",
                REMOTE_WRITE_URL=prom.write_url,
                SAMPLE_INTERVAL_S="0.1",
                PUSH_INTERVAL_S="0.3",
                HEALTH_PORT=str(health_port),
                HEALTH_ADDRESS="127.0.0.1",
                INSTANCE="no-gpu-host",
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:

            def healthz() -> dict | None:  # type: ignore[type-arg]
                try:
                    resp = requests.get(f"http://127.0.0.1:{health_port}/healthz", timeout=1)
                except requests.RequestException:
                    return None
                return dict(resp.json()) if resp.status_code == 200 else None

            health = wait_until(healthz, timeout=20)
            assert health is not None and health["status"] == "ok", health
            stored = wait_until(
                lambda: prom.query('gpu_nvml_devices{instance="no-gpu-host"}'), timeout=20
            )
            assert stored and float(stored[0]["value"][1]) == 0.0
            assert stored[0]["metric"]["job"] == "gpu-nvml-client"
            assert proc.poll() is None  # still running
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                out, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
        assert proc.returncode == 0, out
        assert "GPU_OPTIONAL=true" in out and "idle" in out
        samples = prom.raw_samples("gpu_nvml_devices", start_s - 1, time.time())
        assert samples and {v for _, v in samples[0]["values"]} == {"0"}
