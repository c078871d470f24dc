"""The pipeline: sampler -> batcher -> sender -> receiver, one named thread each.

This module only wires the stages (sampling.py, batching.py, outbox.py, sender.py) and runs
the life cycle (lifecycle.py): start, stop (each stage's own stop method, in order), push,
flush, health. Stages are joined by bounded queues that count what they drop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from . import __version__
from .batching import MAX_FUTURE_MS, BatcherStage
from .client import MonitoringClient
from .clock import SYSTEM_CLOCK, Clock
from .config import ClientConfig
from .health import HealthServer
from .lifecycle import Lifecycle, State
from .outbox import FlushMarker, Outbox
from .redact import scrub
from .sample import Sample
from .sampling import Collected, FrameBuilder, Sampler, TickDecoder
from .selfmetrics import SelfMetrics
from .sender import Backoff, Sender
from .series import Frame
from .spool import Spool
from .transport import Transport, make_transport

__all__ = ["MAX_FUTURE_MS", "Pipeline", "State"]

log = logging.getLogger(__name__)

#: /healthz status that answers 503: the client cannot do its job until someone acts
UNHEALTHY = "unhealthy"


class Pipeline:
    """Runs one MonitoringClient until stop(). Thread-safe push()/flush()/stop()."""

    def __init__(
        self,
        client: MonitoringClient,
        config: ClientConfig,
        *,
        clock: Clock = SYSTEM_CLOCK,
        transport: Transport | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.clock = clock
        self.metrics = SelfMetrics(__version__)
        self.problems = self.metrics.problems
        self.default_labels = {
            **config.extra_labels,
            "job": client.name,
            "instance": config.instance,
        }
        self.transport: Transport = transport or make_transport(config, f"wattpush/{__version__}")
        self.backoff = backoff or Backoff(config.min_backoff_s, config.max_backoff_s)
        self.lifecycle = Lifecycle()
        self.table = client.series_table
        self._health: HealthServer | None = None
        self._spool: Spool | None = None
        #: called (from the dying thread) when a stage thread has died: the process should end
        self.on_fatal: Callable[[], None] | None = None
        #: stage threads that died, and why
        self.dead: dict[str, str] = {}
        self.outbox = Outbox(
            config.queue_capacity,
            None,
            self.problems,
            spool_after_s=config.spool_after_s,
            clock=clock,
        )
        self.sender = Sender(
            self.transport,
            self.outbox,
            config,
            self.lifecycle,
            metrics=self.metrics,
            clock=clock,
            backoff=self.backoff,
        )
        self.builder = FrameBuilder(self.table, client.auto_stale, self.problems)
        self.decoder = TickDecoder(client, self.metrics) if client.splits_ticks else None
        self.batcher = BatcherStage(
            client,
            config,
            clock,
            metrics=self.metrics,
            builder=self.builder,
            decoder=self.decoder,
            outbox=self.outbox,
        )
        self.sampler = Sampler(
            client,
            config.sample_interval_s,
            clock,
            self.lifecycle,
            metrics=self.metrics,
            builder=self.builder,
            out=self.batcher.inbox,
            processes=self.batcher.processes,
            decoder=self.decoder,
        )
        self._threads: dict[str, threading.Thread] = {}

    @property
    def samples_collect(self) -> bool:
        client = self.client
        return type(client).collect is not MonitoringClient.collect or client.splits_ticks

    @property
    def processes(self) -> bool:
        return self.batcher.processes

    @property
    def state(self) -> State:
        return self.lifecycle.state

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        life = self.lifecycle
        with life.lock:
            if life.state is not State.NEW:
                return
            life.advance(State.RUNNING)
            self.table.bind(self.default_labels)
            try:
                if self.config.spool_dir is not None:
                    self._spool = Spool(
                        self.config.spool_dir,
                        self.config.spool_max_bytes,
                        self.problems.drop,
                        self.problems.quarantined,
                    )
                    self.outbox.spool = self._spool
                    if len(self._spool):
                        log.info(
                            "spool %s holds %d batches (%d samples) from an earlier run; "
                            "sending them first",
                            self.config.spool_dir,
                            len(self._spool),
                            self._spool.samples,
                        )
                self.client.setup()
                self.metrics.set_host(self.client.host_info())
                if self.config.health_port:
                    self._health = HealthServer(
                        self.config.health_address, self.config.health_port, self
                    )
                    self._health.start()
            except BaseException:
                life.advance(State.STOPPED)
                self._close_resources()
                raise
            stages: list[tuple[str, Callable[[], None]]] = [
                ("batcher", self.batcher.run),
                ("sender", self.sender.run),
            ]
            if self.samples_collect:
                stages.insert(0, ("sampler", self.sampler.run))
            for name, target in stages:
                thread = threading.Thread(
                    target=self._supervised, args=(name, target), name=name, daemon=True
                )
                thread.start()
                self._threads[name] = thread

    def _supervised(self, name: str, target: Callable[[], None]) -> None:
        """Run a stage; should it die, /healthz answers 503 and the process is told to end
        (a client that silently stopped sending must not look alive)."""
        try:
            target()
        except BaseException as exc:
            self.dead[name] = scrub(f"{type(exc).__name__}: {exc}", self.config.auth.secrets())
            log.critical(
                "the %s thread died (%s): nothing more is %s; stopping with exit code 1",
                name,
                self.dead[name],
                "sent" if name == "sender" else "collected",
                exc_info=True,
            )
            if self.on_fatal is not None:
                self.on_fatal()

    def __enter__(self) -> Pipeline:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float | None = None) -> None:
        """Stop sampling, send what is pending within SHUTDOWN_TIMEOUT_S, spool the rest."""
        life = self.lifecycle
        with life.lock:
            if life.state is not State.RUNNING:
                life.advance(State.STOPPED)
                return
            budget = self.config.shutdown_timeout_s if timeout is None else timeout
            life.deadline = self.clock.monotonic() + budget
            life.advance(State.STOPPING)
        threads = self._threads
        if "sampler" in threads:
            threads["sampler"].join()  # it saw STOPPING
        self.batcher.stop(threads["batcher"])
        if not self.sender.drain(threads["sender"]):
            self.sender.give_up(threads["sender"])
        self._spool_leftovers()
        self._close_resources()
        life.advance(State.STOPPED)
        log.info(
            "stopped: %d samples sent, %d dropped, %d in spool",
            int(self.metrics.get("monitoring_client_samples_sent_total")),
            int(self.metrics.total("monitoring_client_samples_dropped_total")),
            self._spool.samples if self._spool else 0,
        )

    def _close_resources(self) -> None:
        try:
            self.client.close()
        except Exception:
            log.exception("client close() failed")
        if self._health is not None:
            self._health.stop()
        if self._spool is not None:
            self._spool.close()
        self.transport.close()

    def _spool_leftovers(self) -> None:
        left = self.outbox.close()
        if left.spooled:
            log.warning("shutdown: %d samples not delivered in time were spooled", left.spooled)
        if left.dropped:
            log.warning(
                "shutdown: %d samples not delivered in time were dropped (counted)%s",
                left.dropped,
                " (set SPOOL_DIR to keep them)" if self._spool is None else "",
            )

    # -- public data entry ----------------------------------------------------------------------

    def push(self, samples: Iterable[Sample], timeout: float = 5.0) -> None:
        """Send samples produced outside collect() (events, windows)."""
        batch = list(samples)
        if not batch:
            return
        self.metrics.inc("monitoring_client_samples_collected_total", len(batch))
        # Under the life-cycle lock: a push either lands before stop() queues its end marker
        # (and is sent), or sees the pipeline stopped (and is counted), never neither.
        with self.lifecycle.lock:
            if self.lifecycle.state is not State.RUNNING:
                self.problems.drop("shutdown", len(batch))
                self.problems.log_once(
                    "push:stopped", "push() on a pipeline that is not running: dropped"
                )
                return
            frame = Frame(self.clock.time_ns() // 1_000_000)
            item: Frame | Collected
            if self.processes:
                item = Collected(frame, batch, False)
            else:
                self.builder.add_samples(frame, batch)
                if not len(frame):
                    return
                item = frame
            # Like a tick, a push waits for the batcher's deadline or a full batch.
            if not self.batcher.inbox.put(item, len(batch), wake=False, timeout=timeout):
                self.problems.drop("processor_queue_full", len(batch))

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything pushed or collected so far is sent (or spooled/dropped)."""
        if self.lifecycle.state is not State.RUNNING:
            return False
        marker = FlushMarker()
        if not self.batcher.inbox.put(marker, timeout=timeout):
            return False
        return marker.done.wait(timeout)

    # -- accounting and health (the HealthSource protocol) ----------------------------------------

    def pending_samples(self) -> int:
        return self.outbox.pending + self.batcher.pending

    def health(self) -> tuple[str, list[str]]:
        """``ok``; ``degraded`` while the client copes (an outage: it retries and keeps the
        data); ``unhealthy`` (503) when only a person can help: a stage thread died, or the
        receiver refuses our settings (401/403/404)."""
        reasons: list[str] = []
        unhealthy = False
        for name, why in self.dead.items():
            unhealthy = True
            reasons.append(f"the {name} thread died ({why}); the client is exiting")
        failures = self.sender.consecutive_failures
        if self.sender.held:
            unhealthy = True
            reasons.append(f"{self.sender.held}; {self.pending_samples()} samples held")
        elif failures:
            reasons.append(f"last {failures} send attempts failed: {self.sender.last_error}")
        if self._spool is not None and len(self._spool):
            reasons.append(f"{self._spool.samples} samples waiting in the spool")
        if self.lifecycle.state >= State.STOPPING:
            reasons.append("stopped")
        if unhealthy:
            return UNHEALTHY, reasons
        return ("degraded" if reasons else "ok"), reasons

    def exposition(self) -> str:
        return self.metrics.exposition(self.default_labels)
