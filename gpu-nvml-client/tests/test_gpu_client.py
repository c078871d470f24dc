"""GpuNvmlClient against the fake NVML: metrics, energy, degradation, loss, missing driver."""

from __future__ import annotations

import math

import pytest
from base_monitoring_client import DeviceUnavailableError
from gpu_nvml_client import (
    DEVICES_METRIC,
    SOURCE_ENERGY_COUNTER,
    SOURCE_INTEGRATED,
    SOURCE_POWER_INSTANT,
    SOURCE_POWER_USAGE,
    GpuNvmlClient,
    NvmlUnavailableError,
)
from gpu_nvml_client.errors import (
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_LIB_RM_VERSION_MISMATCH,
    NVML_ERROR_LIBRARY_NOT_FOUND,
    NVML_ERROR_NO_PERMISSION,
    NVML_ERROR_TIMEOUT,
    NVML_ERROR_UNKNOWN,
    NvmlCallError,
)
from wattpush_testing import FakeClock
from wattpush_testing.gpu import NOW_NS, Ticker, by_series, labels_of, same, stale, value
from wattpush_testing.nvml import FakeGpu, FakeNvml, fake_gpus

GAUGES = (
    "gpu_power_limit_watts",
    "gpu_utilization_ratio",
    "gpu_memory_utilization_ratio",
    "gpu_encoder_utilization_ratio",
    "gpu_decoder_utilization_ratio",
    "gpu_encoder_sessions",
    "gpu_memory_used_bytes",
    "gpu_temperature_celsius",
    "gpu_sm_clock_hertz",
)
ALL_METRICS = ("gpu_energy_joules_total", "gpu_power_watts", *GAUGES)


def started(nvml: FakeNvml, clock: FakeClock, **kwargs: object) -> Ticker:
    client = GpuNvmlClient(nvml, clock=clock, **kwargs)  # type: ignore[arg-type]
    client.setup()
    return Ticker(client, clock)


# -- metrics per GPU ----------------------------------------------------------------------------


