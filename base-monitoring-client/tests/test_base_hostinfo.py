"""wattpush_host_info: CPU model, cores and virtualisation read from fake /proc and /sys trees."""

from __future__ import annotations

from pathlib import Path

import pytest
from base_monitoring_client.hostinfo import HostInfo, read_host_info

XEON = "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"


def fake_host(
    tmp_path: Path, *, model: str = XEON, flags: str = "fpu sse2", dmi: dict[str, str] | None = None
) -> tuple[Path, Path]:
    proc, sys = tmp_path / "proc", tmp_path / "sys"
    proc.mkdir()
    (proc / "cpuinfo").write_text(
        f"processor\t: 0\nmodel name\t: {model}\nflags\t\t: {flags}\n\n"
        f"processor\t: 1\nmodel name\t: {model}\nflags\t\t: {flags}\n"
    )
    dmi_dir = sys / "class" / "dmi" / "id"
    dmi_dir.mkdir(parents=True)
    for name, value in (dmi or {}).items():
        (dmi_dir / name).write_text(value + "\n")
    return proc, sys


def test_bare_metal(tmp_path: Path) -> None:
    proc, sys = fake_host(tmp_path, dmi={"sys_vendor": "Dell Inc.", "product_name": "R750"})
    info = read_host_info(proc, sys, cores=64)
    assert info == HostInfo(XEON, 64, virtualized=False, hypervisor="")
    assert info.labels()["virtualized"] == "false" and info.labels()["cores"] == "64"


@pytest.mark.parametrize(
    ("dmi", "hypervisor"),
    [
        ({"sys_vendor": "QEMU", "product_name": "Standard PC (Q35 + ICH9, 2009)"}, "kvm"),
        ({"sys_vendor": "VMware, Inc.", "product_name": "VMware Virtual Platform"}, "vmware"),
        ({"sys_vendor": "Amazon EC2", "product_name": "m6i.large"}, "kvm"),
        ({"sys_vendor": "Microsoft Corporation", "product_name": "Virtual Machine"}, "hyperv"),
    ],
)
def test_hypervisor_from_dmi(tmp_path: Path, dmi: dict[str, str], hypervisor: str) -> None:
    proc, sys = fake_host(tmp_path, flags="fpu sse2 hypervisor", dmi=dmi)
    info = read_host_info(proc, sys, cores=2)
    assert (info.virtualized, info.hypervisor) == (True, hypervisor)


def test_microsoft_hardware_without_the_hypervisor_flag_is_bare_metal(tmp_path: Path) -> None:
    proc, sys = fake_host(tmp_path, dmi={"sys_vendor": "Microsoft Corporation"})
    assert read_host_info(proc, sys, cores=8).virtualized is False


def test_hypervisor_flag_alone_says_virtualised_of_unknown_kind(tmp_path: Path) -> None:
    proc, sys = fake_host(tmp_path, flags="fpu hypervisor sse2")
    info = read_host_info(proc, sys, cores=4)
    assert (info.virtualized, info.hypervisor) == (True, "unknown")


def test_arm_model_and_missing_cpuinfo(tmp_path: Path) -> None:
    proc, sys = fake_host(tmp_path)
    (proc / "cpuinfo").write_text("processor\t: 0\nBogoMIPS\t: 50.00\nModel\t\t: Raspberry Pi 4\n")
    assert read_host_info(proc, sys, cores=4).cpu_model == "Raspberry Pi 4"
    (proc / "cpuinfo").unlink()
    assert read_host_info(proc, sys, cores=4).cpu_model == "unknown"


def test_gpu_model_is_added_by_the_gpu_client(tmp_path: Path) -> None:
    proc, sys = fake_host(tmp_path)
    info = read_host_info(proc, sys, cores=2).with_gpu("NVIDIA H200")
    assert info.labels()["gpu_model"] == "NVIDIA H200" and info.cpu_model == XEON


def test_self_metrics_hold_one_host_info_series_replaced_when_set_again() -> None:
    from base_monitoring_client.selfmetrics import SelfMetrics

    metrics = SelfMetrics("1.0")
    metrics.set_host(HostInfo("CPU A", 4, virtualized=True, hypervisor="kvm"))
    metrics.set_host(HostInfo("CPU A", 4, virtualized=True, hypervisor="kvm", gpu_model="L4"))
    text = metrics.exposition({"job": "j", "instance": "i"})
    lines = [line for line in text.splitlines() if line.startswith("wattpush_host_info{")]
    assert lines == [
        'wattpush_host_info{cores="4",cpu_model="CPU A",gpu_model="L4",hypervisor="kvm",'
        'instance="i",job="j",virtualized="true"} 1.0'
    ]
