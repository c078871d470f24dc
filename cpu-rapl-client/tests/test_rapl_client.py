"""CpuRaplClient.collect() over fake trees: series, wraps, resets, fallback, late zones."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from pathlib import Path

import pytest
from base_monitoring_client import DeviceUnavailableError, Sample
from cpu_rapl_client import (
    CpuPowerModel,
    CpuRaplClient,
    RaplConfigError,
    RaplUnavailableError,
)
from wattpush_testing import FakeClock, collected
from wattpush_testing.rapl import (
    FakePowercap,
    amd_rapl,
    denying_reader,
    intel_dual_socket_dram,
    intel_single_socket,
    write_proc_stat,
)

T0 = 1_700_000_000_000_000_000  # wall-clock ns of the first tick


def series(samples: Iterable[Sample]) -> dict[tuple[str, str, str, str], float]:
    return {
        (s.name, s.labels["zone"], s.labels["socket"], s.labels["source"]): s.value for s in samples
    }


def tick(client: CpuRaplClient, clock: FakeClock, n: int, dt: float = 0.1) -> list[Sample]:
    if n:
        clock.advance(dt)
    return collected(client, T0 + n * round(dt * 1e9))


def make(tree_root: Path, clock: FakeClock, **kw: object) -> CpuRaplClient:
    client = CpuRaplClient(tree_root, clock=clock, **kw)  # type: ignore[arg-type]
    client.setup()
    return client


def test_single_socket_series_labels_and_power(tmp_path: Path, clock: FakeClock) -> None:
    tree = intel_single_socket(tmp_path / "sys")
    client = make(tree.root(), clock)
    first = tick(client, clock, 0)
    assert series(first) == {
        ("cpu_energy_joules_total", "package", "0", "rapl"): 1.0,
        ("cpu_energy_joules_total", "core", "0", "rapl"): 0.4,
        ("cpu_energy_joules_total", "uncore", "0", "rapl"): 0.1,
        ("cpu_energy_joules_total", "psys", "platform", "rapl"): 5.0,
    }
    assert {s.timestamp_ms for s in first} == {T0 // 1_000_000}
    assert set(first[0].labels) == {"zone", "socket", "source"}
    tree.set_energy("intel-rapl:0", 1_000_000 + 2_500_000)  # 25 W for 0.1 s
    tree.set_energy("intel-rapl:0:0", 400_000 + 1_000_000)
    tree.set_energy("intel-rapl-mmio:0", 1_000_000 + 2_500_000)
    second = series(tick(client, clock, 1))
    assert second[("cpu_energy_joules_total", "package", "0", "rapl")] == 3.5
    assert second[("cpu_power_watts", "package", "0", "rapl")] == pytest.approx(25.0)
    assert second[("cpu_power_watts", "core", "0", "rapl")] == pytest.approx(10.0)
    assert second[("cpu_power_watts", "uncore", "0", "rapl")] == 0.0
    assert len(second) == 8  # 4 zones x 2 metrics: the MMIO mirror is not a fifth zone


def test_dual_socket_dram_and_amd(tmp_path: Path, clock: FakeClock) -> None:
    dual = make(intel_dual_socket_dram(tmp_path / "a").root("nested"), clock)
    assert set(series(tick(dual, clock, 0))) == {
        ("cpu_energy_joules_total", z, s, "rapl")
        for z, s in [("package", "0"), ("dram", "0"), ("package", "1"), ("dram", "1")]
    }
    amd = make(amd_rapl(tmp_path / "b").root(), clock)
    assert series(tick(amd, clock, 1)) == {
        ("cpu_energy_joules_total", "package", "0", "rapl"): 7.0,
        ("cpu_energy_joules_total", "core", "0", "rapl"): 3.0,
        # no power on a zone's first reading
    }


def test_wrap_during_a_run_keeps_the_total_monotonic(
    powercap: FakePowercap, clock: FakeClock, rapl_logs: pytest.LogCaptureFixture
) -> None:
    top = 9_999_999  # wraps every 10 J
    powercap.add_zone("intel-rapl:0", "package-0", 9_000_000, top)
    client = make(powercap.root(), clock)
    truth = 9_000_000
    energies, powers = [], []
    for n in range(25):
        if n:
            truth += 600_000  # 6 W for 0.1 s
            powercap.set_energy("intel-rapl:0", truth % (top + 1))
        s = series(tick(client, clock, n))
        energies.append(s[("cpu_energy_joules_total", "package", "0", "rapl")])
        if n:
            powers.append(s[("cpu_power_watts", "package", "0", "rapl")])
    assert energies[-1] == truth / 1e6 == 23.4  # through 2 wraps (at 10 J and 20 J)
    assert energies == sorted(energies)
    assert powers == pytest.approx([6.0] * 24)
    assert sum("wrapped" in r.message for r in rapl_logs.records) == 2


def test_reset_is_logged_and_never_gives_negative_power(
    powercap: FakePowercap, clock: FakeClock, rapl_logs: pytest.LogCaptureFixture
) -> None:
    powercap.add_zone("intel-rapl:0", "package-0", 50_000_000_000)
    client = make(powercap.root(), clock)
    tick(client, clock, 0)
    powercap.set_energy("intel-rapl:0", 50_001_000_000)
    tick(client, clock, 1)
    powercap.set_energy("intel-rapl:0", 300_000)  # driver reloaded: back near 0
    after = series(tick(client, clock, 2))
    assert after[("cpu_energy_joules_total", "package", "0", "rapl")] == 50_001.3
    assert ("cpu_power_watts", "package", "0", "rapl") not in after
    resets = [r for r in rapl_logs.records if "counter reset" in r.message]
    assert len(resets) == 1 and resets[0].levelno == logging.WARNING
    powercap.set_energy("intel-rapl:0", 1_300_000)
    later = series(tick(client, clock, 3))
    assert later[("cpu_power_watts", "package", "0", "rapl")] == pytest.approx(10.0)
    assert later[("cpu_energy_joules_total", "package", "0", "rapl")] == 50_002.3


def test_permission_denied_falls_back_to_an_estimate_loudly(
    tmp_path: Path, clock: FakeClock, rapl_logs: pytest.LogCaptureFixture
) -> None:
    tree = intel_single_socket(tmp_path / "sys")
    proc = tmp_path / "proc"
    write_proc_stat(proc, busy=1000, idle=1000, cpus=4)
    reader = denying_reader(lambda p: p.name == "energy_uj")
    model = CpuPowerModel(idle_watts_per_core=1.0, dynamic_watts_per_core=5.0)
    client = make(tree.root(), clock, proc_dir=proc, reader=reader, model=model)
    assert client.estimating
    warning = next(r.message for r in rapl_logs.records if r.levelno == logging.WARNING)
    assert "NOT MEASURING" in warning and "permission denied" in warning
    assert "PRIVILEGED=true" in warning and "AppArmor" in warning
    assert "RAPL_POWERCAP_DIR" in warning and "ESTIMATE_FALLBACK=false" in warning
    first = series(tick(client, clock, 0))
    assert first == {("cpu_energy_joules_total", "package", "all", "estimated"): 0.0}
    # 1 s at 50 % busy on 4 CPUs: 4 x 1 W + 2 busy x 5 W = 14 W
    write_proc_stat(proc, busy=1200, idle=1200, cpus=4)
    second = series(tick(client, clock, 1, dt=1.0))
    assert second[("cpu_power_watts", "package", "all", "estimated")] == pytest.approx(14.0)
    assert second[("cpu_energy_joules_total", "package", "all", "estimated")] == 14.0


@pytest.mark.parametrize("case", ["denied", "zero-zones", "missing-root"])
def test_no_fallback_is_an_error_naming_the_three_fixes(tmp_path: Path, case: str) -> None:
    tree = intel_single_socket(tmp_path / "sys")
    root = tree.root()
    reader = None
    if case == "denied":
        reader = denying_reader(lambda p: p.name == "energy_uj")
    elif case == "zero-zones":
        root = tmp_path / "empty"
        root.mkdir()
    else:
        root = tmp_path / "missing"
    kwargs: dict[str, object] = {"estimate_fallback": False}
    if reader is not None:
        kwargs["reader"] = reader
    client = CpuRaplClient(root, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(RaplUnavailableError) as info:
        client.setup()
    assert isinstance(info.value, DeviceUnavailableError) and info.value.exit_code == 3
    text = str(info.value)
    assert "PRIVILEGED=true" in text
    assert "AppArmor" in text and "AppArmor/install.sh" in text
    assert "bind-mount" in text and "read-only" in text and "RAPL_POWERCAP_DIR" in text
    assert str(root) in text


def test_unreadable_proc_stat_makes_the_fallback_an_error(tmp_path: Path) -> None:
    client = CpuRaplClient(tmp_path / "nothing", tmp_path / "noproc")
    with pytest.raises(RaplUnavailableError, match="HOST_PROC"):
        client.setup()


def test_zones_appearing_late_replace_the_estimate(
    powercap: FakePowercap, tmp_path: Path, clock: FakeClock
) -> None:
    proc = tmp_path / "proc"
    write_proc_stat(proc, 100, 100, 2)
    client = make(powercap.root(), clock, proc_dir=proc, rescan_interval_s=5.0)
    assert client.estimating
    assert {k[3] for k in series(tick(client, clock, 0))} == {"estimated"}
    powercap.add_zone("intel-rapl:0", "package-0", 2_000_000)
    assert {k[3] for k in series(tick(client, clock, 1))} == {"estimated"}  # not rescanned yet
    clock.advance(5.0)
    now = series(tick(client, clock, 2))
    assert not client.estimating
    assert now == {("cpu_energy_joules_total", "package", "0", "rapl"): 2.0}
    # a second socket showing up later is added to the running set
    powercap.add_zone("intel-rapl:1", "package-1", 3_000_000)
    clock.advance(5.0)
    assert ("cpu_energy_joules_total", "package", "1", "rapl") in series(tick(client, clock, 3))


def test_zone_vanishing_and_coming_back_keeps_its_total(
    powercap: FakePowercap, clock: FakeClock, rapl_logs: pytest.LogCaptureFixture
) -> None:
    powercap.add_zone("intel-rapl:0", "package-0", 1_000_000)
    powercap.add_zone("intel-rapl:1", "package-1", 1_000_000)
    client = make(powercap.root(), clock, rescan_interval_s=1.0)
    tick(client, clock, 0)
    powercap.remove_zone("intel-rapl:1")
    gone = series(tick(client, clock, 1))
    assert ("cpu_energy_joules_total", "package", "1", "rapl") not in gone
    assert any("vanished" in r.message for r in rapl_logs.records)
    powercap.add_zone("intel-rapl:1", "package-1", 1_500_000)
    clock.advance(1.0)
    back = series(tick(client, clock, 2))
    assert back[("cpu_energy_joules_total", "package", "1", "rapl")] == 1.5


def test_transient_read_error_skips_the_zone_for_one_tick(
    powercap: FakePowercap, clock: FakeClock, rapl_logs: pytest.LogCaptureFixture
) -> None:
    powercap.add_zone("intel-rapl:0", "package-0", 1_000_000)
    fail = {"on": False}
    reader = denying_reader(lambda p: fail["on"] and p.name == "energy_uj")
    client = make(powercap.root(), clock, reader=reader)
    tick(client, clock, 0)
    fail["on"] = True
    assert tick(client, clock, 1) == []
    assert tick(client, clock, 2) == []
    assert sum("skipped" in r.message for r in rapl_logs.records) == 1  # logged once
    fail["on"] = False
    powercap.set_energy("intel-rapl:0", 1_300_000)
    again = series(tick(client, clock, 3))
    assert again[("cpu_power_watts", "package", "0", "rapl")] == pytest.approx(1.0)  # 0.3 J/0.3 s
    assert any("readable again" in r.message for r in rapl_logs.records)


def test_estimated_backend_by_choice(tmp_path: Path, clock: FakeClock) -> None:
    tree = intel_single_socket(tmp_path / "sys")
    proc = tmp_path / "proc"
    write_proc_stat(proc, 0, 100, 8)
    client = make(tree.root(), clock, proc_dir=proc, backend="estimated")
    tick(client, clock, 0)
    write_proc_stat(proc, 0, 200, 8)
    s = series(tick(client, clock, 1, dt=0.5))
    assert s[("cpu_power_watts", "package", "all", "estimated")] == pytest.approx(8 * 0.74)


def test_unknown_backend_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(RaplConfigError) as info:
        CpuRaplClient(tmp_path, backend="msr")
    assert info.value.exit_code == 2


def test_power_is_never_negative_or_nan_under_random_counters(
    powercap: FakePowercap, clock: FakeClock
) -> None:
    import random

    rng = random.Random(7)
    powercap.add_zone("intel-rapl:0", "package-0", 0, 99_999_999)
    client = make(powercap.root(), clock)
    last_total = -1.0
    for n in range(300):
        powercap.set_energy("intel-rapl:0", rng.randrange(0, 100_000_000))
        s = series(tick(client, clock, n))
        total = s[("cpu_energy_joules_total", "package", "0", "rapl")]
        assert total >= last_total
        last_total = total
        power = s.get(("cpu_power_watts", "package", "0", "rapl"))
        assert power is None or (power >= 0 and math.isfinite(power))
