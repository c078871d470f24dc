"""The sender stage: one request in flight, strict order, retries with backoff, a deadline
on shutdown; and what an answer means (``classify``).

2xx sent; connection errors, timeouts and 5xx retried with exponential backoff and jitter;
429 retried honouring Retry-After unless RETRY_ON_429=false; 401, 403 and 404 held (a
configuration fix lets the data through: kept, tried again at the longest backoff); 413 split
in halves until accepted; any other 4xx (400: the data can never be accepted) dropped,
counted and never retried.

Each attempt is classified once (``Attempt``); the retry loop, its waits and the sender all
read that verdict. The sender thread does not die: an error nobody foresaw is counted, logged
and the same batch tried again after the longest backoff.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

import tenacity

from .clock import Clock
from .config import ClientConfig
from .encoder import split_request
from .lifecycle import Lifecycle, State
from .outbox import FlushMarker, Outbox
from .redact import scrub
from .selfmetrics import SelfMetrics
from .spool import Batch
from .transport import Outcome, Transport

log = logging.getLogger(__name__)

#: answers that a configuration fix (credentials, tenant, URL) turns into 2xx
HOLD_STATUSES = frozenset({401, 403, 404})
TOO_LARGE = 413


class Verdict(enum.Enum):
    SENT = "sent"
    #: not delivered, try again after the backoff (connection error, timeout, 5xx, 429)
    RETRY = "retry"
    #: refused until the configuration is fixed: keep the data, try again at the longest backoff
    HOLD = "hold"
    #: too large for the receiver: send it in halves
    SPLIT = "split"
    #: never acceptable: drop and count
    DROP = "drop"


def classify(outcome: Outcome, retry_on_429: bool) -> Verdict:
    """What an answer means for its batch: the one place that decides retry, hold, split or
    drop.

    Remote write 1.0 says a sender must not retry 4xx. A push client has no store to go back
    to once it drops a batch, so it departs from that where the cause is on the client's side
    and a fix is coming: 401/403/404 (credentials, tenant, URL) are held until the fix, 413
    is sent again in smaller requests. Only what can never be accepted (400, 409, 422, ...)
    is dropped.
    """
    status = outcome.status
    if status is None:
        return Verdict.RETRY
    if 200 <= status < 300:
        return Verdict.SENT
    if status == 429:
        return Verdict.RETRY if retry_on_429 else Verdict.DROP
    if status >= 500:
        return Verdict.RETRY
    if status in HOLD_STATUSES:
        return Verdict.HOLD
    if status == TOO_LARGE:
        return Verdict.SPLIT
    return Verdict.DROP


def hold_advice(status: int | None, config: ClientConfig) -> str:
    """Why the receiver holds our data back (401/403/404) and which setting fixes it."""
    auth = config.auth
    if status == 401:
        if auth.bearer_token:
            used = "the bearer token (REMOTE_WRITE_BEARER_TOKEN or _FILE) was refused"
        elif auth.basic_auth_user:
            used = (
                "the basic auth credentials (REMOTE_WRITE_BASIC_AUTH_USER and _PASSWORD or "
                "_PASSWORD_FILE) were refused"
            )
        else:
            used = (
                "no credentials are set: set REMOTE_WRITE_BEARER_TOKEN_FILE or "
                "REMOTE_WRITE_BASIC_AUTH_USER and REMOTE_WRITE_BASIC_AUTH_PASSWORD_FILE"
            )
        return f"receiver answered 401 Unauthorized: {used}; fix them and restart the client"
    if status == 403:
        return (
            "receiver answered 403 Forbidden: these credentials may not write here; check "
            "their permissions and the tenant header (REMOTE_WRITE_HEADERS, e.g. "
            "X-Scope-OrgID=team1), then restart the client"
        )
    return (
        f"receiver answered {status} Not Found at REMOTE_WRITE_URL={config.remote_write_url}: "
        "fix the URL's path (Prometheus: /api/v1/write, started with "
        "--web.enable-remote-write-receiver), then restart the client"
    )


class Backoff:
    """Exponential backoff with jitter, bounded by [min_s, max_s].

    Attempt n (1-based) waits a uniform random time in [cap/2, cap] with
    cap = min(max_s, min_s * 2**(n-1)), never below min_s.
    """

    def __init__(self, min_s: float, max_s: float, rng: random.Random | None = None) -> None:
        self.min_s = min_s
        self.max_s = max(max_s, min_s)
        self._rng = rng or random.Random()

    def delay(self, attempt: int) -> float:
        cap = min(self.max_s, self.min_s * (2.0 ** min(max(attempt - 1, 0), 60)))
        return max(self.min_s, self._rng.uniform(cap / 2.0, cap))


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST and its verdict, decided once."""

    outcome: Outcome
    verdict: Verdict

    @property
    def again(self) -> bool:
        return self.verdict is Verdict.RETRY or self.verdict is Verdict.HOLD

    def wait_s(self, backoff: Backoff, attempt_number: int) -> float:
        """How long to wait before the next try: Retry-After for a 429 that has one, the
        longest backoff while held (nothing changes until someone fixes the settings), else
        the backoff."""
        if self.outcome.status == 429 and self.outcome.retry_after_s:
            return self.outcome.retry_after_s
        if self.verdict is Verdict.HOLD:
            return backoff.max_s
        return backoff.delay(attempt_number)


