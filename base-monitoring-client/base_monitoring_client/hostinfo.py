"""What machine a client runs on: the ``wattpush_host_info`` series.

Pushed with every client's own metrics (``MonitoringClient.host_info()``, read after
``setup()``) so that the advisor can say which node type a figure
came from (CPU model, logical cores, GPU model, virtualised or not) from Prometheus alone.
Read once at start: none of it changes while a process lives. The roots are parameters so
tests build fake trees.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from .contract import HOST_INFO

HOST_INFO_METRIC = HOST_INFO.name
HOST_INFO_LABELS = HOST_INFO.labels

# DMI vendor/product strings of the common hypervisors, lower case, matched as substrings.
_HYPERVISORS = (
    ("qemu", "kvm"),
    ("kvm", "kvm"),
    ("vmware", "vmware"),
    ("virtualbox", "virtualbox"),
    ("innotek", "virtualbox"),
    ("xen", "xen"),
    ("microsoft corporation", "hyperv"),
    ("amazon ec2", "kvm"),
    ("google compute engine", "kvm"),
    ("openstack", "kvm"),
    ("parallels", "parallels"),
    ("bochs", "bochs"),
)


@dataclass(frozen=True)
class HostInfo:
    cpu_model: str
    cores: int
    virtualized: bool
    hypervisor: str  # "kvm", "vmware", ... ; "" on bare metal, "unknown" when only the flag says so
    gpu_model: str = ""

    def labels(self) -> dict[str, str]:
        """Label values of ``wattpush_host_info``; empty ones are left out on the wire."""
        return {
            "cpu_model": self.cpu_model,
            "cores": str(self.cores),
            "virtualized": "true" if self.virtualized else "false",
            "hypervisor": self.hypervisor,
            "gpu_model": self.gpu_model,
        }

    def with_gpu(self, gpu_model: str) -> HostInfo:
        return replace(self, gpu_model=gpu_model)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _cpuinfo_field(cpuinfo: str, *keys: str) -> str:
    """The first non-empty value of one of ``keys`` (the first CPU's block comes first)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in keys and value.strip():
            return " ".join(value.split())
    return ""


def _hypervisor(cpuinfo: str, proc_root: Path, sys_root: Path) -> tuple[bool, str]:
    # x86 guests see the CPUID hypervisor bit as the "hypervisor" flag.
    flagged = "hypervisor" in _cpuinfo_field(cpuinfo, "flags").split()
    dmi = sys_root / "class" / "dmi" / "id"
    vendor = " ".join(
        _read(dmi / name).strip().lower() for name in ("sys_vendor", "product_name", "bios_vendor")
    )
    for needle, name in _HYPERVISORS:
        # Hyper-V's vendor string is also Microsoft's Surface hardware: trust it only with
        # the CPU's hypervisor flag.
        if needle in vendor and (name != "hyperv" or flagged):
            return True, name
    if _read(proc_root / "xen" / "capabilities") or (sys_root / "hypervisor" / "type").is_file():
        return True, _read(sys_root / "hypervisor" / "type").strip() or "xen"
    if flagged:
        return True, "unknown"
    return False, ""


def read_host_info(
    proc_root: Path = Path("/proc"), sys_root: Path = Path("/sys"), cores: int | None = None
) -> HostInfo:
    """The host facts of this machine (or of the fake trees under the given roots)."""
    cpuinfo = _read(proc_root / "cpuinfo")
    virtualized, hypervisor = _hypervisor(cpuinfo, proc_root, sys_root)
    return HostInfo(
        # model name (x86), Model or Hardware (Arm)
        cpu_model=_cpuinfo_field(cpuinfo, "model name", "Model", "Hardware") or "unknown",
        cores=cores if cores is not None else (os.cpu_count() or 0),
        virtualized=virtualized,
        hypervisor=hypervisor,
    )
