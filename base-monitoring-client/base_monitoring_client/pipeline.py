"""The threaded pipeline: sampler -> processor -> batcher -> sender -> receiver.

Each stage is a named thread; stages are joined by bounded queues. The sampler keeps a
drift-free schedule on monotonic deadlines (a slow collect() skips ticks and counts them).
The batcher flushes at MAX_SAMPLES_PER_SEND or PUSH_INTERVAL_S. The sender keeps one request
in flight and strict order; what it cannot send yet waits in memory (QUEUE_CAPACITY samples)
and then in the disk spool, which is drained oldest-first before anything newer.
"""

from __future__ import annotations

import collections
import logging
import math
import queue
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import tenacity

from . import __version__
from .client import MonitoringClient
from .clock import SYSTEM_CLOCK, Clock
from .config import ClientConfig
from .encoder import SeriesEncoder, compress
from .errors import EncodeError, MonitoringClientError
from .health import HealthServer
from .sample import Sample
from .selfmetrics import SelfMetrics
from .sender import Backoff, HttpTransport, Outcome, Verdict, classify, make_retrying
from .spool import Batch, Spool

log = logging.getLogger(__name__)

# A sample more than this far ahead of the wall clock is refused before sending: Prometheus
# rejects the whole request for one such sample.
MAX_FUTURE_MS = 10 * 60 * 1000
_TICK_QUEUE_SIZE = 1024


@dataclass
class _FlushMarker:
    done: threading.Event = field(default_factory=threading.Event)


_STOP = object()


