"""The shared CPU time parsers: /proc/stat, /proc/<pid>/stat and cgroup CPU usage."""

from __future__ import annotations

import pytest
from base_monitoring_client.cputime import (
    clock_ticks_per_second,
    parse_cgroup_cpu_usage_ns,
    parse_proc_pid_stat,
    parse_proc_stat,
    proc_stat_times,
)
from wattpush_testing.rapl import proc_stat_text


def test_parse_proc_stat_counts_only_cpu_number_lines() -> None:
    text = proc_stat_text(busy=40, idle=60, cpus=12)
    text = text.replace("intr", "cpufreq 3\ncpux 1\nintr")
    times = parse_proc_stat(text)
    assert (times.busy, times.total, times.cpus) == (40, 100, 12)
    with pytest.raises(ValueError, match="no cpuN"):
        parse_proc_stat("cpu  1 2 3 4 5 6 7 8\nintr 1\n")
    with pytest.raises(ValueError, match="aggregate"):
        parse_proc_stat("intr 1\ncpu0 1 2 3 4\n")


def test_busy_and_total_follow_the_estimate_definition() -> None:
    # user nice system idle iowait irq softirq steal guest guest_nice
    data = b"cpu  1 2 4 8 16 32 64 128 256 512\ncpu0 0 0 0 0\nintr 0\n"
    busy, total, cpus = proc_stat_times(data)
    assert busy == 1 + 2 + 4 + 32 + 64  # guest is already inside user
    assert total == busy + 8 + 16 + 128
    assert cpus == 1
    # Old kernels without the trailing columns count them as 0.
    assert proc_stat_times(b"cpu  1 2 3 4\ncpu0 1 2 3 4\n") == (6, 10, 1)


def test_pid_stat_with_spaces_and_parens_in_comm() -> None:
    fields = ["S", "1", "5", "5", "0", "-1", "0", "0", "0", "0", "0", "700", "300"]
    fields += ["0", "0", "20", "0", "4", "0", "123456", "0", "2500"] + ["0"] * 20
    data = ("5 (evil) (name) " + " ".join(fields)).encode()
    stat = parse_proc_pid_stat(data)
    assert stat is not None
    assert stat == (1000, 123456, 2500)
    assert parse_proc_pid_stat(b"garbage") is None
    assert parse_proc_pid_stat(b"1 (x) S 1") is None


def test_own_process_stat_parses() -> None:
    with open("/proc/self/stat", "rb") as handle:
        stat = parse_proc_pid_stat(handle.read())
    assert stat is not None and stat[0] >= 0 and stat[1] > 0


def test_cgroup_cpu_usage_v1_and_v2() -> None:
    assert parse_cgroup_cpu_usage_ns(b"1500000\n", 1) == 1_500_000
    assert parse_cgroup_cpu_usage_ns(b"usage_usec 1500\nuser_usec 1000\n", 2) == 1_500_000
    assert parse_cgroup_cpu_usage_ns(b"user_usec 3\nusage_usec 7\n", 2) == 7000
    assert parse_cgroup_cpu_usage_ns(b"user_usec 3\n", 2) is None
    assert parse_cgroup_cpu_usage_ns(b"nonsense", 1) is None
    assert parse_cgroup_cpu_usage_ns(b"usage_usec x\n", 2) is None


def test_clock_ticks_per_second_is_user_hz() -> None:
    assert clock_ticks_per_second() >= 100