def test_every_metric_per_gpu_with_labels_and_base_units(clock: FakeClock) -> None:
    gpus = fake_gpus(2)
    gpus[1] = FakeGpu(
        uuid="GPU-11111111-2222-3333-4444-555555555555",
        name="NVIDIA L40S",
        energy_mj=2_500_000,
        power_mw=123_456.0,
        power_limit_mw=350_000.0,
        gpu_percent=42,
        memory_percent=7,
        encoder_percent=63,
        decoder_percent=12,
        encoder_sessions=3,
        memory_used=3 * 1024**3,
        temperature=61,
        sm_clock_mhz=2520,
    )
    ticker = started(FakeNvml(gpus), clock)
    samples = ticker.tick()

    series = by_series(samples)
    for gpu in ("0", "1"):
        for metric in ALL_METRICS:
            assert (metric, gpu) in series, f"{metric} missing for GPU {gpu}"
    assert series[(DEVICES_METRIC, "")].value == 2
    assert len(samples) == 2 * len(ALL_METRICS) + 1
    assert all(s.timestamp_ms == NOW_NS // 1_000_000 for s in samples)

    assert labels_of(samples, "gpu_temperature_celsius", "1") == {
        "gpu": "1",
        "uuid": "GPU-11111111-2222-3333-4444-555555555555",
        "name": "NVIDIA L40S",
    }
    assert labels_of(samples, "gpu_power_watts", "1")["source"] == SOURCE_POWER_INSTANT
    assert labels_of(samples, "gpu_energy_joules_total", "1")["source"] == SOURCE_ENERGY_COUNTER
    expected = {
        "gpu_energy_joules_total": 2500.0,
        "gpu_power_watts": 123.456,
        "gpu_power_limit_watts": 350.0,
        "gpu_utilization_ratio": 0.42,
        "gpu_memory_utilization_ratio": 0.07,
        "gpu_encoder_utilization_ratio": 0.63,
        "gpu_decoder_utilization_ratio": 0.12,
        "gpu_encoder_sessions": 3,
        "gpu_memory_used_bytes": 3 * 1024**3,
        "gpu_temperature_celsius": 61,
        "gpu_sm_clock_hertz": 2.52e9,
    }
    for metric, want in expected.items():
        assert same(value(samples, metric, "1"), want), metric
    # GPU 0 keeps its own readings
    assert same(value(samples, "gpu_energy_joules_total", "0"), 1000.0)


def test_energy_counter_starts_at_driver_count_and_follows_it(
    two_gpus: FakeNvml, clock: FakeClock
) -> None:
    ticker = started(two_gpus, clock)
    first = value(ticker.tick(), "gpu_energy_joules_total")
    two_gpus.run(0, seconds=0.1, watts=200.0)
    second = value(ticker.tick(), "gpu_energy_joules_total")
    assert same(first, 1000.0)
    assert same(second, 1020.0)  # 200 W x 0.1 s
    assert same(value(ticker.tick(), "gpu_energy_joules_total", "1"), 1000.0)


def test_energy_counter_reset_keeps_the_total_monotonic(
    two_gpus: FakeNvml, clock: FakeClock, gpu_logs: pytest.LogCaptureFixture
) -> None:
    ticker = started(two_gpus, clock)
    ticker.tick()
    two_gpus.run(0, 1.0, 100.0)  # 1100 J
    assert same(value(ticker.tick(), "gpu_energy_joules_total"), 1100.0)
    two_gpus.gpus[0].energy_mj = 5_000  # driver reloaded: counter restarted, 5 J since
    after_reset = value(ticker.tick(), "gpu_energy_joules_total")
    two_gpus.run(0, 1.0, 100.0)
    later = value(ticker.tick(), "gpu_energy_joules_total")
    assert same(after_reset, 1105.0)
    assert same(later, 1205.0)
    assert "energy counter went back" in gpu_logs.text
    # GPU 1's counter was not touched
    assert same(value(ticker.tick(), "gpu_energy_joules_total", "1"), 1000.0)


def test_energy_falls_back_to_integrated_power_when_counter_unsupported(
    clock: FakeClock, gpu_logs: pytest.LogCaptureFixture
) -> None:
    gpu = FakeGpu(uuid="GPU-old", name="Tesla P4", unsupported={"total_energy_mj"})
    nvml = FakeNvml([gpu])
    ticker = started(nvml, clock)
    readings = []
    for watts in (50.0, 70.0, 70.0, 30.0):
        nvml.run(0, ticker.interval_s, watts)
        samples = ticker.tick()
        readings.append(value(samples, "gpu_energy_joules_total", source=SOURCE_INTEGRATED))
    # trapezoids of 0.1 s: (50+70)/2*0.1=6, (70+70)/2*0.1=7, (70+30)/2*0.1=5
    assert readings[0] == 0.0
    assert [round(r or 0, 9) for r in readings[1:]] == [6.0, 13.0, 18.0]
    assert labels_of(samples, "gpu_energy_joules_total")["source"] == SOURCE_INTEGRATED
    assert nvml.calls_to("total_energy_mj", 0) == 1  # never asked again
    lines = [r for r in gpu_logs.records if "gpu_energy_joules_total unavailable" in r.message]
    assert len(lines) == 1
    assert "integrating gpu_power_watts" in lines[0].message


def test_integration_skips_ticks_without_power_and_bridges_the_gap(
    clock: FakeClock,
) -> None:
    gpu = FakeGpu(uuid="GPU-old", unsupported={"total_energy_mj", "power_instant_mw"})
    nvml = FakeNvml([gpu])
    ticker = started(nvml, clock)
    nvml.run(0, 0, 100.0)
    ticker.tick()
    gpu.failures["power_usage_mw"] = NVML_ERROR_TIMEOUT
    missing = ticker.tick()
    assert value(missing, "gpu_energy_joules_total") is None
    del gpu.failures["power_usage_mw"]
    nvml.run(0, 0, 100.0)
    # 0.2 s at 100 W since the last good reading
    assert same(value(ticker.tick(), "gpu_energy_joules_total"), 20.0)


def test_power_uses_instant_field_and_falls_back_to_power_usage(
    clock: FakeClock, gpu_logs: pytest.LogCaptureFixture
) -> None:
    gpus = fake_gpus(2)
    gpus[0].power_usage_mw = 80_000.0  # a lagging 1 s average
    gpus[0].power_mw = 95_000.0
    gpus[1].unsupported.add("power_instant_mw")  # older driver: no instant field
    gpus[1].power_usage_mw = 60_000.0
    nvml = FakeNvml(gpus)
    ticker = started(nvml, clock)
    for _ in range(3):
        samples = ticker.tick()
    assert same(value(samples, "gpu_power_watts", "0", source=SOURCE_POWER_INSTANT), 95.0)
    assert same(value(samples, "gpu_power_watts", "1", source=SOURCE_POWER_USAGE), 60.0)
    assert nvml.calls_to("power_usage_mw", 0) == 0
    assert nvml.calls_to("power_instant_mw", 1) == 1
    lines = [r for r in gpu_logs.records if "gpu_power_watts unavailable" in r.message]
    assert len(lines) == 1 and "GPU 1" in lines[0].message


@pytest.mark.parametrize(
    ("method", "metrics"),
    [
        ("power_limit_mw", ("gpu_power_limit_watts",)),
        ("utilization_percent", ("gpu_utilization_ratio", "gpu_memory_utilization_ratio")),
        ("encoder_utilization_percent", ("gpu_encoder_utilization_ratio",)),
        ("decoder_utilization_percent", ("gpu_decoder_utilization_ratio",)),
        ("encoder_session_count", ("gpu_encoder_sessions",)),
        ("memory_used_bytes", ("gpu_memory_used_bytes",)),
        ("temperature_celsius", ("gpu_temperature_celsius",)),
        ("sm_clock_mhz", ("gpu_sm_clock_hertz",)),
    ],
)
def test_not_supported_query_drops_only_its_metrics_with_one_log_line(
    method: str,
    metrics: tuple[str, ...],
    two_gpus: FakeNvml,
    clock: FakeClock,
    gpu_logs: pytest.LogCaptureFixture,
) -> None:
    two_gpus.gpus[0].unsupported.add(method)
    ticker = started(two_gpus, clock)
    for _ in range(5):
        series = by_series(ticker.tick())
    for metric in ALL_METRICS:
        assert (metric, "1") in series
        assert ((metric, "0") in series) == (metric not in metrics), metric
    assert two_gpus.calls_to(method, 0) == 1
    assert two_gpus.calls_to(method, 1) == 5
    lines = [r for r in gpu_logs.records if "unavailable" in r.message]
    assert len(lines) == 1
    assert "GPU 0" in lines[0].message and ", ".join(metrics) in lines[0].message


def test_every_query_unsupported_still_reports_the_gpu_without_crashing(
    clock: FakeClock, gpu_logs: pytest.LogCaptureFixture
) -> None:
    methods = {
        "total_energy_mj",
        "power_instant_mw",
        "power_usage_mw",
        "power_limit_mw",
        "utilization_percent",
        "encoder_utilization_percent",
        "decoder_utilization_percent",
        "encoder_session_count",
        "memory_used_bytes",
        "temperature_celsius",
        "sm_clock_mhz",
    }
    nvml = FakeNvml([FakeGpu(uuid="GPU-x", unsupported=set(methods))])
    ticker = started(nvml, clock)
    for _ in range(3):
        samples = ticker.tick()
    assert [(s.name, s.value) for s in samples] == [(DEVICES_METRIC, 1.0)]
    assert sum(1 for r in gpu_logs.records if "unavailable" in r.message) == len(methods)


def test_mig_mode_is_named_in_the_unsupported_log_line(
    clock: FakeClock, gpu_logs: pytest.LogCaptureFixture
) -> None:
    gpu = FakeGpu(
        uuid="GPU-a100",
        name="NVIDIA A100-SXM4-40GB",
        mig=True,
        unsupported={"utilization_percent", "encoder_utilization_percent"},
    )
    ticker = started(FakeNvml([gpu]), clock)
    samples = ticker.tick()
    assert value(samples, "gpu_energy_joules_total") is not None
    assert value(samples, "gpu_utilization_ratio") is None
    mig_lines = [r for r in gpu_logs.records if "MIG mode is enabled" in r.message]
    assert len(mig_lines) == 2
    assert any("in MIG mode" in r.message for r in gpu_logs.records)


def test_transient_failure_skips_one_tick_logs_once_and_recovers(
    two_gpus: FakeNvml, clock: FakeClock, gpu_logs: pytest.LogCaptureFixture
) -> None:
    ticker = started(two_gpus, clock)
    ticker.tick()
    two_gpus.gpus[0].failures["temperature_celsius"] = NVML_ERROR_UNKNOWN
    failing = [ticker.tick() for _ in range(3)]
    del two_gpus.gpus[0].failures["temperature_celsius"]
    recovered = ticker.tick()

    assert value(failing[0], "gpu_temperature_celsius") is None
    # the series pauses with one stale marker, then comes back
    markers = stale(failing[0])
    assert [(s.name, s.labels["gpu"]) for s in markers] == [("gpu_temperature_celsius", "0")]
    assert not stale(failing[1]) and not stale(failing[2])
    assert value(recovered, "gpu_temperature_celsius") == 40.0
    assert two_gpus.calls_to("temperature_celsius", 0) == 5  # retried every tick
    lines = [r for r in gpu_logs.records if "failed" in r.message]
    assert len(lines) == 1 and "Unknown Error" in lines[0].message


# -- GPU lost -----------------------------------------------------------------------------------


def test_gpu_lost_mid_run_ends_its_series_with_stale_markers_once(
    two_gpus: FakeNvml, clock: FakeClock, gpu_logs: pytest.LogCaptureFixture
) -> None:
    ticker = started(two_gpus, clock)
    before = ticker.tick()
    gpu1_series = {
        (s.name, tuple(sorted(s.labels.items()))) for s in before if s.labels.get("gpu") == "1"
    }
    assert len(gpu1_series) == len(ALL_METRICS)

    two_gpus.gpus[1].lost = True
    lost_tick_ms = ticker.now_ms
    lost_tick = ticker.tick()
    after = [ticker.tick() for _ in range(3)]

    markers = stale(lost_tick)
    assert {(s.name, tuple(sorted(s.labels.items()))) for s in markers} == gpu1_series
    assert all(s.timestamp_ms == lost_tick_ms for s in markers)
    assert all(math.isnan(s.value) for s in markers)
    assert not any(s.labels.get("gpu") == "1" and not s.is_stale for s in lost_tick)
    # GPU 0 goes on; no more markers, no more calls to the lost GPU
    for samples in after:
        assert not stale(samples)
        assert value(samples, "gpu_power_watts", "0", source=SOURCE_POWER_INSTANT) == 30.0
        assert value(samples, DEVICES_METRIC, "") == 1.0
    calls_after_loss = sum(n for (_, i), n in two_gpus.calls.items() if i == 1)
    ticker.tick()
    assert sum(n for (_, i), n in two_gpus.calls.items() if i == 1) == calls_after_loss
    lost_lines = [r for r in gpu_logs.records if "is lost" in r.message]
    assert len(lost_lines) == 1 and "dmesg" in lost_lines[0].message


def test_lost_in_the_middle_of_a_tick_discards_that_gpus_partial_reading(
    two_gpus: FakeNvml, clock: FakeClock
) -> None:
    ticker = started(two_gpus, clock)
    ticker.tick()
    # power and energy still answer, the next query finds the GPU gone
    two_gpus.gpus[0].failures["power_limit_mw"] = 15  # NVML_ERROR_GPU_IS_LOST
    samples = ticker.tick()
    assert not [s for s in samples if s.labels.get("gpu") == "0" and not s.is_stale]
    assert len([s for s in stale(samples) if s.labels["gpu"] == "0"]) == len(ALL_METRICS)
    assert value(samples, DEVICES_METRIC, "") == 1.0


def test_every_gpu_lost_leaves_a_running_client_reporting_zero_devices(
    clock: FakeClock,
) -> None:
    nvml = FakeNvml(fake_gpus(1))
    ticker = started(nvml, clock)
    ticker.tick()
    nvml.gpus[0].lost = True
    samples = ticker.tick()
    assert len(stale(samples)) == len(ALL_METRICS)
    assert [(s.name, s.value) for s in ticker.tick()] == [(DEVICES_METRIC, 0.0)]


# -- no driver, no GPU, GPU_OPTIONAL -----------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        (NVML_ERROR_LIBRARY_NOT_FOUND, "libnvidia-ml.so.1"),
        (NVML_ERROR_DRIVER_NOT_LOADED, "modprobe nvidia"),
        (NVML_ERROR_NO_PERMISSION, "/dev/nvidiactl"),
        (NVML_ERROR_LIB_RM_VERSION_MISMATCH, "reboot"),
        (NVML_ERROR_UNKNOWN, "nvidia-smi"),
    ],
)
def test_missing_driver_is_a_device_error_with_exit_code_3_and_a_fix(
    code: int, hint: str, clock: FakeClock
) -> None:
    client = GpuNvmlClient(FakeNvml(fake_gpus(1), init_error=code), clock=clock)
    with pytest.raises(NvmlUnavailableError) as info:
        client.setup()
    assert isinstance(info.value, DeviceUnavailableError)
    assert info.value.exit_code == 3
    assert hint in str(info.value)
    assert "Fix:" in str(info.value)
    client.close()  # safe after a failed setup


