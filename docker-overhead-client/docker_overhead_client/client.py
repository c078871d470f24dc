"""docker-overhead-client: per-container CPU/memory/network, runtime overhead, host CPU."""

from __future__ import annotations

import collections
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from base_monitoring_client import (
    ClientConfig,
    InvalidValue,
    MonitoringClient,
    Setting,
    contract,
    parse_float,
    parse_path,
)
from base_monitoring_client.counter import SummedCounter
from base_monitoring_client.cputime import parse_proc_pid_stat
from base_monitoring_client.openfiles import OpenFiles, read_once
from base_monitoring_client.series import Series
from base_monitoring_client.stale import StaleTracker

from .cgroups import CgroupLayout
from .discovery import Discovery, Snapshot
from .engine import DEFAULT_DOCKER_HOST, DockerHost, EngineClient, parse_docker_host
from .errors import HostLayoutError
from .procfs import (
    DEFAULT_ENGINE_PATTERNS,
    HOST_CPU_MODES,
    NetDevCounter,
    parse_host_cpu_ticks,
)

CONTAINER_CPU = contract.CONTAINER_CPU.name
CONTAINER_MEMORY = contract.CONTAINER_MEMORY.name
CONTAINER_RX = contract.CONTAINER_RX.name
CONTAINER_TX = contract.CONTAINER_TX.name
ENGINE_CPU = contract.ENGINE_CPU.name
ENGINE_MEMORY = contract.ENGINE_MEMORY.name
HOST_CPU = contract.HOST_CPU.name

#: How long the carried counters of a vanished container are kept for a comeback.
STATE_TTL_NS = 3600 * 1_000_000_000
_PRUNE_EVERY_NS = 2 * 1_000_000_000


class _Plan:
    """What read() reads for one snapshot: (paths, sizes) lists, each the same object every
    tick (OpenFiles.read_many keeps their descriptors)."""

    __slots__ = ("base", "first", "generation", "keys", "with_new_stats", "with_stats")

    def __init__(
        self,
        generation: int,
        keys: frozenset[tuple[str, str, str]],
        base: list[tuple[str, int]],
        with_stats: list[tuple[str, int]],
        with_new_stats: list[tuple[str, int]],
    ) -> None:
        self.generation = generation
        self.keys = keys
        self.base = _columns(base)
        self.with_stats = _columns(with_stats)
        self.with_new_stats = _columns(with_new_stats)
        self.first = True  # the new containers' memory.stat is read at the first tick


def _columns(pairs: list[tuple[str, int]]) -> tuple[list[str], list[int]]:
    return [path for path, _ in pairs], [size for _, size in pairs]


#: (snapshot, paths read, their contents or None) of one tick
_Capture = tuple[Snapshot, list[str], list[bytes | None]]


class _ContainerState:
    __slots__ = (
        "cid",
        "cpu",
        "cpu_data",
        "cpu_raw",
        "cpu_seconds",
        "handles",
        "ids",
        "inactive",
        "memory_bytes",
        "net",
        "net_data",
        "rx_tx",
        "seen_ns",
        "usage_data",
    )

    def __init__(self, handles: tuple[Series, Series, Series, Series]) -> None:
        self.cid = ""
        self.cpu_raw = 0
        self.inactive = 0
        # the last reads and what they gave (the same bytes give the same values)
        self.cpu_data: bytes | None = None
        self.cpu_seconds = 0.0
        self.usage_data: bytes | None = None
        self.memory_bytes = 0.0
        self.net_data: bytes | None = None
        self.rx_tx = (0, 0)
        self.cpu = SummedCounter()
        self.net = NetDevCounter()
        self.seen_ns = 0
        self.handles = handles  # cpu, memory, receive, transmit
        self.ids = tuple(h.id for h in handles)


def parse_patterns(text: str) -> tuple[str, ...]:
    patterns = tuple(p.strip() for p in text.split(",") if p.strip())
    if not patterns:
        raise InvalidValue("expected a comma-separated list of process names or globs")
    return patterns