def make_retrying(
    *,
    backoff: Backoff,
    should_stop: Callable[[tenacity.RetryCallState], bool],
    sleep: Callable[[float], None],
    before_sleep: Callable[[tenacity.RetryCallState], None],
) -> tenacity.Retrying:
    """The one retry loop: tries an attempt function returning an ``Attempt`` again while its
    verdict says so, waiting ``Attempt.wait_s``; when ``should_stop`` says so it returns the
    last Attempt instead of raising."""

    def last(state: tenacity.RetryCallState) -> Attempt:
        assert state.outcome is not None
        result = state.outcome.result()
        assert isinstance(result, Attempt)
        return result

    def retry(state: tenacity.RetryCallState) -> bool:
        return state.outcome is not None and not state.outcome.failed and last(state).again

    def wait(state: tenacity.RetryCallState) -> float:
        return last(state).wait_s(backoff, state.attempt_number)

    return tenacity.Retrying(
        retry=retry,
        wait=wait,
        stop=should_stop,
        sleep=sleep,
        before_sleep=before_sleep,
        retry_error_callback=last,
        reraise=False,
    )


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
    ) -> None:
        self.transport = transport
        self.outbox = outbox
        self.config = config
        self.life = lifecycle
        self.metrics = metrics
        self.clock = clock
        self.backoff = backoff
        self._drop = metrics.problems.drop
        self._log_once = metrics.problems.log_once
        # This thread's counters, added to without the lock (a request moves them all).
        self._sent = metrics.cell("monitoring_client_samples_sent_total")
        self._send_seconds = metrics.cell("monitoring_client_send_duration_seconds_sum")
        self._sends = metrics.cell("monitoring_client_send_duration_seconds_count")
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
            backoff=backoff,
            should_stop=self._should_stop_retrying,
            sleep=self._sleep,
            before_sleep=self._before_retry,
        )

    def drain(self, thread: threading.Thread) -> bool:
        """Send what the outbox holds until the shutdown deadline; True when done in time.

        A receiver that is already failing gets one more try, not the whole budget spent in
        backoff (that would only delay the stop, and a container's restart): the spool keeps
        the data."""
        life = self.life
        if self.consecutive_failures:
            self.fail_fast = True
            life.wake_retry.set()
        self.outbox.finish(lambda: life.advance(State.DRAINING))
        thread.join(max(0.0, life.deadline - self.clock.monotonic()))
        return not thread.is_alive()

    def give_up(self, thread: threading.Thread) -> None:
        """The budget is spent: stop now. A request may still hang in the socket (requests
        cannot be cut short from another thread); its batch is spooled with the rest, and
        should the receiver still store it, the replay is a duplicate (Prometheus answers 400,
        counted as "rejected", unless out-of-order ingestion is on, where it is ignored)."""
        self.outbox.finish(lambda: self.life.advance(State.GIVING_UP))
        thread.join(0.2)

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
        attempt = self._attempt(batch)
        if attempt.again:
            attempt = self._retry(batch, attempt)
        outcome, verdict = attempt.outcome, attempt.verdict
        if verdict is Verdict.SENT:
            self._sent.value += batch.samples
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

    def _retry(self, batch: Batch, failed: Attempt) -> Attempt:
        """The retry loop, from a first attempt that failed: most requests succeed at once,
        and a loop set up for each cost more than the rest of the sender's work on it."""
        answers = [failed]

        def attempt(batch: Batch) -> Attempt:
            return answers.pop() if answers else self._attempt(batch)

        result = self._retrying(attempt, batch)
        assert isinstance(result, Attempt)
        return result

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

    def _attempt(self, batch: Batch) -> Attempt:
        timeout = None
        if self.life.draining:
            timeout = max(0.05, self.life.deadline - self.clock.monotonic())
        try:
            outcome = self.transport.post(batch.payload, timeout)
        except Exception as exc:
            error = scrub(f"{type(exc).__name__}: {exc}", self._secrets)[:300]
            outcome = Outcome(None, error)
        self.metrics.inc("monitoring_client_requests_total", code=outcome.code_label)
        self._send_seconds.value += outcome.duration_s
        self._sends.value += 1
        attempt = Attempt(outcome, classify(outcome, self.config.retry_on_429))
        if attempt.again:
            self._failed(outcome, attempt.verdict)
        elif self.consecutive_failures:  # nothing to reset after a success (the usual case)
            log.info("remote write recovered after %d failed attempts", self.consecutive_failures)
            self.consecutive_failures = 0
            self.last_error = ""
            self.held = ""
            self.outbox.note_success()
        return attempt

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
