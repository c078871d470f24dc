"""gpu-nvml-client over the test fake NVML (two GPUs), run as a console script would be.

For ``bench/client_cpu_bench.py --parts clients``: the framework's and the client's cost per
tick without a GPU. The fake answers each NVML call from a Python object, so real NVML calls
(a driver ioctl each) cost more than these.

    .venv/bin/python bench/gpu_fake_client.py   # settings from the environment, as the client
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from base_monitoring_client import ClientConfig
from base_monitoring_client.cli import run_client
from gpu_nvml_client import GpuNvmlClient

try:
    from wattpush_testing.nvml import FakeGpu, FakeNvml
except ImportError:  # trees before the test helpers moved (e.g. 82c1850)
    from gpu_nvml_client.testing import FakeGpu, FakeNvml  # type: ignore[no-redef]


class FakeGpuClient(GpuNvmlClient):
    @classmethod
    def from_settings(cls, config: ClientConfig, values: Mapping[str, Any]) -> FakeGpuClient:
        gpus = [FakeGpu(f"GPU-0000000{i}-fake", power_mw=40_000.0 + i) for i in range(2)]
        return cls(FakeNvml(gpus))


if __name__ == "__main__":
    sys.exit(run_client(FakeGpuClient))