SETTINGS: tuple[Setting, ...] = (
    Setting("DOCKER_HOST", DEFAULT_DOCKER_HOST, parse_docker_host,
            "Docker Engine endpoint (unix socket or plain-HTTP tcp://host:port)",
            "use unix:///var/run/docker.sock (mount it read-only into the container) or "
            "tcp://host:2375"),
    Setting("HOST_PROC", "/proc", parse_path, "the host's procfs (mounted, e.g. /host/proc)",
            "mount the host's /proc read-only and point HOST_PROC at it"),
    Setting("HOST_CGROUP", "/sys/fs/cgroup", parse_path,
            "the host's cgroup hierarchy (mounted, e.g. /host/sys/fs/cgroup)",
            "mount the host's /sys/fs/cgroup read-only and point HOST_CGROUP at it"),
    Setting("CONTAINER_REFRESH_S", "2", parse_float(0.1, 3600),
            "how often the container list is refreshed from the Engine API",
            "use a number of seconds between 0.1 and 3600, e.g. 2"),
    Setting("DOCKER_API_TIMEOUT_S", "5", parse_float(positive=True, max_value=600),
            "timeout of one Engine API request", "use a number of seconds > 0, e.g. 5"),
    Setting("MEMORY_STAT_INTERVAL_S", "1", parse_float(0.0, 3600),
            "how often memory.stat (inactive page cache) is re-read; 0 = every sample",
            "use a number of seconds >= 0, e.g. 1"),
    Setting("ENGINE_PROCESSES", ",".join(DEFAULT_ENGINE_PATTERNS), parse_patterns,
            "runtime processes counted as engine overhead (names or globs)",
            "list process names or globs, e.g. dockerd,containerd,containerd-shim*,docker-proxy"),
)  # fmt: skip