def test_no_gpu_is_a_device_error(clock: FakeClock) -> None:
    nvml = FakeNvml([])
    client = GpuNvmlClient(nvml, clock=clock)
    with pytest.raises(NvmlUnavailableError, match="found no GPU.*GPU_OPTIONAL=true"):
        client.setup()
    client.close()
    assert nvml.shutdowns == 1


def test_missing_pynvml_module_names_the_extra(clock: FakeClock) -> None:
    def no_module() -> FakeNvml:
        raise NvmlCallError(
            NVML_ERROR_LIBRARY_NOT_FOUND, "pip install 'wattpush[gpu]'", "import pynvml"
        )

    client = GpuNvmlClient(nvml_factory=no_module, clock=clock)
    with pytest.raises(NvmlUnavailableError, match=r"wattpush\[gpu\]"):
        client.setup()


@pytest.mark.parametrize(
    "nvml", [FakeNvml([], init_error=NVML_ERROR_LIBRARY_NOT_FOUND), FakeNvml([])]
)
def test_gpu_optional_runs_idle_and_reports_zero_devices(
    nvml: FakeNvml, clock: FakeClock, gpu_logs: pytest.LogCaptureFixture
) -> None:
    client = GpuNvmlClient(nvml, optional=True, clock=clock)
    client.setup()
    assert client.idle
    ticker = Ticker(client, clock)
    for _ in range(3):
        assert [(s.name, s.labels, s.value) for s in ticker.tick()] == [(DEVICES_METRIC, {}, 0.0)]
    client.close()
    assert not nvml.initialised
    assert "GPU_OPTIONAL=true" in gpu_logs.text


