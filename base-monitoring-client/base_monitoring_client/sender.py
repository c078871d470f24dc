"""One remote-write attempt over HTTP, and what to do about its result.

Classification: 2xx sent; connection errors, timeouts and 5xx retried with
exponential backoff and jitter; 429 retried honouring Retry-After unless RETRY_ON_429=false;
any other 4xx dropped, counted and never retried.
"""

from __future__ import annotations

import email.utils
import enum
import logging
import math
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import requests
import tenacity

from .config import ClientConfig

log = logging.getLogger(__name__)

MAX_RETRY_AFTER_S = 600.0


class Verdict(enum.Enum):
    SENT = "sent"
    RETRY = "retry"
    DROP = "drop"


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: an HTTP status, or an error before any status arrived."""

    status: int | None
    error: str | None = None
    body: str = ""
    retry_after_s: float | None = None
    duration_s: float = 0.0

    @property
    def code_label(self) -> str:
        return str(self.status) if self.status is not None else "error"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date. None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        current = datetime.fromtimestamp(time.time() if now is None else now, UTC)
        seconds = (when - current).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_S)


def classify(outcome: Outcome, retry_on_429: bool) -> Verdict:
    if outcome.status is None:
        return Verdict.RETRY
    if 200 <= outcome.status < 300:
        return Verdict.SENT
    if outcome.status == 429:
        return Verdict.RETRY if retry_on_429 else Verdict.DROP
    if outcome.status >= 500:
        return Verdict.RETRY
    return Verdict.DROP


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


class Transport(Protocol):
    """Where batches go: one POST per call, never raising for what the receiver answers."""

    def post(self, body: bytes, timeout_s: float | None = None) -> Outcome: ...

    def close(self) -> None: ...


class HttpTransport:
    """POSTs remote-write bodies on one keep-alive session."""

    def __init__(self, config: ClientConfig, user_agent: str) -> None:
        self.url = config.remote_write_url
        self.timeout_s = config.remote_write_timeout_s
        self.session = requests.Session()
        headers = {
            "Content-Encoding": "snappy",
            "Content-Type": "application/x-protobuf",
            "X-Prometheus-Remote-Write-Version": "0.1.0",
            "User-Agent": user_agent,
        }
        self.session.headers.update(headers)
        config.auth.apply(self.session)

    def post(self, body: bytes, timeout_s: float | None = None) -> Outcome:
        start = time.monotonic()
        timeout = self.timeout_s if timeout_s is None else max(0.05, min(timeout_s, self.timeout_s))
        try:
            resp = self.session.post(self.url, data=body, timeout=timeout)
        except requests.Timeout:
            return Outcome(None, f"timeout after {timeout:g}s", duration_s=time.monotonic() - start)
        except requests.RequestException as exc:
            return Outcome(None, _describe(exc), duration_s=time.monotonic() - start)
        text = ""
        if resp.status_code >= 300:
            text = resp.text[:512]
        return Outcome(
            resp.status_code,
            None,
            text,
            parse_retry_after(resp.headers.get("Retry-After")),
            time.monotonic() - start,
        )

    def close(self) -> None:
        self.session.close()


def _describe(exc: Exception) -> str:
    # requests nests the root cause deeply; the innermost message is the useful one.
    cause: BaseException = exc
    while cause.__cause__ is not None or cause.__context__ is not None:
        nxt = cause.__cause__ or cause.__context__
        assert nxt is not None
        cause = nxt
    return f"{type(exc).__name__}: {cause}"[:300]


def make_retrying(
    *,
    retry_on_429: bool,
    backoff: Backoff,
    should_stop: tenacity.stop.stop_base | object,
    sleep: object,
    before_sleep: object,
) -> tenacity.Retrying:
    """tenacity retry loop around one attempt function returning an Outcome.

    Retries while the verdict is RETRY; waits Retry-After for 429 (when present) and the
    backoff otherwise; stops when ``should_stop(retry_state)`` says so and returns the last
    outcome instead of raising.
    """

    def wait(state: tenacity.RetryCallState) -> float:
        outcome = state.outcome.result() if state.outcome is not None else None
        if isinstance(outcome, Outcome) and outcome.status == 429 and outcome.retry_after_s:
            return outcome.retry_after_s
        return backoff.delay(state.attempt_number)

    def retry(state: tenacity.RetryCallState) -> bool:
        if state.outcome is None or state.outcome.failed:
            return False
        outcome = state.outcome.result()
        return isinstance(outcome, Outcome) and classify(outcome, retry_on_429) is Verdict.RETRY

    def give_last(state: tenacity.RetryCallState) -> object:
        assert state.outcome is not None
        return state.outcome.result()

    return tenacity.Retrying(
        retry=retry,
        wait=wait,
        stop=should_stop,  # type: ignore[arg-type]
        sleep=sleep,  # type: ignore[arg-type]
        before_sleep=before_sleep,  # type: ignore[arg-type]
        retry_error_callback=give_last,
        reraise=False,
    )
