"""Sender: one request in flight, strict order, retries with backoff, a deadline on shutdown."""

from __future__ import annotations

import logging
from collections.abc import Callable

import tenacity

from .clock import Clock
from .config import ClientConfig
from .lifecycle import Lifecycle
from .outbox import FlushMarker, Outbox
from .selfmetrics import SelfMetrics
from .sender import Backoff, Outcome, Transport, Verdict, classify, make_retrying
from .spool import Batch

log = logging.getLogger(__name__)


class Sender:
    def __init__(
        self,
        transport: Transport,
        outbox: Outbox,
        config: ClientConfig,
        lifecycle: Lifecycle,
        *,
        metrics: SelfMetrics,
        clock: Clock,
        backoff: Backoff,
        drop: Callable[[str, int], None],
        log_once: Callable[..., None],
    ) -> None:
        self.transport = transport
        self.outbox = outbox
        self.config = config
        self.life = lifecycle
        self.metrics = metrics
        self.clock = clock
        self.backoff = backoff
        self._drop = drop
        self._log_once = log_once
        self.consecutive_failures = 0
        self.last_error = ""
        # Set when a drain starts while the receiver is failing: one more try, then spool.
        self.fail_fast = False
        self._drain_failures = 0

    def run(self) -> None:
        retrying = make_retrying(
            retry_on_429=self.config.retry_on_429,
            backoff=self.backoff,
            should_stop=self._should_stop_retrying,
            sleep=self._sleep,
            before_sleep=self._before_retry,
        )
        life = self.life
        while True:
            item = self.outbox.take(lambda: life.draining, lambda: life.given_up)
            if item is None:
                return
            if isinstance(item, FlushMarker):
                self.outbox.marker_reached(item)
                continue
            outcome = retrying(self._attempt, item)
            assert isinstance(outcome, Outcome)
            verdict = classify(outcome, self.config.retry_on_429)
            if verdict is Verdict.RETRY:
                return  # gave up at the shutdown deadline: stop() spools what is left
            self.outbox.delivered(item)
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
        if self.life.draining:
            timeout = max(0.05, self.life.deadline - self.clock.monotonic())
        outcome = self.transport.post(batch.payload, timeout)
        self.metrics.inc("monitoring_client_requests_total", code=outcome.code_label)
        self.metrics.inc("monitoring_client_send_duration_seconds_sum", outcome.duration_s)
        self.metrics.inc("monitoring_client_send_duration_seconds_count")
        if classify(outcome, self.config.retry_on_429) is Verdict.RETRY:
            self.consecutive_failures += 1
            if self.life.draining:
                self._drain_failures += 1
            self.last_error = outcome.error or f"HTTP {outcome.status} {outcome.body[:200]}"
            if self.consecutive_failures == 1 or self.consecutive_failures % 100 == 0:
                log.warning(
                    "remote write to %s failed (%s); retrying (attempt %d)",
                    self.config.remote_write_url,
                    self.last_error,
                    self.consecutive_failures,
                )
        else:
            if self.consecutive_failures:
                log.info(
                    "remote write recovered after %d failed attempts", self.consecutive_failures
                )
            self.consecutive_failures = 0
            self.last_error = ""
        return outcome

    def _should_stop_retrying(self, state: tenacity.RetryCallState) -> bool:
        life = self.life
        if life.given_up:
            return True
        if self.fail_fast and self._drain_failures:
            return True
        return life.draining and self.clock.monotonic() >= life.deadline

    def _sleep(self, seconds: float) -> None:
        if self.life.draining:
            seconds = min(seconds, max(0.0, self.life.deadline - self.clock.monotonic()))
        self.clock.wait(self.life.wake_retry, seconds)

    def _before_retry(self, state: tenacity.RetryCallState) -> None:
        batch = state.args[0] if state.args else None
        if isinstance(batch, Batch):
            self.metrics.inc("monitoring_client_samples_retried_total", batch.samples)
