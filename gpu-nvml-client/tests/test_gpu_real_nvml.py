"""Against the real NVML and a real GPU (marked ``gpu``; skipped where NVML cannot start)."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
from base_monitoring_client import Sample
from gpu_nvml_client import DEVICES_METRIC, GpuNvmlClient
from wattpush_testing import collected

pytestmark = pytest.mark.gpu


@pytest.fixture
def real_client() -> Iterator[GpuNvmlClient]:
    client = GpuNvmlClient()
    client.setup()
    try:
        yield client
    finally:
        client.close()


def _of(samples: list[Sample], name: str, gpu: str) -> list[Sample]:
    return [s for s in samples if s.name == name and s.labels.get("gpu") == gpu]


def test_every_gpu_reports_energy_power_and_sane_gauges(real_client: GpuNvmlClient) -> None:
    first = collected(real_client, time.time_ns())
    threading.Event().wait(1.0)
    second = collected(real_client, time.time_ns())
    count = len(real_client.gpus)
    assert count >= 1
    assert [s.value for s in second if s.name == DEVICES_METRIC] == [float(count)]
    for gpu in real_client.gpus:
        index = str(gpu.index)
        energy = _of(first, "gpu_energy_joules_total", index)
        later = _of(second, "gpu_energy_joules_total", index)
        assert energy and later, f"no energy for GPU {index}"
        assert later[0].value >= energy[0].value
        assert energy[0].labels["uuid"].startswith(("GPU-", "MIG-"))
        assert energy[0].labels["name"]
        power = _of(second, "gpu_power_watts", index)
        assert power and 0 < power[0].value < 2000
        for name, low, high in (
            ("gpu_temperature_celsius", 0, 120),
            ("gpu_utilization_ratio", 0, 1),
            ("gpu_encoder_utilization_ratio", 0, 1),
            ("gpu_power_limit_watts", 1, 2000),
        ):
            for s in _of(second, name, index):
                assert low <= s.value <= high, (name, s.value)


def _has_nvenc() -> bool:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return False
    out = subprocess.run(
        [ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True, check=False
    )
    return "h264_nvenc" in out.stdout


_NO_NVENC = ("No capable devices found", "unsupported device", "No NVENC capable devices")


@pytest.mark.slow
@pytest.mark.integration
def test_nvenc_transcode_shows_encoder_load_and_rising_energy(
    real_client: GpuNvmlClient,
) -> None:
    if not _has_nvenc():
        pytest.skip("this ffmpeg has no h264_nvenc encoder")
    seen: list[Sample] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            seen.extend(collected(real_client, time.time_ns()))

    sampler = threading.Thread(target=sample, name="test-gpu-sampler", daemon=True)
    sampler.start()
    ffmpeg = subprocess.Popen(
        [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
            "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=60",
            "-t", "8", "-c:v", "h264_nvenc", "-preset", "p4", "-b:v", "8M",
            "-f", "null", "-",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        _, err = ffmpeg.communicate(timeout=120)
    finally:
        if ffmpeg.poll() is None:
            ffmpeg.kill()
            ffmpeg.wait()
        threading.Event().wait(0.5)
        stop.set()
        sampler.join(5)
    if ffmpeg.returncode != 0 and any(text in err for text in _NO_NVENC):
        pytest.skip(f"this GPU has no NVENC engine (H100/A100 have none): {err.strip()}")
    assert ffmpeg.returncode == 0, err

    # ffmpeg encodes on the first visible GPU unless told otherwise
    gpu = str(real_client.gpus[0].index)
    encoder = [s.value for s in _of(seen, "gpu_encoder_utilization_ratio", gpu)]
    energy = [s.value for s in _of(seen, "gpu_energy_joules_total", gpu) if not s.is_stale]
    sessions = [s.value for s in _of(seen, "gpu_encoder_sessions", gpu)]
    print(
        f"encoder max {max(encoder, default=0):.2f}, sessions max {max(sessions, default=0)}, "
        f"energy {energy[0]:.1f} -> {energy[-1]:.1f} J over {len(energy)} samples"
    )
    assert max(encoder) > 0
    assert energy[-1] > energy[0]
    assert energy == sorted(energy)
