"""The series contract: every metric name, label key and ``source`` value wattpush pushes.

Clients import their names from here, the advisor reads by them, and test data is generated
from them; a name spelled anywhere else is a bug (a test greps the component packages). The
framework's own self-metrics (``monitoring_client_*``) are declared in ``selfmetrics``.

``source`` says how an energy or power figure was obtained. When one power domain (a RAPL zone
of a socket, a GPU) has figures from several sources, the reader uses the best by
``SourceKind``: a hardware energy counter beats a hardware power reading, which beats power
integrated by the client, which beats a model's estimate. Units are in the names; counters end
in ``_total``. Every series also carries ``job`` and ``instance`` (added by the framework).

This module does no I/O and imports nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

# -- sources -------------------------------------------------------------------------------


class SourceKind(enum.IntEnum):
    """How a figure was obtained; lower is better (the precedence)."""

    HARDWARE_COUNTER = 0  # an energy counter the hardware keeps (RAPL, NVML total energy)
    HARDWARE_POWER = 1  # a power reading the hardware reports (NVML power)
    INTEGRATED = 2  # power readings integrated by the client into energy
    ESTIMATE = 3  # a model (CPU time x watts per core), not a measurement


SOURCE_RAPL = "rapl"  # cpu-rapl-client's own powercap sysfs reader
SOURCE_PYJOULES = "pyjoules"  # the same counters through pyJoules (RAPL_BACKEND=pyjoules)
SOURCE_ESTIMATED = "estimated"  # host CPU time x a per-core power model
SOURCE_NVML_ENERGY_COUNTER = "nvml_energy_counter"  # nvmlDeviceGetTotalEnergyConsumption
SOURCE_NVML_POWER_INSTANT = "nvml_power_instant"  # field NVML_FI_DEV_POWER_INSTANT
SOURCE_NVML_POWER_USAGE = "nvml_power_usage"  # nvmlDeviceGetPowerUsage (1 s average, Ampere+)
SOURCE_INTEGRATED_POWER = "integrated_power"  # trapezoid integral of gpu_power_watts

SOURCES: Mapping[str, SourceKind] = {
    SOURCE_RAPL: SourceKind.HARDWARE_COUNTER,
    SOURCE_PYJOULES: SourceKind.HARDWARE_COUNTER,
    SOURCE_NVML_ENERGY_COUNTER: SourceKind.HARDWARE_COUNTER,
    SOURCE_NVML_POWER_INSTANT: SourceKind.HARDWARE_POWER,
    SOURCE_NVML_POWER_USAGE: SourceKind.HARDWARE_POWER,
    SOURCE_INTEGRATED_POWER: SourceKind.INTEGRATED,
    SOURCE_ESTIMATED: SourceKind.ESTIMATE,
}
# Within a kind: the client's own reader before a library's, the instantaneous power field
# before the 1 s average. Unknown values rank after every known measurement, before estimates.
_SOURCE_ORDER = (
    SOURCE_RAPL,
    SOURCE_NVML_ENERGY_COUNTER,
    SOURCE_PYJOULES,
    SOURCE_NVML_POWER_INSTANT,
    SOURCE_NVML_POWER_USAGE,
    SOURCE_INTEGRATED_POWER,
)


def source_rank(source: str) -> tuple[int, int, str]:
    """Sort key: the best source first (see ``SourceKind``); unknown values after measured
    ones and before the estimate."""
    kind = SOURCES.get(source)
    if kind is None:
        return (SourceKind.INTEGRATED, len(_SOURCE_ORDER), source)
    order = _SOURCE_ORDER.index(source) if source in _SOURCE_ORDER else len(_SOURCE_ORDER)
    return (int(kind), order, source)


def is_estimate(source: str) -> bool:
    return SOURCES.get(source) is SourceKind.ESTIMATE


# -- metrics -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One metric: its name, type and the label keys its series carry (besides job and
    instance); ``sources`` lists the ``source`` values it may carry (empty: no source)."""

    name: str
    type: str  # counter | gauge | info
    labels: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    help: str = ""