class DockerOverheadClient(MonitoringClient):
    name = "docker-overhead-client"
    description = (
        "Per-container CPU, memory and network (cgroups + /proc), Docker engine overhead "
        "(dockerd, containerd, shims, docker-proxy) and host CPU, pushed via remote write."
    )
    settings = SETTINGS
    # Stale markers are sent here, per series, the tick a container or process disappears.
    auto_stale = False

    @classmethod
    def from_settings(cls, config: ClientConfig, values: Mapping[str, Any]) -> Self:
        return cls(
            docker_host=values["docker_host"],
            host_proc=values["host_proc"],
            host_cgroup=values["host_cgroup"],
            refresh_s=values["container_refresh_s"],
            api_timeout_s=values["docker_api_timeout_s"],
            memory_stat_interval_s=values["memory_stat_interval_s"],
            engine_patterns=values["engine_processes"],
        )

    def __init__(
        self,
        *,
        docker_host: DockerHost | str = "unix:///var/run/docker.sock",
        host_proc: Path | str = "/proc",
        host_cgroup: Path | str = "/sys/fs/cgroup",
        refresh_s: float = 2.0,
        api_timeout_s: float = 5.0,
        memory_stat_interval_s: float = 1.0,
        engine_patterns: Sequence[str] = DEFAULT_ENGINE_PATTERNS,
        user_hz: int | None = None,
        page_size: int | None = None,
        background_refresh: bool = True,
    ) -> None:
        self.docker_host = (
            parse_docker_host(docker_host) if isinstance(docker_host, str) else docker_host
        )
        self.host_proc = str(host_proc).rstrip("/") or "/"
        self.host_cgroup = str(host_cgroup)
        self.refresh_s = refresh_s
        self.api_timeout_s = api_timeout_s
        self.memory_stat_interval_ns = int(memory_stat_interval_s * 1e9)
        self.engine_patterns = tuple(engine_patterns)
        self.user_hz = user_hz or os.sysconf("SC_CLK_TCK")
        self.page_size = page_size or os.sysconf("SC_PAGE_SIZE")
        # Tests drive discovery.refresh() themselves; the refresher thread would race them.
        self.background_refresh = background_refresh
        self.discovery: Discovery | None = None
        self._engine: EngineClient | None = None
        self._proc_stat = f"{self.host_proc}/stat"
        self._states: dict[tuple[str, str, str], _ContainerState] = {}
        self._engine_counters: dict[str, SummedCounter] = {}
        self._engine_handles: dict[str, tuple[Series, Series]] = {}  # cpu, memory
        self._host_cpu = self.handle_set(HOST_CPU, [{"mode": m} for m in HOST_CPU_MODES])
        self._stale = StaleTracker()
        self._incomplete = False
        self._was_incomplete = False
        self._generation = -1
        self._prune_due_ns = 0
        self._files = OpenFiles(watch=True)  # refresh()ed at the start of every read()
        self._to_forget: collections.deque[str] = collections.deque()
        self._plan: _Plan | None = None
        self._stat_due_ns = 0
        # stat path -> (its last read, parsed): an idle runtime process reads the same
        self._engine_parsed: dict[str, tuple[bytes | None, tuple[int, int, int] | None]] = {}

    # -- life cycle ---------------------------------------------------------------------------
    def setup(self) -> None:
        self._engine = EngineClient(self.docker_host, self.api_timeout_s)
        # Engine first: a missing socket is the most common deployment mistake (exit 3).
        self._engine.list_running()
        data = read_once(self._proc_stat, 4096)
        if not data or parse_host_cpu_ticks(data) is None:
            raise HostLayoutError(
                f"HOST_PROC={self.host_proc}: {self._proc_stat} is missing or not /proc/stat; "
                "fix: mount the host's /proc read-only (compose: `/proc:/host/proc:ro`) and "
                "set HOST_PROC=/host/proc"
            )
        layout = CgroupLayout.detect(self.host_cgroup)
        self.discovery = Discovery(
            self._engine,
            layout,
            proc_root=self.host_proc,
            refresh_s=self.refresh_s,
            engine_patterns=self.engine_patterns,
        )
        self.discovery.refresh()
        if self.background_refresh:
            self.discovery.start()

    def close(self) -> None:
        if self.discovery is not None:
            self.discovery.stop()
        if self._engine is not None:
            self._engine.close()
        self._files.close()

    # -- sampling -----------------------------------------------------------------------------
    # The tick only reads (read(), sampler thread): every file of the snapshot in one pass.
    # Parsing, counters and stale markers run in decode(), on the batcher thread, many ticks
    # back to back before each push. The open files belong to the sampler thread: decode()
    # asks read() to forget a file through a deque.
    def read(self, now_ns: int) -> _Capture | None:
        discovery = self.discovery
        if discovery is None:
            return None
        files = self._files
        forget = self._to_forget
        while forget:
            files.forget(forget.popleft())
        snap = discovery.snapshot
        plan = self._plan
        if plan is None or plan.generation != snap.generation:
            plan = self._plan = self._make_plan(snap, plan)
        files.refresh()
        if now_ns >= self._stat_due_ns:
            # memory.stat is the costliest file and inactive page cache moves slowly: it is
            # read every MEMORY_STAT_INTERVAL_S (and at once for a new container).
            self._stat_due_ns = now_ns + self.memory_stat_interval_ns
            paths, sizes = plan.with_stats
        elif plan.first:
            paths, sizes = plan.with_new_stats
        else:
            paths, sizes = plan.base
        plan.first = False
        return snap, paths, files.read_many(paths, sizes)

    def _make_plan(self, snap: Snapshot, old: _Plan | None) -> _Plan:
        """The files to read for a snapshot, in lists that stay the same object per snapshot."""
        base = [(self._proc_stat, 4096)]
        stats: list[tuple[str, int]] = []
        new_stats: list[tuple[str, int]] = []
        known = old.keys if old is not None else frozenset()
        for target in snap.targets:
            files = target.files
            base += [(files.cpu, 4096), (files.memory_usage, 64)]
            if target.net_dev is not None:
                base.append((target.net_dev, 65536))
            stats.append((files.memory_stat, 8192))
            if target.key not in known:
                new_stats.append((files.memory_stat, 8192))
        base += [(proc.stat_path, 2048) for proc in snap.engine]
        self._files.retain({path for path, _ in base + stats})
        keys = frozenset(target.key for target in snap.targets)
        return _Plan(snap.generation, keys, base, base + stats, base + new_stats)

    def decode(self, now_ns: int, raw: _Capture | None) -> None:
        if raw is None:
            return
        snap, paths, data = raw
        got = dict(zip(paths, data, strict=True))
        # Single series go into these two lists and join the frame in one call at the end
        # (same order as one set() each, without ~90 Python calls per tick).
        ids: list[int] = []
        values: list[float] = []
        self._incomplete = False
        host_ids = self._collect_host(got)
        self._collect_containers(snap, now_ns, got, ids, values)
        self._collect_engine(snap, got, ids, values)
        self.series_table.frame.extend(ids, values)
        # The emitted series set can only change with a new snapshot or when a read failed
        # (now or the tick before); otherwise skip the bookkeeping for stale markers.
        changed = snap.generation != self._generation or self._incomplete
        if changed or self._was_incomplete:
            live = set(ids)
            live.update(host_ids)
            handles = self.series_table.handles
            for sid in sorted(self._stale.update(live)):
                handles[sid].stale()
        self._was_incomplete = self._incomplete
        self._generation = snap.generation
        if now_ns >= self._prune_due_ns:
            # On a timer, not only with a new snapshot (those come only with changes).
            self._prune_due_ns = now_ns + _PRUNE_EVERY_NS
            self._prune(now_ns)

    def _collect_host(self, got: dict[str, bytes | None]) -> frozenset[int]:
        """Host CPU per mode; the ids set (none when /proc/stat could not be read)."""
        data = got.get(self._proc_stat)
        ticks = parse_host_cpu_ticks(data) if data else None
        if ticks is None:
            self._incomplete = True
            return frozenset()
        hz = self.user_hz
        self._host_cpu.set([value / hz for value in ticks])
        return self._host_cpu.idset

    def _collect_containers(
        self,
        snap: Snapshot,
        now_ns: int,
        got: dict[str, bytes | None],
        ids: list[int],
        values: list[float],
    ) -> None:
        states = self._states
        discovery = self.discovery
        assert discovery is not None
        forget = self._to_forget.append
        get = got.get

        def read(path: str, size: int) -> bytes | None:
            return get(path)

        add_id, add_value = ids.append, values.append
        # A file that reads the same as last tick gives the same value: idle containers and
        # runtimes skip the parse and the counter update (bytes compare in C).
        for target in snap.targets:
            cid = target.info.id
            net_dev = target.net_dev
            files = target.files
            cpu_data = get(files.cpu)
            state = states.get(target.key)
            if state is None or cpu_data is None or cpu_data != state.cpu_data or state.cid != cid:
                cpu_ns = files.cpu_ns(read)
                if cpu_ns is None:
                    # cgroup gone: exited or restarting. Its series go stale this tick.
                    discovery.request_refresh(cid)
                    if net_dev is not None:
                        forget(net_dev)
                    self._incomplete = True
                    continue
                if state is None:
                    labels = target.labels
                    state = states[target.key] = _ContainerState(
                        (
                            self.handle(CONTAINER_CPU, labels),
                            self.handle(CONTAINER_MEMORY, labels),
                            self.handle(CONTAINER_RX, labels),
                            self.handle(CONTAINER_TX, labels),
                        )
                    )
                if state.cid != cid or cpu_ns < state.cpu_raw:
                    if state.cid == cid:
                        # Restarted under the same id: new init pid, new network namespace.
                        discovery.request_refresh(cid)
                        if net_dev is not None:
                            forget(net_dev)
                    state.usage_data = state.net_data = None
                state.cid = cid
                state.cpu_raw = cpu_ns
                state.cpu_data = cpu_data
                state.cpu_seconds = state.cpu.update_one(cid, cpu_ns) / 1e9
            state.seen_ns = now_ns
            cpu_id, memory_id, rx_id, tx_id = state.ids
            add_id(cpu_id)
            add_value(state.cpu_seconds)
            usage_data = get(files.memory_usage)
            if files.memory_stat in got:  # read this tick (see read())
                state.inactive = files.inactive_file_bytes(read)
                state.usage_data = None
            if usage_data is None or usage_data != state.usage_data:
                usage = files.memory_usage_bytes(read)
                if usage is None:
                    self._incomplete = True
                    state.usage_data = None
                else:
                    # The last inactive page cache read, subtracted from every fresh usage.
                    state.memory_bytes = float(max(0, usage - state.inactive))
                    state.usage_data = usage_data
            if state.usage_data is not None:
                add_id(memory_id)
                add_value(state.memory_bytes)
            if net_dev is None:
                continue
            data = get(net_dev)
            if data is None:
                discovery.request_refresh(cid)  # the pid changed: restarted with the same id
                self._incomplete = True
                continue
            if data != state.net_data:
                state.net_data = data
                state.rx_tx = state.net.update(cid, data)
            rx, tx = state.rx_tx
            add_id(rx_id)
            add_value(float(rx))
            add_id(tx_id)
            add_value(float(tx))

    def _collect_engine(
        self, snap: Snapshot, got: dict[str, bytes | None], ids: list[int], values: list[float]
    ) -> None:
        lost = False
        ticks_by_name: dict[str, dict[tuple[int, int], int]] = {}
        rss_by_name: dict[str, int] = {}
        parsed = self._engine_parsed
        if len(parsed) > 2 * len(snap.engine) + 16:  # processes gone since
            parsed.clear()
        for proc in snap.engine:
            data = got.get(proc.stat_path)
            hit = parsed.get(proc.stat_path)
            if hit is not None and hit[0] == data:
                stat = hit[1]  # the same bytes as last tick
            else:
                stat = parse_proc_pid_stat(data) if data else None
                parsed[proc.stat_path] = (data, stat)
            if stat is None:
                lost = True  # exited since the last scan
                continue
            cpu_ticks, start_ticks, rss_pages = stat
            ticks_by_name.setdefault(proc.name, {})[(proc.pid, start_ticks)] = cpu_ticks
            rss_by_name[proc.name] = rss_by_name.get(proc.name, 0) + rss_pages
        if lost:
            self._incomplete = True
            if self.discovery is not None:
                self.discovery.request_process_scan()
        hz = self.user_hz
        for name, parts in ticks_by_name.items():
            counter = self._engine_counters.get(name)
            if counter is None:
                counter = self._engine_counters[name] = SummedCounter()
            handles = self._engine_handles.get(name)
            if handles is None:
                labels = {"process": name}
                handles = self._engine_handles[name] = (
                    self.handle(ENGINE_CPU, labels),
                    self.handle(ENGINE_MEMORY, labels),
                )
            # Dead pids are forgotten; what they used stays in the carried total.
            total = counter.update(name, parts, forget_missing=True)
            ids.append(handles[0].id)
            values.append(total / hz)
            ids.append(handles[1].id)
            values.append(float(rss_by_name[name] * self.page_size))

    def _prune(self, now_ns: int) -> None:
        cutoff = now_ns - STATE_TTL_NS
        for key in [k for k, s in self._states.items() if s.seen_ns < cutoff]:
            # Stale-marked long ago: free the handles too, so churning containers stay bounded.
            state = self._states.pop(key)
            self._stale.forget(set(state.ids))
            for handle in state.handles:
                self.release(handle)
