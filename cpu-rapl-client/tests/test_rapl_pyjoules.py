"""RAPL_BACKEND=pyjoules: the real pyJoules over a fake tree, its failures translated."""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType

import pytest
from cpu_rapl_client import CpuRaplClient, RaplConfigError, RaplUnavailableError
from wattpush_testing import FakeClock, collected
from wattpush_testing.rapl import FakePowercap, denying_reader, intel_dual_socket_dram

pytest.importorskip("pyJoules")

T0 = 1_700_000_000_000_000_000


@pytest.fixture(autouse=True)
def _restore_pyjoules_dir() -> object:
    from pyJoules.device import rapl_device

    saved = rapl_device.RAPL_API_DIR
    yield
    rapl_device.RAPL_API_DIR = saved


def _series(client: CpuRaplClient, clock: FakeClock, n: int) -> dict[tuple[str, str, str], float]:
    if n:
        clock.advance(0.1)
    return {
        (s.name, s.labels["zone"], s.labels["socket"]): s.value
        for s in collected(client, T0 + n * 100_000_000)
        if s.labels["source"] == "pyjoules"
    }


@pytest.mark.parametrize("layout", ["flat", "nested"])
def test_pyjoules_reads_packages_and_dram_with_our_wrap_handling(
    tmp_path: Path, clock: FakeClock, layout: str
) -> None:
    tree = intel_dual_socket_dram(tmp_path / "sys")
    tree.set_energy("intel-rapl:0", 262_143_328_850 - 1_000_000)  # 1 J below the top
    client = CpuRaplClient(tree.root(layout), backend="pyjoules", clock=clock)
    client.setup()
    assert client.source is not None and client.source.source == "pyjoules"
    first = _series(client, clock, 0)
    assert set(first) == {
        ("cpu_energy_joules_total", z, s)
        for z, s in [("package", "0"), ("package", "1"), ("dram", "0"), ("dram", "1")]
    }
    assert first[("cpu_energy_joules_total", "dram", "1")] == 3.0  # µJ converted to J
    tree.set_energy("intel-rapl:0", 2_000_000)  # wrapped: 1 J to the top + 1 µJ + 2 J
    tree.set_energy("intel-rapl:1", 20_500_000)
    second = _series(client, clock, 1)
    assert second[("cpu_energy_joules_total", "package", "0")] == pytest.approx(
        (262_143_328_850 + 2_000_001) / 1e6, abs=1e-6
    )
    assert second[("cpu_power_watts", "package", "0")] == pytest.approx(30.00001)
    assert second[("cpu_power_watts", "package", "1")] == pytest.approx(5.0)


def test_pyjoules_missing_is_a_config_error_with_the_fix(tmp_path: Path) -> None:
    def missing() -> ModuleType:
        raise ImportError("No module named 'pyJoules'")

    client = CpuRaplClient(tmp_path, backend="pyjoules", load_pyjoules=missing)
    with pytest.raises(RaplConfigError) as info:
        client.setup()
    assert "wattpush[pyjoules]" in str(info.value) and "RAPL_BACKEND=sysfs" in str(info.value)
    assert info.value.exit_code == 2


def test_pyjoules_without_rapl_is_explained_not_an_empty_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    empty = FakePowercap(tmp_path / "sys")
    empty.add_zone("intel-rapl-mmio:0", "package-0")  # pyJoules cannot see MMIO zones
    client = CpuRaplClient(empty.root(), backend="pyjoules", estimate_fallback=False)
    with pytest.raises(RaplUnavailableError) as info:
        client.setup()
    text = str(info.value)
    assert "NoSuchDeviceError" in text and "pyJoules only reads intel-rapl" in text
    assert "PRIVILEGED=true" in text
    # with the fallback on, the same failure becomes a loud estimate
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "stat").write_text("cpu  1 0 1 10 0 0 0 0 0 0\ncpu0 1 0 1 10 0 0 0 0 0 0\n")
    caplog.set_level(logging.WARNING, logger="cpu_rapl_client")
    fallback = CpuRaplClient(empty.root(), proc, backend="pyjoules")
    fallback.setup()
    assert fallback.estimating
    assert any("pyJoules" in r.message and "ESTIMATED" in r.message for r in caplog.records)


def test_pyjoules_permission_denied_is_translated(tmp_path: Path) -> None:
    from pyJoules.device import rapl_device

    tree = intel_dual_socket_dram(tmp_path / "sys")
    real_open = open

    def guarded_open(path: object, *args: object, **kw: object) -> object:
        if str(path).endswith("energy_uj"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kw)  # type: ignore[call-overload]

    rapl_device.open = guarded_open  # type: ignore[attr-defined]
    try:
        client = CpuRaplClient(
            tree.root(),
            backend="pyjoules",
            estimate_fallback=False,
            reader=denying_reader(lambda p: False),
        )
        with pytest.raises(RaplUnavailableError, match="permission denied"):
            client.setup()
    finally:
        del rapl_device.open  # type: ignore[attr-defined]
