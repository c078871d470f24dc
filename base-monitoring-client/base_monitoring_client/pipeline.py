"""The pipeline: sampler -> [processor] -> batcher -> sender -> receiver, one named thread each.

This module only wires the stages (sampling.py, batching.py, outbox.py, delivery.py) and runs
the life cycle (lifecycle.py). Stages are joined by bounded queues that count what they drop;
the processor thread exists only for clients that override process().
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from . import __version__
from .batching import MAX_FUTURE_MS, Batcher
from .client import MonitoringClient
from .clock import SYSTEM_CLOCK, Clock
from .config import ClientConfig
from .delivery import Sender
from .handoff import Handoff
from .health import HealthServer
from .lifecycle import Lifecycle, State
from .outbox import FlushMarker, Outbox
from .redact import scrub
from .sample import Sample
from .sampling import FrameBuilder, RawTick, Sampler, TickDecoder
from .selfmetrics import SelfMetrics
from .sender import Backoff, Transport, make_transport
from .series import Frame, Series
from .spool import Spool

__all__ = ["MAX_FUTURE_MS", "Pipeline", "State"]

log = logging.getLogger(__name__)

_QUEUE_SIZE = 1024
_STOP = object()
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
        self.default_labels = {
            **config.extra_labels,
            "job": client.name,
            "instance": config.instance,
        }
        self.transport: Transport = transport or make_transport(config, f"wattpush/{__version__}")
        self.backoff = backoff or Backoff(config.min_backoff_s, config.max_backoff_s)
        self.lifecycle = Lifecycle()
        self.table = client.series_table
        self._logged: set[str] = set()
        self._health: HealthServer | None = None
        self._spool: Spool | None = None
        #: called (from the dying thread) when a stage thread has died: the process should end
        self.on_fatal: Callable[[], None] | None = None
        #: stage threads that died, and why
        self.dead: dict[str, str] = {}
        self.outbox = Outbox(
            config.queue_capacity,
            None,
            self._drop,
            self._log_once,
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
            drop=self._drop,
            log_once=self._log_once,
        )
        self.builder = FrameBuilder(self.table, client.auto_stale, self._drop, self._log_once)
        max_samples = config.max_samples_per_send
        self._to_batcher = Handoff(_QUEUE_SIZE, max_samples, clock.monotonic)
        self._to_processor = (
            Handoff(_QUEUE_SIZE, max_samples, clock.monotonic) if self.processes else None
        )
        self.decoder = (
            TickDecoder(client, self.metrics, self._log_once) if client.splits_ticks else None
        )
        self.sampler = Sampler(
            client,
            config.sample_interval_s,
            clock,
            self.lifecycle,
            metrics=self.metrics,
            builder=self.builder,
            out=self._first_queue,
            to_processor=self.processes,
            drop=self._drop,
            log_once=self._log_once,
            decoder=self.decoder,
        )
        self._threads: dict[str, threading.Thread] = {}
        self._batcher: Batcher | None = None

    @property
    def samples_collect(self) -> bool:
        client = self.client
        return type(client).collect is not MonitoringClient.collect or client.splits_ticks

    @property
    def processes(self) -> bool:
        return type(self.client).process is not MonitoringClient.process

    @property
    def state(self) -> State:
        return self.lifecycle.state

    @property
    def _first_queue(self) -> Handoff:
        return self._to_processor if self._to_processor is not None else self._to_batcher

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
                        self._drop,
                        self._quarantined,
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
            stages: list[tuple[str, Any]] = [("batcher", self._run_batcher)]
            if self._to_processor is not None:
                stages.insert(0, ("processor", self._run_processor))
            if self.samples_collect:
                stages.insert(0, ("sampler", self.sampler.run))
            stages.append(("sender", self.sender.run))
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
            threads["sampler"].join()
        # A dead consumer takes nothing: do not wait for room in its queue.
        if self._to_processor is not None and threads["processor"].is_alive():
            self._to_processor.put(_STOP, timeout=60)
            threads["processor"].join()
        if threads["batcher"].is_alive():
            self._to_batcher.put(_STOP, timeout=60)
            threads["batcher"].join()
        with self.outbox.cond:
            # The receiver is already failing: waiting out the whole budget in backoff would
            # only delay the stop (and a container's restart); the spool keeps the data.
            if self.sender.consecutive_failures:
                self.sender.fail_fast = True
                life.wake_retry.set()
            life.advance(State.DRAINING)
            self.outbox.cond.notify_all()
        sender = threads["sender"]
        sender.join(max(0.0, life.deadline - self.clock.monotonic()))
        if sender.is_alive():
            # Budget spent: a request may still hang in the socket (requests cannot be cut
            # short from another thread). Its batch is spooled with the rest. Should the
            # receiver still store it, the replay is a duplicate: Prometheus then answers 400
            # (counted as "rejected") unless out-of-order ingestion is on, where it is ignored.
            life.advance(State.GIVING_UP)
            self.outbox.wake()
            sender.join(0.2)
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
                self._drop("shutdown", len(batch))
                self._log_once("push:stopped", "push() on a pipeline that is not running: dropped")
                return
            frame = Frame(self.clock.time_ns() // 1_000_000)
            if self._to_processor is not None:
                item: Any = (frame, batch, False)
            else:
                self.builder.add_samples(frame, batch)
                if not len(frame):
                    return
                item = frame
            # Like a tick, a push waits for the batcher's deadline or a full batch.
            if not self._first_queue.put(item, len(batch), wake=False, timeout=timeout):
                self._drop("processor_queue_full", len(batch))

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything pushed or collected so far is sent (or spooled/dropped)."""
        if self.lifecycle.state is not State.RUNNING:
            return False
        marker = FlushMarker()
        if not self._first_queue.put(marker, timeout=timeout):
            return False
        return marker.done.wait(timeout)

    # -- accounting and health (the HealthSource protocol) ----------------------------------------

    def _drop(self, reason: str, count: int) -> None:
        if count:
            self.metrics.inc("monitoring_client_samples_dropped_total", count, reason=reason)

    def _stage_error(self, stage: str) -> None:
        """An error a stage thread survived (call it while handling the exception)."""
        self.metrics.inc("monitoring_client_stage_errors_total", stage=stage)
        self._log_once(
            f"{stage}:error", "%s: unexpected error; the stage goes on (logged once)", stage,
            exc=True,
        )  # fmt: skip

    def _quarantined(self, reason: str) -> None:
        self.metrics.inc("monitoring_client_spool_quarantined_total", reason=reason)

    def _log_once(self, key: str, msg: str, *args: object, exc: bool = False) -> None:
        if key not in self._logged:
            if len(self._logged) < 1000:  # bounded: keys can hold receiver text
                self._logged.add(key)
            log.error(msg, *args, exc_info=exc)

    def pending_samples(self) -> int:
        batcher = self._batcher
        queued = self._to_batcher.samples + (
            self._to_processor.samples if self._to_processor is not None else 0
        )
        return self.outbox.pending + queued + (batcher.count if batcher is not None else 0)

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

    # -- processor and batcher threads ------------------------------------------------------------

    def _run_processor(self) -> None:
        assert self._to_processor is not None
        source = self._to_processor
        while True:
            for item in source.take(None)[0]:
                if item is _STOP:
                    return
                try:
                    if isinstance(item, FlushMarker):
                        self._to_batcher.put(item, timeout=60)
                    elif type(item) is RawTick:
                        assert self.decoder is not None
                        decoded = self.decoder.decode(item)
                        if decoded is not None:
                            self._process(*decoded, True)
                    else:
                        self._process(*item)
                except Exception:
                    self._stage_error("processor")

    def _process(self, frame: Frame, samples: list[Sample], from_tick: bool) -> None:
        try:
            samples = self.client.process(samples)
        except Exception:
            self._drop("process_error", len(samples))
            self._log_once(
                "process:exception",
                "process() raised; its samples were dropped (logged once)",
                exc=True,
            )
            samples = []
        if samples:
            self.builder.add_samples(frame, samples)
        if from_tick:
            self.builder.finish_tick(frame)
        if len(frame) and not self._to_batcher.put(frame, len(frame), wake=False, timeout=60):
            self._drop("processor_queue_full", len(frame))

    def _run_batcher(self) -> None:
        clock = self.clock
        push_interval = self.config.push_interval_s
        oldest: float | None = None

        # Released handles whose frames are all with the batcher: dropped at the next batch,
        # which encodes every frame added before it.
        released: list[Series] = []

        def emit(batch: Any) -> None:
            nonlocal oldest
            oldest = None
            self.outbox.put(batch)
            if released:
                self.table.forget(released)
                released.clear()

        batcher = Batcher(
            self.table.handles,
            emit,
            max_samples=self.config.max_samples_per_send,
            drop=self._drop,
            log_once=self._log_once,
        )
        self._batcher = batcher
        next_report = clock.monotonic() + push_interval
        last_report_ms = 0
        source = self._to_batcher
        decoder = self.decoder
        builder = self.builder
        while True:
            deadline = next_report if oldest is None else min(next_report, oldest + push_interval)
            items, first_at = source.take(max(0.0, deadline - clock.monotonic()))
            now = clock.monotonic()
            stop = False
            for item in items:
                if item is _STOP:
                    stop = True
                    continue
                try:
                    if isinstance(item, FlushMarker):
                        batcher.flush()
                        self.outbox.put(item)
                        continue
                    frame = item
                    if type(item) is RawTick:
                        assert decoder is not None
                        decoded = decoder.decode(item)
                        if decoded is None:
                            continue
                        frame = decoded[0]
                        builder.complete(frame, decoded[1])
                    batcher.add(frame, clock.time_ns() // 1_000_000)
                    if frame.tick:
                        released += self.table.released_before(frame.tick)
                except Exception:
                    self._stage_error("batcher")
            try:
                if stop or now >= next_report:
                    next_report = now + push_interval
                    last_report_ms = self._report_self(batcher, last_report_ms)
                if stop:
                    batcher.flush()
            except Exception:
                self._stage_error("batcher")
            if stop:
                return
            try:
                if batcher.count and oldest is None:
                    oldest = now if first_at is None else min(now, first_at)
                if oldest is not None and clock.monotonic() >= oldest + push_interval:
                    batcher.flush()
            except Exception:
                oldest = None
                self._stage_error("batcher")
            # Wake early only for what completes this batch.
            source.wake_samples = max(1, self.config.max_samples_per_send - batcher.count)

    def _report_self(self, batcher: Batcher, last_report_ms: int) -> int:
        """Self-metrics into the batch; returns the timestamp used."""
        self.metrics.set("monitoring_client_pending_samples", float(self.pending_samples()))
        if self._spool is not None:
            self.metrics.set("monitoring_client_spool_bytes", float(self._spool.nbytes))
            self.metrics.set("monitoring_client_spool_samples", float(self._spool.samples))
        stamp = self.clock.time_ns() // 1_000_000
        if stamp <= last_report_ms:
            return last_report_ms
        frame = Frame(stamp)
        self.builder.add_samples(frame, self.metrics.to_samples(stamp))
        batcher.add(frame, stamp)
        return stamp
