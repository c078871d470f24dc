"""Sender: one request in flight, strict order, retries with backoff, a deadline on shutdown.

What an answer means is decided in one place, ``sender.classify``; this module carries it
out. The sender thread does not die: an error nobody foresaw is counted, logged and the same
batch tried again after the longest backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import tenacity

from .clock import Clock
from .config import ClientConfig
from .encoder import split_request
from .lifecycle import Lifecycle
from .outbox import FlushMarker, Outbox
from .redact import scrub
from .selfmetrics import SelfMetrics
from .sender import (
    Backoff,
    Outcome,
    Transport,
    Verdict,
    classify,
    hold_advice,
    make_retrying,
)
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
        self._secrets = config.auth.secrets()
        self.consecutive_failures = 0
        self.last_error = ""
        #: why the receiver holds our data back and the setting that fixes it ("" if it does not)
        self.held = ""
        # Set when a drain starts while the receiver is failing: one more try, then spool.
        self.fail_fast = False
        self._drain_failures = 0
        self._current: Batch | FlushMarker | None = None  # taken, not finished
        # The batch sent last, kept until the next one is: freed at once, its memory went back
        # to the kernel and the batcher faulted it in again for the next batch (5-10 % more
        # CPU per sample at 2000 series, bench/README.md).
        self._previous: Batch | None = None
        self._retrying = make_retrying(
            retry_on_429=config.retry_on_429,
            backoff=backoff,
            should_stop=self._should_stop_retrying,
            sleep=self._sleep,
            before_sleep=self._before_retry,
        )

    def run(self) -> None:
        while True:
            try:
                if not self._step():
                    return
            except Exception as exc:
                self.metrics.inc("monitoring_client_stage_errors_total", stage="sender")
                self.last_error = scrub(f"{type(exc).__name__}: {exc}", self._secrets)[:300]
                self._log_once(
                    f"sender:{type(exc).__name__}",
                    "sender: unexpected %s; the batch is kept and tried again (logged once)",
                    type(exc).__name__,
                    exc=True,
                )
                if self.life.given_up:
                    return
                self._sleep(self.backoff.max_s)

    def _step(self) -> bool:
        """Send the next item; False when the sender is done (stopped, or the shutdown
        deadline came: stop() spools what is left)."""
        item = self._current
        if item is None:
            life = self.life
            item = self.outbox.take(lambda: life.draining, lambda: life.given_up)
            if item is None:
                return False
            self._current = item
        if isinstance(item, FlushMarker):
            self.outbox.marker_reached(item)
            self._current = None
            return True
        rest = self._send(item)
        if rest and rest[0] is item:
            return False  # untouched: it stays in flight and is spooled at stop
        if rest:
            self.outbox.replace_inflight(item, rest)
        else:
            self.outbox.delivered(item)
        self._previous = item
        self._current = None
        return not rest

    def _send(self, batch: Batch) -> list[Batch]:
        """Deliver ``batch`` (in pieces if the receiver wants); returns what is left undelivered
        when the shutdown deadline came first, in order ([] when nothing is)."""
        outcome = self._retrying(self._attempt, batch)
        assert isinstance(outcome, Outcome)
        verdict = classify(outcome, self.config.retry_on_429)
        if verdict is Verdict.SENT:
            self.metrics.inc("monitoring_client_samples_sent_total", batch.samples)
            return []
        if verdict is Verdict.SPLIT:
            return self._split(batch)
        if verdict is Verdict.DROP:
            reason = "rate_limited" if outcome.status == 429 else "rejected"
            self._drop(reason, batch.samples)
            self._log_once(
                f"drop:{outcome.status}:{outcome.body[:100]}",
                "receiver refused a batch of %d samples with HTTP %s (not retried; counted as "
                "dropped, reason %s): %s",
                batch.samples,
                outcome.status,
                reason,
                outcome.body or "<empty body>",
            )
            return []
        return [batch]  # RETRY or HOLD: retrying stopped at the shutdown deadline

    def _split(self, batch: Batch) -> list[Batch]:
        """413: the halves in order, each split again while refused; a single sample that is
        still too large is dropped and counted."""
        halves = split_request(batch.payload)
        if halves is None:
            self._drop("too_large", batch.samples)
            self._log_once(
                "413:single",
                "receiver answered 413 (request too large) to a request of %d sample(s) that "
                "cannot be split further: dropped (reason too_large); raise the receiver's "
                "request size limit",
                batch.samples,
            )
            return []
        self._log_once(
            "413:split",
            "receiver answered 413 (request too large) to a batch of %d samples: sending it in "
            "smaller requests; set MAX_SAMPLES_PER_SEND below %d (now %d) to avoid this",
            batch.samples,
            batch.samples,
            self.config.max_samples_per_send,
        )
        pieces = [Batch(payload, samples) for payload, samples in halves]
        for index, piece in enumerate(pieces):
            rest = self._send(piece)
            if rest:
                return rest + pieces[index + 1 :]
        return []

    def _attempt(self, batch: Batch) -> Outcome:
        timeout = None
        if self.life.draining:
            timeout = max(0.05, self.life.deadline - self.clock.monotonic())
        try:
            outcome = self.transport.post(batch.payload, timeout)
        except Exception as exc:
            error = scrub(f"{type(exc).__name__}: {exc}", self._secrets)[:300]
            outcome = Outcome(None, error)
        self.metrics.inc("monitoring_client_requests_total", code=outcome.code_label)
        self.metrics.inc("monitoring_client_send_duration_seconds_sum", outcome.duration_s)
        self.metrics.inc("monitoring_client_send_duration_seconds_count")
        verdict = classify(outcome, self.config.retry_on_429)
        if verdict is Verdict.RETRY or verdict is Verdict.HOLD:
            self._failed(outcome, verdict)
        elif self.consecutive_failures:  # nothing to reset after a success (the usual case)
            log.info("remote write recovered after %d failed attempts", self.consecutive_failures)
            self.consecutive_failures = 0
            self.last_error = ""
            self.held = ""
            self.outbox.note_success()
        return outcome

    def _failed(self, outcome: Outcome, verdict: Verdict) -> None:
        self.consecutive_failures += 1
        self.outbox.note_failure()
        if self.life.draining:
            self._drain_failures += 1
        self.last_error = outcome.error or f"HTTP {outcome.status} {outcome.body}".strip()
        first = self.consecutive_failures == 1 or self.consecutive_failures % 100 == 0
        if verdict is Verdict.HOLD:
            advice = hold_advice(outcome.status, self.config)
            if first or advice != self.held:
                log.error(
                    "%s (%s); the data is held%s and sent again every %gs (MAX_BACKOFF_S)",
                    advice,
                    outcome.body or "<empty body>",
                    " in the spool" if self.config.spool_dir is not None else " in memory",
                    self.backoff.max_s,
                )
            self.held = advice
        elif first:
            self.held = ""
            log.warning(
                "remote write to %s failed (%s); retrying (attempt %d)",
                self.config.remote_write_url,
                self.last_error,
                self.consecutive_failures,
            )

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