class Pipeline:
    """Runs one MonitoringClient until stop(). Thread-safe push()/flush()/stop()."""

    def __init__(
        self,
        client: MonitoringClient,
        config: ClientConfig,
        *,
        clock: Clock = SYSTEM_CLOCK,
        transport: Any = None,
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
        self.transport = transport or HttpTransport(config, f"wattpush/{__version__}")
        self.backoff = backoff or Backoff(config.min_backoff_s, config.max_backoff_s)
        self._ticks: queue.Queue[Any] = queue.Queue(_TICK_QUEUE_SIZE)
        self._to_batcher: queue.Queue[Any] = queue.Queue(_TICK_QUEUE_SIZE)
        self._cond = threading.Condition()
        self._outbox: collections.deque[Batch | _FlushMarker] = collections.deque()
        self._outbox_samples = 0
        self._batcher_pending = 0
        self._inflight: Batch | None = None
        self._waiting_markers: list[_FlushMarker] = []
        self._spool: Spool | None = None
        self._stop_sampling = threading.Event()
        self._draining = threading.Event()
        self._give_up = threading.Event()
        # Cuts a retry's backoff sleep short: at give-up, or when a drain starts while the
        # receiver is failing (one more attempt, then spool: see _should_stop_retrying).
        self._wake_retry = threading.Event()
        self._fail_fast = False
        self._drain_failures = 0
        self._drain_deadline = math.inf
        self._threads: list[threading.Thread] = []
        self._lifecycle = threading.Lock()
        self._started = False
        self._stopped = False
        self._consecutive_failures = 0
        self._last_error = ""
        self._logged_reasons: set[str] = set()
        self._health: HealthServer | None = None

    # -- life cycle ---------------------------------------------------------------------------

    @property
    def samples_collect(self) -> bool:
        return type(self.client).collect is not MonitoringClient.collect

    def start(self) -> None:
        with self._lifecycle:
            if self._started:
                return
            self._started = True
            if self.config.spool_dir is not None:
                self._spool = Spool(self.config.spool_dir, self.config.spool_max_bytes, self._drop)
                if len(self._spool):
                    log.info(
                        "spool %s holds %d batches (%d samples) from an earlier run; "
                        "sending them first",
                        self.config.spool_dir,
                        len(self._spool),
                        self._spool.samples,
                    )
            try:
                self.client.setup()
                if self.config.health_port:
                    self._health = HealthServer(
                        self.config.health_address, self.config.health_port, self
                    )
                    self._health.start()
            except BaseException:
                self._stopped = True
                self._close_resources()
                raise
            stages = [
                ("processor", self._run_processor),
                ("batcher", self._run_batcher),
                ("sender", self._run_sender),
            ]
            if self.samples_collect:
                stages.insert(0, ("sampler", self._run_sampler))
            for name, target in stages:
                thread = threading.Thread(target=target, name=name, daemon=True)
                thread.start()
                self._threads.append(thread)

    def __enter__(self) -> Pipeline:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float | None = None) -> None:
        """Stop sampling, send what is pending within SHUTDOWN_TIMEOUT_S, spool the rest."""
        with self._lifecycle:
            if self._stopped or not self._threads:
                self._stopped = True
                return
            self._stopped = True
        budget = self.config.shutdown_timeout_s if timeout is None else timeout
        self._drain_deadline = self.clock.monotonic() + budget
        self._stop_sampling.set()
        by_name = {t.name: t for t in self._threads}
        if "sampler" in by_name:
            by_name["sampler"].join()
        self._ticks.put(_STOP)
        by_name["processor"].join()
        self._to_batcher.put(_STOP)
        by_name["batcher"].join()
        with self._cond:
            # The receiver is already failing: waiting out the whole budget in backoff would
            # only delay the stop (and a container's restart); the spool keeps the data.
            if self._consecutive_failures:
                self._fail_fast = True
                self._wake_retry.set()
            self._draining.set()
            self._cond.notify_all()
        remaining = max(0.0, self._drain_deadline - self.clock.monotonic())
        by_name["sender"].join(remaining)
        if by_name["sender"].is_alive():
            # Budget spent: a request may still hang in the socket (requests cannot be cut
            # short from another thread). Its batch is spooled with the rest. Should the
            # receiver still store it, the replay is a duplicate: Prometheus then answers 400
            # (counted as "rejected") unless out-of-order ingestion is on, where it is ignored.
            self._give_up.set()
            self._wake_retry.set()
            with self._cond:
                self._cond.notify_all()
            by_name["sender"].join(0.2)
        self._spool_leftovers()
        self._close_resources()
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
        close = getattr(self.transport, "close", None)
        if callable(close):
            close()

    def _spool_leftovers(self) -> None:
        with self._cond:
            leftovers: list[Batch] = []
            if self._inflight is not None:
                leftovers.append(self._inflight)
                self._inflight = None
            for item in self._outbox:
                if isinstance(item, Batch):
                    leftovers.append(item)
                else:
                    item.done.set()
            self._outbox.clear()
            self._outbox_samples = 0
            for marker in self._waiting_markers:
                marker.done.set()
            self._waiting_markers.clear()
        # Memory batches are older than anything on disk (see _handoff): spool them in front.
        leftovers = [b for b in leftovers if b.seq is None]
        if self._spool is not None:
            self._spool.prepend(leftovers)
        else:
            for batch in leftovers:
                self._drop("shutdown", batch.samples)
        if leftovers:
            log.warning(
                "shutdown: %d samples not delivered in time were %s",
                sum(b.samples for b in leftovers if b.seq is None),
                "spooled" if self._spool is not None else "dropped (set SPOOL_DIR to keep them)",
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
        with self._lifecycle:
            if self._stopped or not self._started:
                self._drop("shutdown", len(batch))
                self._log_once("push:stopped", "push() on a pipeline that is not running: dropped")
                return
            try:
                self._ticks.put((batch, False), timeout=timeout)
            except queue.Full:
                self._drop("processor_queue_full", len(batch))

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything pushed or collected so far is sent (or spooled/dropped)."""
        if not self._started or self._stopped:
            return False
        marker = _FlushMarker()
        try:
            self._ticks.put(marker, timeout=timeout)
        except queue.Full:
            return False
        return marker.done.wait(timeout)

    # -- accounting --------------------------------------------------------------------------

    def _drop(self, reason: str, count: int) -> None:
        if count:
            self.metrics.inc("monitoring_client_samples_dropped_total", count, reason=reason)

    def _log_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._logged_reasons:
            if len(self._logged_reasons) < 1000:
                self._logged_reasons.add(key)
            log.error(message, *args)

    def pending_samples(self) -> int:
        with self._cond:
            inflight = self._inflight.samples if self._inflight is not None else 0
            return self._outbox_samples + self._batcher_pending + inflight

    def health(self) -> tuple[str, list[str]]:
        reasons: list[str] = []
        if self._consecutive_failures:
            reasons.append(
                f"last {self._consecutive_failures} send attempts failed: {self._last_error}"
            )
        if self._spool is not None and len(self._spool):
            reasons.append(f"{self._spool.samples} samples waiting in the spool")
        if self._stopped:
            reasons.append("stopped")
        return ("degraded" if reasons else "ok"), reasons

    # -- sampler --------------------------------------------------------------------------------

    def _run_sampler(self) -> None:
        interval = self.config.sample_interval_s
        clock = self.clock
        start = clock.monotonic()
        tick = 0
        while True:
            deadline = start + tick * interval
            if clock.wait(self._stop_sampling, deadline - clock.monotonic()):
                return
            began = clock.monotonic()
            self.metrics.observe_lag(max(0.0, began - deadline))
            try:
                samples = list(self.client.collect(clock.time_ns()))
            except MonitoringClientError as exc:
                samples = []
                self._log_once(f"collect:{exc}", "collect() failed: %s", exc)
            except Exception:
                samples = []
                if "collect:exception" not in self._logged_reasons:
                    self._logged_reasons.add("collect:exception")
                    log.exception("collect() raised; sampling goes on (logged once)")
            finished = clock.monotonic()
            self.metrics.inc("monitoring_client_collect_duration_seconds_sum", finished - began)
            self.metrics.inc("monitoring_client_collect_duration_seconds_count")
            if samples:
                self.metrics.inc("monitoring_client_samples_collected_total", len(samples))
                try:
                    self._ticks.put_nowait((samples, True))
                except queue.Full:
                    self._drop("processor_queue_full", len(samples))
            next_tick = tick + 1
            if start + next_tick * interval <= finished:
                # Overran: resume at the first deadline still ahead, never bunch ticks.
                next_tick = math.floor((finished - start) / interval) + 1
                self.metrics.inc("monitoring_client_skipped_ticks_total", next_tick - tick - 1)
            tick = next_tick

    # -- processor ------------------------------------------------------------------------------

    def _run_processor(self) -> None:
        previous: dict[tuple[str, tuple[tuple[str, str], ...]], Sample] = {}
        auto_stale = self.client.auto_stale
        while True:
            item = self._ticks.get()
            if item is _STOP:
                return
            if isinstance(item, _FlushMarker):
                self._to_batcher.put(item)
                continue
            samples, from_tick = item
            try:
                samples = self.client.process(samples)
            except Exception:
                self._drop("process_error", len(samples))
                if "process:exception" not in self._logged_reasons:
                    self._logged_reasons.add("process:exception")
                    log.exception("process() raised; its samples were dropped (logged once)")
                continue
            if from_tick and auto_stale:
                samples = self._add_stale_markers(samples, previous)
            if samples:
                self._to_batcher.put(samples)

    @staticmethod
    def _add_stale_markers(
        samples: list[Sample], previous: dict[tuple[str, tuple[tuple[str, str], ...]], Sample]
    ) -> list[Sample]:
        current = {(s.name, tuple(sorted(s.labels.items()))): s for s in samples if not s.is_stale}
        gone = [key for key in previous if key not in current]
        if gone:
            stamp = max((s.timestamp_ms for s in samples), default=0)
            out = list(samples)
            for key in gone:
                old = previous[key]
                out.append(Sample.stale(old.name, old.labels, max(stamp, old.timestamp_ms + 1)))
            samples = out
        previous.clear()
        previous.update(current)
        return samples

    # -- batcher --------------------------------------------------------------------------------

    def _run_batcher(self) -> None:
        encoder = SeriesEncoder(self.default_labels)
        last_ts: dict[bytes, int] = {}
        groups: dict[bytes, list[tuple[float, int]]] = {}
        count = 0
        oldest: float | None = None
        push_interval = self.config.push_interval_s
        max_samples = self.config.max_samples_per_send
        next_report = self.clock.monotonic() + push_interval
        last_report_ms = 0

        def flush() -> None:
            nonlocal groups, count, oldest
            if count:
                payload = compress(encoder.encode_grouped(list(groups.items())))
                self._handoff(Batch(payload, count))
            groups = {}
            count = 0
            oldest = None
            with self._cond:
                self._batcher_pending = 0

        def add(samples: list[Sample]) -> None:
            nonlocal count, oldest
            now_ms = self.clock.time_ns() // 1_000_000
            for s in samples:
                try:
                    ref = encoder.series(s.name, s.labels)
                    ts = s.timestamp_ms
                    if type(ts) is not int:
                        raise EncodeError(f"series {s.name!r}: timestamp {ts!r} is not an int")
                except EncodeError as exc:
                    self._drop("invalid_series", 1)
                    self._log_once(f"invalid:{exc}", "dropping invalid sample: %s", exc)
                    continue
                key = ref.key
                if ts <= last_ts.get(key, -(1 << 63)):
                    self._drop("out_of_order", 1)
                    self._log_once(
                        f"ooo:{s.name}",
                        "dropping samples of %s whose timestamps do not increase "
                        "(logged once per metric)",
                        s.name,
                    )
                    continue
                if ts <= 0 or ts > now_ms + MAX_FUTURE_MS:
                    self._drop("invalid_timestamp", 1)
                    self._log_once(
                        f"ts:{s.name}", "dropping %s: timestamp %d ms is out of range", s.name, ts
                    )
                    continue
                last_ts[key] = ts
                points = groups.get(key)
                if points is None:
                    groups[key] = [(s.value, ts)]
                else:
                    points.append((s.value, ts))
                count += 1
                if oldest is None:
                    oldest = self.clock.monotonic()
                if count >= max_samples:
                    flush()
            with self._cond:
                self._batcher_pending = count

        def report_self(force: bool = False) -> None:
            nonlocal next_report, last_report_ms
            now = self.clock.monotonic()
            if not force and now < next_report:
                return
            next_report = now + push_interval
            self.metrics.set("monitoring_client_pending_samples", float(self.pending_samples()))
            if self._spool is not None:
                self.metrics.set("monitoring_client_spool_bytes", float(self._spool.nbytes))
                self.metrics.set("monitoring_client_spool_samples", float(self._spool.samples))
            stamp = self.clock.time_ns() // 1_000_000
            if stamp <= last_report_ms:
                return
            last_report_ms = stamp
            add(self.metrics.to_samples(stamp))

        while True:
            deadline = next_report if oldest is None else min(next_report, oldest + push_interval)
            timeout = max(0.0, deadline - self.clock.monotonic())
            try:
                item = self._to_batcher.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is _STOP:
                report_self(force=True)
                flush()
                return
            if isinstance(item, _FlushMarker):
                flush()
                self._handoff(item)
            elif item is not None:
                add(item)
            report_self()
            if oldest is not None and self.clock.monotonic() >= oldest + push_interval:
                flush()

    def _handoff(self, item: Batch | _FlushMarker) -> None:
        with self._cond:
            if isinstance(item, Batch):
                spool = self._spool
                over = self._outbox_samples + item.samples > self.config.queue_capacity
                if spool is not None and (over or len(spool)):
                    # Once anything is spooled, newer batches queue behind it on disk: order.
                    spool.append(item)
                elif over:
                    self._drop("queue_full", item.samples)
                    self._log_once(
                        "queue_full",
                        "in-memory queue full (QUEUE_CAPACITY=%d): dropping batches; "
                        "set SPOOL_DIR to buffer on disk",
                        self.config.queue_capacity,
                    )
                else:
                    self._outbox.append(item)
                    self._outbox_samples += item.samples
            else:
                self._outbox.append(item)
            self._cond.notify_all()

    # -- sender ---------------------------------------------------------------------------------

    def _next_item(self) -> Batch | _FlushMarker | None:
        """Next thing to send, in order; None when draining is over."""
        with self._cond:
            while True:
                if self._give_up.is_set():
                    return None
                if self._outbox:
                    item = self._outbox.popleft()
                    if isinstance(item, Batch):
                        self._outbox_samples -= item.samples
                        self._inflight = item
                    return item
                spooled = self._spool.peek() if self._spool is not None else None
                if spooled is not None:
                    self._inflight = spooled
                    return spooled
                for marker in self._waiting_markers:
                    marker.done.set()
                self._waiting_markers.clear()
                if self._draining.is_set():
                    return None
                self._cond.wait(0.5)

    def _run_sender(self) -> None:
        retrying = make_retrying(
            retry_on_429=self.config.retry_on_429,
            backoff=self.backoff,
            should_stop=self._should_stop_retrying,
            sleep=self._sleep,
            before_sleep=self._before_retry,
        )
        while True:
            item = self._next_item()
            if item is None:
                return
            if isinstance(item, _FlushMarker):
                with self._cond:
                    if self._spool is not None and len(self._spool):
                        self._waiting_markers.append(item)
                    else:
                        item.done.set()
                continue
            outcome = retrying(self._attempt, item)
            assert isinstance(outcome, Outcome)
            verdict = classify(outcome, self.config.retry_on_429)
            if verdict is Verdict.RETRY:
                return  # gave up at the shutdown deadline: stop() spools what is left
            with self._cond:
                self._inflight = None
            if self._spool is not None and item.seq is not None:
                self._spool.remove(item)
            if verdict is Verdict.SENT:
                self.metrics.inc("monitoring_client_samples_sent_total", item.samples)
            else:
                reason = "rate_limited" if outcome.status == 429 else "rejected"
                self._drop(reason, item.samples)
                self._log_once(
                    f"drop:{outcome.status}:{outcome.body[:200]}",
                    "receiver refused a batch of %d samples with HTTP %s (not retried): %s",
                    item.samples,
                    outcome.status,
                    outcome.body.strip()[:500] or "<empty body>",
                )

    def _attempt(self, batch: Batch) -> Outcome:
        timeout = None
        if self._draining.is_set():
            timeout = max(0.05, self._drain_deadline - self.clock.monotonic())
        outcome: Outcome = self.transport.post(batch.payload, timeout)
        self.metrics.inc("monitoring_client_requests_total", code=outcome.code_label)
        self.metrics.inc("monitoring_client_send_duration_seconds_sum", outcome.duration_s)
        self.metrics.inc("monitoring_client_send_duration_seconds_count")
        if classify(outcome, self.config.retry_on_429) is Verdict.RETRY:
            self._consecutive_failures += 1
            if self._draining.is_set():
                self._drain_failures += 1
            self._last_error = outcome.error or f"HTTP {outcome.status} {outcome.body[:200]}"
            if self._consecutive_failures == 1 or self._consecutive_failures % 100 == 0:
                log.warning(
                    "remote write to %s failed (%s); retrying (attempt %d)",
                    self.config.remote_write_url,
                    self._last_error,
                    self._consecutive_failures,
                )
        else:
            if self._consecutive_failures:
                log.info(
                    "remote write recovered after %d failed attempts", self._consecutive_failures
                )
            self._consecutive_failures = 0
            self._last_error = ""
        return outcome

    def _should_stop_retrying(self, state: tenacity.RetryCallState) -> bool:
        if self._give_up.is_set():
            return True
        if self._fail_fast and self._drain_failures:
            return True
        return self._draining.is_set() and self.clock.monotonic() >= self._drain_deadline

    def _sleep(self, seconds: float) -> None:
        if self._draining.is_set():
            seconds = min(seconds, max(0.0, self._drain_deadline - self.clock.monotonic()))
        self.clock.wait(self._wake_retry, seconds)

    def _before_retry(self, state: tenacity.RetryCallState) -> None:
        batch = state.args[0] if state.args else None
        if isinstance(batch, Batch):
            self.metrics.inc("monitoring_client_samples_retried_total", batch.samples)
