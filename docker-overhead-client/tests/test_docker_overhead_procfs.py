"""procfs parsers and the runtime-process scan."""

from __future__ import annotations

import pytest
from base_monitoring_client.counter import SummedCounter
from docker_overhead_client.procfs import (
    DEFAULT_ENGINE_PATTERNS,
    HOST_CPU_MODES,
    NetDevCounter,
    engine_process_name,
    parse_host_cpu_ticks,
    parse_net_dev,
    scan_engine_processes,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from wattpush_testing.docker import FakeHost


def test_host_cpu_line_in_mode_order() -> None:
    data = b"cpu  10 20 30 40 50 60 70 80 90 100\ncpu0 1 2 3 4 5 6 7 8 9 10\n"
    assert parse_host_cpu_ticks(data) == (10, 20, 30, 40, 50, 60, 70, 80)
    assert len(HOST_CPU_MODES) == 8


def test_host_cpu_short_line_pads_missing_modes() -> None:
    assert parse_host_cpu_ticks(b"cpu  1 2 3 4\n") == (1, 2, 3, 4, 0, 0, 0, 0)
    assert parse_host_cpu_ticks(b"intr 1 2 3\n") is None


def test_net_dev_sums_exclude_loopback(fake_host: FakeHost) -> None:
    fake_host.set_net(4101, {"eth0": (12345, 678), "eth1": (5, 6)})
    data = (fake_host.proc / "4101" / "net" / "dev").read_bytes()
    assert parse_net_dev(data) == ({b"eth0": 12345, b"eth1": 5}, {b"eth0": 678, b"eth1": 6})


def net_dev_text(ifaces: dict[str, tuple[int, int]]) -> bytes:
    lines = ["Inter-|   Receive  |  Transmit", " face |bytes    packets|bytes    packets"]
    lines.append(
        "    lo:    4242      42    0    0    0     0     0   0     4242      42 0 0 0 0 0 0"
    )
    for name, (rx, tx) in ifaces.items():
        lines.append(f"{name:>6}: {rx} 9 0 0 0 0 0 0 {tx} 9 0 0 0 0 0 0")
    lines.append("broken: 1 2 3")  # too few fields: ignored, as by parse_net_dev
    return ("\n".join(lines) + "\n").encode()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),  # the epoch: a container id
            st.dictionaries(
                st.sampled_from(["eth0", "eth1", "wlan0"]),
                st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)),
            ),
        ),
        max_size=12,
    )
)
def test_net_dev_counter_is_parse_net_dev_into_two_summed_counters(
    readings: list[tuple[str, dict[str, tuple[int, int]]]],
) -> None:
    counter = NetDevCounter()
    rx, tx = SummedCounter(), SummedCounter()
    for epoch, ifaces in readings:
        data = net_dev_text(ifaces)
        rx_parts, tx_parts = parse_net_dev(data)
        expected = (rx.update(epoch, rx_parts), tx.update(epoch, tx_parts))
        assert counter.update(epoch, data) == expected


@pytest.mark.parametrize(
    ("comm", "argv", "expected"),
    [
        ("dockerd", b"/usr/bin/dockerd\0-H\0fd://\0", "dockerd"),
        ("containerd", b"/usr/bin/containerd\0", "containerd"),
        (
            "containerd-shim",
            b"/usr/bin/containerd-shim-runc-v2\0-id\0x\0",
            "containerd-shim-runc-v2",
        ),
        ("containerd-shim", b"containerd-shim\0-namespace\0moby\0", "containerd-shim"),
        ("docker-proxy", b"/usr/bin/docker-proxy\0-proto\0tcp\0", "docker-proxy"),
        ("systemd", b"/sbin/init\0", None),
        ("dockerd-rootless", b"/usr/bin/dockerd-rootless.sh\0", None),
    ],
)
def test_engine_process_names(comm: str, argv: bytes, expected: str | None) -> None:
    assert engine_process_name(comm, argv, DEFAULT_ENGINE_PATTERNS) == expected


def test_scan_finds_runtime_processes_only(fake_host: FakeHost) -> None:
    found = scan_engine_processes(str(fake_host.proc), DEFAULT_ENGINE_PATTERNS)
    assert [(p.name, p.pid) for p in found] == [
        ("containerd", 800),
        ("containerd-shim-runc-v2", 4100),
        ("containerd-shim-runc-v2", 4200),
        ("containerd-shim-runc-v2", 4300),
        ("dockerd", 900),
    ]
    assert found[0].stat_path == f"{fake_host.proc}/800/stat"


def test_scan_of_missing_proc_is_empty(tmp_path: object) -> None:
    assert scan_engine_processes("/nonexistent/proc", DEFAULT_ENGINE_PATTERNS) == []