def test_gpu_optional_does_not_hide_a_working_gpu(two_gpus: FakeNvml, clock: FakeClock) -> None:
    ticker = started(two_gpus, clock, optional=True)
    assert not ticker.client.idle
    assert value(ticker.tick(), DEVICES_METRIC, "") == 2.0


def test_unopenable_gpu_is_skipped_and_others_monitored(
    clock: FakeClock, gpu_logs: pytest.LogCaptureFixture
) -> None:
    gpus = fake_gpus(3)
    gpus[1].failures["handle"] = NVML_ERROR_NO_PERMISSION
    ticker = started(FakeNvml(gpus), clock)
    series = by_series(ticker.tick())
    assert {gpu for (_, gpu) in series if gpu} == {"0", "2"}
    assert "GPU 1 cannot be opened" in gpu_logs.text


# -- GPU_DEVICES --------------------------------------------------------------------------------


def test_devices_select_by_index_and_uuid(clock: FakeClock) -> None:
    gpus = fake_gpus(3)
    ticker = started(FakeNvml(gpus), clock, devices=(gpus[2].uuid.upper(), "0", "0"))
    assert [g.index for g in ticker.client.gpus] == [0, 2]
    assert {gpu for (_, gpu) in by_series(ticker.tick()) if gpu} == {"0", "2"}


