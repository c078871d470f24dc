"""The client end to end on fakes: golden Engine answers on a unix socket + host trees.

Container start, stop, restart (same id), recreate (same name, new id), rename; engine
overhead aggregation; host CPU; the sampler never waits on the engine.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from base_monitoring_client import Sample
from docker_overhead_client import DockerOverheadClient, EngineUnavailableError, HostLayoutError
from wattpush_testing import collected, wait_until
from wattpush_testing.docker import PROM_ID, TRANSCODE_ID, FakeEngine, FakeHost

T0 = 1_716_200_000_000_000_000
TICK = 100_000_000
PROM = {"container": "wattpush-prometheus-1", "image": "prom/prometheus:v2.42.0"}
PROM |= {"service": "prometheus"}
TRANSCODE = {"container": "transcode-1", "image": "jrottenberg/ffmpeg:5.1-ubuntu"}
CONTAINER_SERIES = (
    "container_cpu_seconds_total",
    "container_memory_bytes",
    "container_network_receive_bytes_total",
    "container_network_transmit_bytes_total",
)

Key = tuple[str, frozenset[tuple[str, str]]]


def key(name: str, labels: Mapping[str, str]) -> Key:
    return name, frozenset(labels.items())


def values(samples: Iterable[Sample]) -> dict[Key, float]:
    return {key(s.name, s.labels): s.value for s in samples if not s.is_stale}


def stale(samples: Iterable[Sample]) -> set[Key]:
    return {key(s.name, s.labels) for s in samples if s.is_stale}


class Ticker:
    def __init__(self, client: DockerOverheadClient) -> None:
        self.client = client
        self.now = T0

    def __call__(self) -> list[Sample]:
        self.now += TICK
        out = collected(self.client, self.now)
        assert all(s.timestamp_ms == self.now // 1_000_000 for s in out)
        return out


def on_fakes(fake_engine: FakeEngine, fake_host: FakeHost, **options: Any) -> DockerOverheadClient:
    """A client pointed at the fake engine and host trees (``options`` override or add)."""
    where: dict[str, Any] = {
        "docker_host": fake_engine.docker_host,
        "host_proc": fake_host.proc,
        "host_cgroup": fake_host.cgroup,
    }
    return DockerOverheadClient(**(where | options))


@contextlib.contextmanager
def running(
    fake_engine: FakeEngine, fake_host: FakeHost, **options: Any
) -> Iterator[DockerOverheadClient]:
    c = on_fakes(fake_engine, fake_host, **options)
    c.setup()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def client(fake_engine: FakeEngine, fake_host: FakeHost) -> Iterable[DockerOverheadClient]:
    with running(
        fake_engine,
        fake_host,
        refresh_s=3600,
        user_hz=100,
        page_size=4096,
        background_refresh=False,
    ) as c:
        yield c


@pytest.fixture
def tick(client: DockerOverheadClient) -> Ticker:
    return Ticker(client)


def refresh(client: DockerOverheadClient) -> None:
    assert client.discovery is not None
    client.discovery.refresh()


def test_golden_containers_with_labels_and_values(tick: Ticker) -> None:
    v = values(tick())
    assert v[key("container_cpu_seconds_total", PROM)] == 5.0
    assert v[key("container_memory_bytes", PROM)] == 40_000_000.0  # working set
    assert v[key("container_network_receive_bytes_total", PROM)] == 1000.0
    assert v[key("container_network_transmit_bytes_total", PROM)] == 500.0
    # Not a compose container: no service label at all (empty values are not sent).
    assert v[key("container_cpu_seconds_total", TRANSCODE)] == 5.0
    rapl = {
        "container": "wattpush-cpu-rapl-client-1",
        "image": "wattpush/cpu-rapl-client:latest",
        "service": "cpu-rapl-client",
    }
    assert key("container_cpu_seconds_total", rapl) in v
    # network_mode: host -> its net/dev is the host's; not attributed to the container.
    assert key("container_network_receive_bytes_total", rapl) not in v


def test_host_cpu_seconds_per_mode_use_user_hz(tick: Ticker, fake_host: FakeHost) -> None:
    v = values(tick())
    modes = {
        dict(labels)["mode"]: value for (n, labels), value in v.items() if n.startswith("host")
    }
    assert set(modes) == {"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}
    assert modes["user"] == 10.0 and modes["idle"] == 80.0
    fake_host.set_host_cpu(user=1050, system=500, idle=8100)
    assert values(tick())[key("host_cpu_seconds_total", {"mode": "user"})] == 10.5


def test_engine_overhead_aggregated_per_process_name(tick: Ticker) -> None:
    v = values(tick())
    engine = {
        (n, dict(labels)["process"]): value for (n, labels), value in v.items() if "engine" in n
    }
    assert engine == {
        ("docker_engine_cpu_seconds_total", "dockerd"): 50.0,
        ("docker_engine_memory_bytes", "dockerd"): 1000 * 4096.0,
        ("docker_engine_cpu_seconds_total", "containerd"): 30.0,
        ("docker_engine_memory_bytes", "containerd"): 2000 * 4096.0,
        ("docker_engine_cpu_seconds_total", "containerd-shim-runc-v2"): pytest.approx(0.33),
        ("docker_engine_memory_bytes", "containerd-shim-runc-v2"): 3 * 500 * 4096.0,
    }


def test_engine_counter_stays_monotonic_when_a_shim_exits(
    tick: Ticker, client: DockerOverheadClient, fake_host: FakeHost
) -> None:
    shim = key("docker_engine_cpu_seconds_total", {"process": "containerd-shim-runc-v2"})
    shim_mem = key("docker_engine_memory_bytes", {"process": "containerd-shim-runc-v2"})
    fake_host.write_stat(4100, "containerd-shim", cpu_ticks=20, start=1000, rss_pages=500)
    before = values(tick())[shim]
    assert before == pytest.approx(0.43)
    fake_host.remove_process(4100)
    after = values(tick())
    assert after[shim] == pytest.approx(0.43)  # its CPU stays counted
    assert after[shim_mem] == 2 * 500 * 4096.0
    # A new shim (a new container) adds its own whole CPU time once it is found.
    fake_host.add_process(
        4400, "containerd-shim", ["/usr/bin/containerd-shim-runc-v2"], cpu_ticks=7
    )
    refresh(client)
    assert values(tick())[shim] == pytest.approx(0.50)
    # pid reuse with a different start time is another process, not a reset of the old one.
    fake_host.write_stat(4400, "containerd-shim", cpu_ticks=2, start=99999, rss_pages=500)
    assert values(tick())[shim] == pytest.approx(0.52)


def test_all_engine_processes_gone_sends_stale_markers(
    tick: Ticker, client: DockerOverheadClient, fake_host: FakeHost
) -> None:
    tick()
    fake_host.remove_process(900)
    out = tick()
    assert stale(out) == {
        key("docker_engine_cpu_seconds_total", {"process": "dockerd"}),
        key("docker_engine_memory_bytes", {"process": "dockerd"}),
    }


def test_container_start_appears_on_refresh_and_sampling_never_calls_the_engine(
    tick: Ticker, client: DockerOverheadClient, fake_engine: FakeEngine, fake_host: FakeHost
) -> None:
    new_id = "1a" * 32
    fake_engine.run(new_id, "encoder-2", "wattpush/ffmpeg-runner:latest", 5001, service="ffmpeg")
    fake_host.add_container(new_id, 5001, cpu_ns=250_000_000)
    labels = {"container": "encoder-2", "image": "wattpush/ffmpeg-runner:latest"}
    labels["service"] = "ffmpeg"
    requests_before = len(fake_engine.requests)
    for _ in range(5):
        assert key("container_cpu_seconds_total", labels) not in values(tick())
    assert len(fake_engine.requests) == requests_before  # collect() reads files only
    refresh(client)
    # The refresh listed once and inspected only the new container.
    assert fake_engine.requests[requests_before:] == [
        "/containers/json",
        f"/containers/{new_id}/json",
    ]
    v = values(tick())
    assert v[key("container_cpu_seconds_total", labels)] == 0.25
    fake_host.set_cpu(new_id, 1_250_000_000)
    assert values(tick())[key("container_cpu_seconds_total", labels)] == 1.25


def test_container_stop_sends_stale_markers_once(
    tick: Ticker, client: DockerOverheadClient, fake_engine: FakeEngine, fake_host: FakeHost
) -> None:
    tick()
    # The cgroup disappears before the refresher notices: markers the very next tick.
    fake_host.remove_container(PROM_ID, 4101)
    fake_engine.stop(PROM_ID)
    out = tick()
    assert stale(out) == {key(n, PROM) for n in CONTAINER_SERIES}
    assert all(s.timestamp_ms == tick.now // 1_000_000 for s in out if s.is_stale)
    assert not stale(tick())  # once, not every tick
    refresh(client)
    later = tick()
    assert not stale(later)
    assert not any(
        dict(labels).get("container") == PROM["container"] for _, labels in values(later)
    )
    # Other containers are untouched.
    assert key("container_cpu_seconds_total", TRANSCODE) in values(later)


def test_restart_with_same_id_keeps_cpu_monotonic(
    tick: Ticker, client: DockerOverheadClient, fake_engine: FakeEngine, fake_host: FakeHost
) -> None:
    cpu = key("container_cpu_seconds_total", PROM)
    rx = key("container_network_receive_bytes_total", PROM)
    assert values(tick())[cpu] == 5.0
    # `docker restart`: the cgroup is recreated (counter back near 0), init gets a new pid.
    fake_host.remove_container(PROM_ID, 4101)
    assert stale(tick()) == {key(n, PROM) for n in CONTAINER_SERIES}
    fake_host.add_container(PROM_ID, 4111, cpu_ns=200_000_000, net={"eth0": (300, 100)})
    fake_engine.restart(PROM_ID, 4111)
    v = values(tick())
    assert v[cpu] == pytest.approx(5.2)  # 5 s before the restart + 0.2 s since
    assert rx not in v  # old pid gone: network waits for the re-inspect the sampler asked for
    refresh(client)
    v = values(tick())
    assert v[cpu] == pytest.approx(5.2)
    assert v[rx] == 1300.0  # 1000 before + 300 since, not back to 300
    fake_host.set_cpu(PROM_ID, 700_000_000)
    assert values(tick())[cpu] == pytest.approx(5.7)


def test_recreate_same_name_new_id_keeps_cpu_monotonic(
    tick: Ticker, client: DockerOverheadClient, fake_engine: FakeEngine, fake_host: FakeHost
) -> None:
    cpu = key("container_cpu_seconds_total", PROM)
    assert values(tick())[cpu] == 5.0
    new_id = "2b" * 32
    fake_host.remove_container(PROM_ID, 4101)
    fake_host.add_container(new_id, 4999, cpu_ns=9_000_000_000)  # already above the old count
    fake_engine.recreate(PROM_ID, new_id, 4999)
    refresh(client)
    out = tick()
    assert not stale(out)  # same series, continued
    assert values(out)[cpu] == pytest.approx(14.0)


def test_unchanged_refresh_keeps_the_snapshot_and_old_counters_still_expire(
    tick: Ticker, client: DockerOverheadClient, fake_engine: FakeEngine, fake_host: FakeHost
) -> None:
    from docker_overhead_client.client import STATE_TTL_NS

    assert client.discovery is not None
    cpu = key("container_cpu_seconds_total", PROM)
    assert values(tick())[cpu] == 5.0
    before = client.discovery.snapshot
    refresh(client)
    assert client.discovery.snapshot is before  # nothing changed: nothing to redo
    fake_host.remove_container(PROM_ID, 4101)
    fake_engine.stop(PROM_ID)
    refresh(client)
    gone = client.discovery.snapshot
    assert gone is not before and gone.generation == before.generation + 1
    tick()
    held = client.handle("container_cpu_seconds_total", PROM)
    tick.now += STATE_TTL_NS  # an hour later, the container list never changed meanwhile
    tick()
    # Its handles were released with its state: the series would be a new handle now.
    assert client.handle("container_cpu_seconds_total", PROM) is not held
    refresh(client)
    assert client.discovery.snapshot is gone
    new_id = "2b" * 32
    fake_host.add_container(new_id, 4999, cpu_ns=9_000_000_000)
    fake_engine.run(new_id, PROM["container"], PROM["image"], 4999, service="prometheus")
    refresh(client)
    # Its carried total expired with its state: the series starts again from the new count.
    assert values(tick())[cpu] == pytest.approx(9.0)


def test_rename_ends_the_old_series_and_starts_the_new(
    tick: Ticker, client: DockerOverheadClient, fake_engine: FakeEngine
) -> None:
    tick()
    fake_engine.rename(TRANSCODE_ID, "transcode-renamed")
    refresh(client)
    out = tick()
    assert stale(out) == {
        key("container_cpu_seconds_total", TRANSCODE),
        key("container_memory_bytes", TRANSCODE),
        key("container_network_receive_bytes_total", TRANSCODE),
        key("container_network_transmit_bytes_total", TRANSCODE),
    }
    renamed = dict(TRANSCODE, container="transcode-renamed")
    assert values(out)[key("container_cpu_seconds_total", renamed)] == 5.0


def test_engine_outage_after_setup_keeps_sampling(
    tick: Ticker, client: DockerOverheadClient, fake_engine: FakeEngine, fake_host: FakeHost
) -> None:
    fake_engine.close()
    with pytest.raises(EngineUnavailableError):
        refresh(client)
    fake_host.set_cpu(PROM_ID, 6_000_000_000)
    v = values(tick())
    assert v[key("container_cpu_seconds_total", PROM)] == 6.0
    assert client.discovery is not None and not client.discovery.snapshot.engine_ok


def test_socket_missing_is_device_unavailable(fake_host: FakeHost) -> None:
    c = DockerOverheadClient(
        docker_host="unix:///nonexistent/docker.sock",
        host_proc=fake_host.proc,
        host_cgroup=fake_host.cgroup,
    )
    with pytest.raises(EngineUnavailableError) as info:
        c.setup()
    c.close()
    assert info.value.exit_code == 3
    assert "DOCKER_HOST=unix:///nonexistent/docker.sock" in str(info.value)


def test_background_refresher_is_a_named_thread(
    fake_engine: FakeEngine, fake_host: FakeHost
) -> None:
    with running(fake_engine, fake_host, refresh_s=0.1) as c:
        assert "docker-refresh" in {t.name for t in threading.enumerate()}
        new_id = "3c" * 32
        fake_engine.run(new_id, "late", "busybox:1.36", 6001)
        fake_host.add_container(new_id, 6001, cpu_ns=1_000_000_000)
        labels = {"container": "late", "image": "busybox:1.36"}
        now = [T0]

        def seen() -> bool:
            now[0] += TICK
            return key("container_cpu_seconds_total", labels) in values(collected(c, now[0]))

        assert wait_until(seen, timeout=10, interval=0.05)
    assert "docker-refresh" not in {t.name for t in threading.enumerate()}


def test_sampler_asks_for_a_refresh_when_a_container_vanishes(
    fake_engine: FakeEngine, fake_host: FakeHost
) -> None:
    # A long period: only the sampler's request can make the refresher run this soon.
    with running(fake_engine, fake_host, refresh_s=3600) as c:
        fake_host.remove_container(PROM_ID, 4101)
        fake_engine.stop(PROM_ID)
        c.collect(T0)
        assert c.discovery is not None
        discovery = c.discovery
        assert wait_until(
            lambda: all(t.info.id != PROM_ID for t in discovery.snapshot.targets), timeout=10
        )


def test_process_scan_runs_on_container_changes_and_periodically(
    tick: Ticker, client: DockerOverheadClient, fake_engine: FakeEngine, fake_host: FakeHost
) -> None:
    proxy = key("docker_engine_cpu_seconds_total", {"process": "docker-proxy"})
    fake_host.add_process(
        950, "docker-proxy", ["/usr/bin/docker-proxy", "-proto", "tcp"], cpu_ticks=40
    )
    refresh(client)  # nothing changed: HOST_PROC is not walked on every refresh
    assert proxy not in values(tick())
    assert client.discovery is not None
    client.discovery.process_scan_s = 0.0  # ... but it is now and then
    refresh(client)
    assert values(tick())[proxy] == 0.4
    client.discovery.process_scan_s = 3600.0
    fake_host.add_process(960, "docker-proxy", ["/usr/bin/docker-proxy"], cpu_ticks=10)
    new_id = "4d" * 32
    fake_engine.run(new_id, "web", "nginx:1.25", 7001)  # a published port: new proxy
    fake_host.add_container(new_id, 7001)
    refresh(client)
    assert values(tick())[proxy] == 0.5


def test_memory_is_fresh_every_tick_and_page_cache_every_second(
    tick: Ticker, fake_host: FakeHost
) -> None:
    mem = key("container_memory_bytes", PROM)
    assert values(tick())[mem] == 40_000_000.0
    # Usage moves: seen at once. Inactive page cache: memory.stat is re-read once a second.
    fake_host.set_memory(PROM_ID, 60_000_000, 30_000_000)
    assert values(tick())[mem] == 50_000_000.0  # new usage - last known inactive (10 MB)
    for _ in range(8):
        tick()
    assert values(tick())[mem] == 30_000_000.0  # 1 s after the last read: both fresh


def test_memory_stat_every_sample_when_interval_is_zero(
    fake_engine: FakeEngine, fake_host: FakeHost
) -> None:
    with running(fake_engine, fake_host, memory_stat_interval_s=0, background_refresh=False) as c:
        t = Ticker(c)
        t()
        fake_host.set_memory(PROM_ID, 60_000_000, 30_000_000)
        assert values(t())[key("container_memory_bytes", PROM)] == 30_000_000.0


def test_wrong_host_proc_names_the_variable_and_the_mount(
    fake_engine: FakeEngine, fake_host: FakeHost, tmp_path: Path
) -> None:
    c = on_fakes(fake_engine, fake_host, host_proc=tmp_path / "not-proc")
    with pytest.raises(HostLayoutError) as info:
        c.setup()
    c.close()
    assert f"HOST_PROC={tmp_path / 'not-proc'}" in str(info.value)
    assert "/proc:/host/proc:ro" in str(info.value)
    assert info.value.exit_code == 2
