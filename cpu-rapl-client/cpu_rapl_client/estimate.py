"""The fallback when no energy counter is readable: power modelled from host CPU time.

Model (per logical CPU listed in ``/proc/stat``, i.e. per hardware thread):

    P = cpus * idle_watts_per_core + busy_cpus * dynamic_watts_per_core
    busy_cpus = cpus * Δbusy / Δtotal   (busy = user+nice+system+irq+softirq;
                                          total = busy+idle+iowait+steal)

busy and total are counted by ``base_monitoring_client.cputime`` (the ffmpeg runner's process
accounting uses the same parser). The defaults (0.74 W idle, +2.76 W at full load, i.e. 3.5 W
per busy vCPU) are the Cloud Carbon Footprint coefficients for an average cloud vCPU. They are a
rough guess for any particular machine: every series carries ``source="estimated"`` and the log
says so. ``/proc/stat`` is not namespaced, so inside a container it still describes the whole
host.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from base_monitoring_client.cputime import AFTER_CPUS, CpuTimes, parse_proc_stat, proc_stat_times
from base_monitoring_client.openfiles import OpenFiles

from .zones import Reader, read_sysfs


@dataclass(frozen=True, slots=True)
class CpuPowerModel:
    idle_watts_per_core: float = 0.74
    dynamic_watts_per_core: float = 2.76

    def power_watts(self, cpus: int, busy_cpus: float) -> float:
        return cpus * self.idle_watts_per_core + busy_cpus * self.dynamic_watts_per_core


class EstimatedEnergy:
    """A cumulative energy 'counter' in µJ, integrated from the model at every read.

    Without an injected reader /proc/stat stays open and is read with ``pread`` at each tick
    (procfs regenerates it at every read from offset 0), with a buffer that grows until it
    holds every cpuN line (hundreds of CPUs take more than the first 4 KiB).
    """

    def __init__(self, proc_root: Path, model: CpuPowerModel, reader: Reader | None = None) -> None:
        self.stat_path = proc_root / "stat"
        self.model = model
        self._reader = reader or read_sysfs
        self._files = OpenFiles() if reader is None else None
        self._stat_name = str(self.stat_path)
        self._size = 4096
        self._last: tuple[int, int, int] | None = None
        self._last_ns = 0
        self._busy_cpus = 0.0
        self._energy_uj = 0.0

    def check(self) -> CpuTimes:
        """Raise OSError / ValueError if /proc/stat cannot be used."""
        return parse_proc_stat(self._reader(self.stat_path))

    def capture(self) -> bytes:
        """/proc/stat now, up to its last cpuN line at least; OSError if unreadable."""
        files = self._files
        if files is None:
            return self._reader(self.stat_path).encode("ascii", "replace")
        size = self._size
        data = files.pread(self._stat_name, size)
        while len(data) >= size and AFTER_CPUS not in data:
            size = self._size = size * 4
            data = files.pread(self._stat_name, size)
        return data

    def read(self, monotonic_ns: int) -> int:
        return self.update(self.capture(), monotonic_ns)

    def update(self, data: bytes, monotonic_ns: int) -> int:
        """The energy so far (µJ) with ``data`` (/proc/stat) read at ``monotonic_ns``;
        ValueError if it is not /proc/stat."""
        times = proc_stat_times(data)
        last, self._last = self._last, times
        if last is not None:
            busy_now, total_now, cpus = times
            total = total_now - last[1]
            if total > 0:  # no tick yet (reads faster than USER_HZ): keep the last utilisation
                busy = min(max(busy_now - last[0], 0), total)
                self._busy_cpus = cpus * busy / total
            elapsed_s = (monotonic_ns - self._last_ns) / 1e9
            if elapsed_s > 0:
                watts = self.model.power_watts(cpus, self._busy_cpus)
                self._energy_uj += watts * elapsed_s * 1e6
        self._last_ns = monotonic_ns
        return round(self._energy_uj)

    def close(self) -> None:
        if self._files is not None:
            self._files.close()