# Label keys
ZONE, SOCKET, SOURCE = "zone", "socket", "source"
GPU, UUID, GPU_NAME = "gpu", "uuid", "name"
CONTAINER, IMAGE, SERVICE = "container", "image", "service"
PROCESS, MODE = "process", "mode"
RUN_ID, SCENARIO, PHASE, REPEAT = "run_id", "scenario", "phase", "repeat"
STREAM, OUTPUT, RUNG, QUALITY_METRIC_LABEL, SCOPE = "stream", "output", "rung", "metric", "scope"

CPU_SOURCES = (SOURCE_RAPL, SOURCE_PYJOULES, SOURCE_ESTIMATED)
_CPU_LABELS = (ZONE, SOCKET, SOURCE)
_GPU_LABELS = (GPU, UUID, GPU_NAME)
_CONTAINER_LABELS = (CONTAINER, IMAGE, SERVICE)

# cpu-rapl-client
CPU_ENERGY = Metric(
    "cpu_energy_joules_total", "counter", _CPU_LABELS, CPU_SOURCES, "Energy per RAPL zone."
)
CPU_POWER = Metric(
    "cpu_power_watts", "gauge", _CPU_LABELS, CPU_SOURCES, "Δenergy/Δt per RAPL zone."
)

# gpu-nvml-client
GPU_ENERGY = Metric(
    "gpu_energy_joules_total",
    "counter",
    (*_GPU_LABELS, SOURCE),
    (SOURCE_NVML_ENERGY_COUNTER, SOURCE_INTEGRATED_POWER),
    "GPU energy: NVML's total energy counter, else integrated power.",
)
GPU_POWER = Metric(
    "gpu_power_watts",
    "gauge",
    (*_GPU_LABELS, SOURCE),
    (SOURCE_NVML_POWER_INSTANT, SOURCE_NVML_POWER_USAGE),
    "GPU power as NVML reports it.",
)
GPU_POWER_LIMIT = Metric("gpu_power_limit_watts", "gauge", _GPU_LABELS)
GPU_UTILIZATION = Metric("gpu_utilization_ratio", "gauge", _GPU_LABELS)
GPU_MEMORY_UTILIZATION = Metric("gpu_memory_utilization_ratio", "gauge", _GPU_LABELS)
GPU_ENCODER_UTILIZATION = Metric("gpu_encoder_utilization_ratio", "gauge", _GPU_LABELS)
GPU_DECODER_UTILIZATION = Metric("gpu_decoder_utilization_ratio", "gauge", _GPU_LABELS)
GPU_ENCODER_SESSIONS = Metric("gpu_encoder_sessions", "gauge", _GPU_LABELS)
GPU_MEMORY_USED = Metric("gpu_memory_used_bytes", "gauge", _GPU_LABELS)
GPU_TEMPERATURE = Metric("gpu_temperature_celsius", "gauge", _GPU_LABELS)
GPU_SM_CLOCK = Metric("gpu_sm_clock_hertz", "gauge", _GPU_LABELS)
GPU_DEVICES = Metric("gpu_nvml_devices", "gauge", (), (), "GPUs the client samples.")

# docker-overhead-client
CONTAINER_CPU = Metric("container_cpu_seconds_total", "counter", _CONTAINER_LABELS)
CONTAINER_MEMORY = Metric("container_memory_bytes", "gauge", _CONTAINER_LABELS)
CONTAINER_RX = Metric("container_network_receive_bytes_total", "counter", _CONTAINER_LABELS)
CONTAINER_TX = Metric("container_network_transmit_bytes_total", "counter", _CONTAINER_LABELS)
ENGINE_CPU = Metric("docker_engine_cpu_seconds_total", "counter", (PROCESS,))
ENGINE_MEMORY = Metric("docker_engine_memory_bytes", "gauge", (PROCESS,))
HOST_CPU = Metric("host_cpu_seconds_total", "counter", (MODE,))
HOST_CPU_IDLE_MODES = ("idle", "iowait")  # every other mode is busy

