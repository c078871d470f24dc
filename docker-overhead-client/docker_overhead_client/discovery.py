"""The slow path: which containers and runtime processes exist, on its own named thread.

The Engine API can be slow (a busy dockerd answers in seconds), so it is never called from
the sampler. The refresher publishes an immutable ``Snapshot``; the sampler reads whatever
snapshot is current (a single attribute read, atomic in CPython).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .cgroups import CgroupLayout, ContainerFiles, resolve_container_files
from .engine import ContainerInfo, EngineClient, container_from_api
from .errors import DockerOverheadError
from .procfs import EngineProcess, scan_engine_processes

log = logging.getLogger("docker_overhead_client")


@dataclass(frozen=True, slots=True)
class Target:
    """A running container as the sampler reads it."""

    info: ContainerInfo
    files: ContainerFiles
    net_dev: str | None  # /proc/<pid>/net/dev, None when the network is not its own
    labels: Mapping[str, str]
    key: tuple[str, str, str]  # (container, image, service): the identity of its series


def make_target(info: ContainerInfo, files: ContainerFiles, proc_root: str) -> Target:
    labels = {"container": info.name, "image": info.image}
    if info.service:
        labels["service"] = info.service
    net = f"{proc_root}/{info.pid}/net/dev" if info.own_network and info.pid > 0 else None
    return Target(info, files, net, labels, (info.name, info.image, info.service))


@dataclass(frozen=True, slots=True)
class Snapshot:
    targets: tuple[Target, ...] = ()
    engine: tuple[EngineProcess, ...] = ()
    generation: int = 0
    engine_ok: bool = True


class Discovery:
    """Lists containers (Engine API) and runtime processes (HOST_PROC) every ``refresh_s``."""

    def __init__(
        self,
        engine: EngineClient,
        layout: CgroupLayout,
        *,
        proc_root: str,
        refresh_s: float,
        engine_patterns: Sequence[str],
        min_interval_s: float = 0.5,
        process_scan_s: float = 30.0,
    ) -> None:
        self.engine = engine
        self.layout = layout
        self.proc_root = proc_root
        self.refresh_s = refresh_s
        self.engine_patterns = tuple(engine_patterns)
        self.min_interval_s = min(min_interval_s, refresh_s)
        self.process_scan_s = process_scan_s
        self.snapshot = Snapshot()
        self._scan_due = True
        self._last_scan = 0.0
        self._cache: dict[str, Target] = {}
        self._dirty: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error: str | None = None

    # -- sampler side -------------------------------------------------------------------------
    def request_refresh(self, container_id: str) -> None:
        """The sampler could not read a container: re-inspect it soon (restarted, exited)."""
        with self._lock:
            self._dirty.add(container_id)
        self._wake.set()

    def request_process_scan(self) -> None:
        """A runtime process vanished (dockerd restarted?): walk HOST_PROC again soon."""
        self._scan_due = True
        self._wake.set()

    # -- refresher side -----------------------------------------------------------------------
    def refresh(self) -> Snapshot:
        """One discovery pass. Raises the engine's errors; the process scan always runs."""
        try:
            targets = self._refresh_containers()
        except DockerOverheadError:
            self._publish(None)
            raise
        return self._publish(targets)

    def _publish(self, targets: tuple[Target, ...] | None) -> Snapshot:
        old = self.snapshot
        # Walking all of HOST_PROC is the costliest part of a refresh; shims and docker-proxy
        # come and go with containers, so scan when those change, when asked, or now and then.
        now = time.monotonic()
        if targets is not None and {t.info.id for t in targets} != {t.info.id for t in old.targets}:
            self._scan_due = True
        if self._scan_due or now - self._last_scan >= self.process_scan_s:
            self._scan_due = False
            self._last_scan = now
            engine = tuple(scan_engine_processes(self.proc_root, self.engine_patterns))
        else:
            engine = old.engine
        if (targets is None or targets == old.targets) and (
            engine == old.engine and (targets is not None) == old.engine_ok
        ):
            # Nothing changed (the usual refresh): the sampler keeps reading what it reads,
            # without redoing its per-snapshot bookkeeping.
            return old
        snap = Snapshot(
            targets=old.targets if targets is None else targets,
            engine=engine,
            generation=old.generation + 1,
            engine_ok=targets is not None,
        )
        self.snapshot = snap
        return snap

    def _refresh_containers(self) -> tuple[Target, ...]:
        summaries = self.engine.list_running()
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        cache: dict[str, Target] = {}
        retry: set[str] = set()
        for summary in summaries:
            cid = summary.get("Id")
            if not isinstance(cid, str) or not cid:
                continue
            names = summary.get("Names") or [""]
            listed_name = str(names[0]).lstrip("/")
            cached = self._cache.get(cid)
            if cached is not None and cid not in dirty and cached.info.name == listed_name:
                cache[cid] = cached
                continue
            inspect = self.engine.inspect(cid)
            state = (inspect or {}).get("State") or {}
            if inspect is None or not state.get("Running", False):
                continue  # gone or stopped between the two calls
            info = container_from_api(summary, inspect)
            files = resolve_container_files(
                self.layout, self.proc_root, info.id, info.pid, info.cgroup_parent
            )
            if files is None:
                # cgroup not created yet (starting) or HOST_CGROUP shows another hierarchy.
                log.debug("no cgroup found for container %s (%s) yet", info.name, info.id[:12])
                retry.add(cid)
                continue
            cache[cid] = make_target(info, files, self.proc_root)
        if retry:
            with self._lock:
                self._dirty |= retry
        self._cache = cache
        return tuple(sorted(cache.values(), key=lambda t: t.info.name))

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="docker-refresh", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.refresh_s)
            if self._stop.is_set():
                break
            self._wake.clear()
            try:
                self.refresh()
            except DockerOverheadError as exc:
                text = str(exc)
                if text != self._last_error:  # once per distinct problem, not every period
                    log.warning("container discovery failed, keeping the last list: %s", text)
                    self._last_error = text
            except Exception:
                log.exception("container discovery failed unexpectedly; will retry")
            else:
                if self._last_error is not None:
                    log.info("container discovery works again")
                    self._last_error = None
            # Bounds how often sampler-requested refreshes can hit the engine.
            if self._stop.wait(self.min_interval_s):
                break