def test_devices_naming_an_absent_gpu_lists_the_available_ones(clock: FakeClock) -> None:
    gpus = fake_gpus(2)
    client = GpuNvmlClient(FakeNvml(gpus), devices=("5",), clock=clock)
    with pytest.raises(NvmlUnavailableError, match=f"GPU_DEVICES.*5.*{gpus[1].uuid}"):
        client.setup()


# -- framework contract -------------------------------------------------------------------------


def test_client_sends_its_own_stale_markers() -> None:
    assert GpuNvmlClient.auto_stale is False
    assert GpuNvmlClient.name == "gpu-nvml-client"


def test_close_shuts_nvml_down_once(two_gpus: FakeNvml, clock: FakeClock) -> None:
    ticker = started(two_gpus, clock)
    ticker.tick()
    ticker.client.close()
    ticker.client.close()
    assert two_gpus.shutdowns == 1


def test_host_info_names_the_gpu_models_with_counts(clock: FakeClock) -> None:
    mixed = [*fake_gpus(2, "NVIDIA H200"), FakeGpu(uuid="GPU-t4", name="NVIDIA T4")]
    client = GpuNvmlClient(FakeNvml(mixed), clock=clock)
    client.setup()
    info = client.host_info()
    assert info.gpu_model == "2x NVIDIA H200, NVIDIA T4"
    assert info.cpu_model  # the framework's facts stay
    one = GpuNvmlClient(FakeNvml(fake_gpus(1, "NVIDIA L4")), clock=clock)
    one.setup()
    assert one.host_info().gpu_model == "NVIDIA L4"