# every client
HOST_INFO = Metric(
    "wattpush_host_info",
    "info",
    ("cpu_model", "cores", "virtualized", "hypervisor", "gpu_model"),
    (),
    "What machine the client runs on.",
)

# ffmpeg-runner (the window model itself is ffmpeg_runner.contract's)
FFMPEG_INFO = Metric(
    "ffmpeg_scenario_info",
    "info",
    (
        RUN_ID,
        SCENARIO,
        PHASE,
        "encoder",
        "preset",
        "ladder",
        "streams",
        "bitrate",
        REPEAT,
        "fps",
        "rate_control",
        "quality_value",
    ),
    (),
    "1 for exactly the duration of a window, then a stale marker.",
)
_OUTPUT_LABELS = (RUN_ID, SCENARIO, REPEAT, STREAM, OUTPUT)
FFMPEG_FRAMES = Metric("ffmpeg_frames_total", "counter", _OUTPUT_LABELS)
FFMPEG_FPS = Metric("ffmpeg_fps", "gauge", _OUTPUT_LABELS)
FFMPEG_SPEED = Metric("ffmpeg_speed_ratio", "gauge", _OUTPUT_LABELS)
FFMPEG_QUALITY = Metric(
    "ffmpeg_output_quality",
    "gauge",
    (RUN_ID, SCENARIO, REPEAT, RUNG, QUALITY_METRIC_LABEL),
    (),
    "Mean score per output, measured after the window; one sample at the window's end.",
)
FFMPEG_OUTPUT_BITRATE = Metric(
    "ffmpeg_output_bitrate_bits_per_second", "gauge", (RUN_ID, SCENARIO, REPEAT, RUNG)
)
FFMPEG_WINDOW_CPU = Metric(
    "ffmpeg_window_cpu_seconds",
    "gauge",
    (RUN_ID, SCENARIO, PHASE, REPEAT, SCOPE),
    (),
    "CPU seconds used inside one window, by scope; one sample at the window's end.",
)
# ffmpeg_window_cpu_seconds' ``scope`` values: the window's ffmpeg processes (all threads), the
# host's busy and total CPU time (/proc/stat), the runner's own cgroup (in a container).
SCOPE_TRANSCODE = "transcode"
SCOPE_HOST_BUSY = "host_busy"
SCOPE_HOST_TOTAL = "host_total"
SCOPE_CGROUP = "cgroup"
WINDOW_CPU_SCOPES = (SCOPE_TRANSCODE, SCOPE_HOST_BUSY, SCOPE_HOST_TOTAL, SCOPE_CGROUP)

METRICS: Mapping[str, Metric] = {
    m.name: m
    for m in (
        CPU_ENERGY,
        CPU_POWER,
        GPU_ENERGY,
        GPU_POWER,
        GPU_POWER_LIMIT,
        GPU_UTILIZATION,
        GPU_MEMORY_UTILIZATION,
        GPU_ENCODER_UTILIZATION,
        GPU_DECODER_UTILIZATION,
        GPU_ENCODER_SESSIONS,
        GPU_MEMORY_USED,
        GPU_TEMPERATURE,
        GPU_SM_CLOCK,
        GPU_DEVICES,
        CONTAINER_CPU,
        CONTAINER_MEMORY,
        CONTAINER_RX,
        CONTAINER_TX,
        ENGINE_CPU,
        ENGINE_MEMORY,
        HOST_CPU,
        HOST_INFO,
        FFMPEG_INFO,
        FFMPEG_FRAMES,
        FFMPEG_FPS,
        FFMPEG_SPEED,
        FFMPEG_QUALITY,
        FFMPEG_OUTPUT_BITRATE,
        FFMPEG_WINDOW_CPU,
    )
}
