"""Prometheus HTTP API access with a constant number of queries per report.

Two fetch modes, both one request per time chunk for a whole metric *group* (a regex over
``__name__``), never one per scenario:

``raw`` (default)
    Instant query of a range-vector selector (``{__name__=~"a|b"}[7200000ms]`` at the span's end):
    the receiver returns every stored sample with its own timestamp. Exact, shows gaps, and not
    bound by the 11,000-points-per-series limit of ``query_range``. Chunked by ``raw_chunk_s``.
``range``
    ``/api/v1/query_range`` at ``step`` (≤ the sample interval). Prometheus refuses more than
    11,000 points per series, so the span is cut into chunks of ``max_points`` steps. Gaps shorter
    than the receiver's lookback (5 min) are filled with the last value, so ``raw`` is preferred.

Both work against Prometheus and VictoriaMetrics (the VictoriaMetrics single-node root, or
``…/select/<tenant>/prometheus`` of a cluster).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import requests
from base_monitoring_client.httpauth import HttpAuth
from base_monitoring_client.redact import receiver_text, split_credentials

from .errors import AdvisorConfigError, QueryError

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

DEFAULT_RAW_CHUNK_S = 6 * 3600.0
DEFAULT_MAX_POINTS = 10_000  # Prometheus refuses > 11,000 points per series per query_range
#: the longest --since the advisor scans: 1464 raw queries (6 h each) for the discovery
MAX_SINCE_S = 366 * 86400.0
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|y|w|d|h|m|s)")
_DURATION_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


@dataclass(frozen=True)
class Series:
    """One time series: labels (``__name__`` included), times in unix seconds, values."""

    labels: Mapping[str, str]
    t: FloatArray
    v: FloatArray

    @property
    def name(self) -> str:
        return self.labels.get("__name__", "")


@dataclass
class QueryLog:
    """Every HTTP query made, so reports can show how many were needed."""

    entries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.entries)


def name_selector(names: Iterable[str], matchers: Sequence[str] = ()) -> str:
    """``{__name__=~"a|b",extra}`` for a group of metric families plus extra label matchers."""
    names = sorted(set(names))
    parts = [f'__name__=~"{"|".join(names)}"', *matchers]
    return "{" + ",".join(parts) + "}"


def _format_duration_ms(seconds: float) -> str:
    return f"{max(1, math.ceil(seconds * 1000))}ms"


class PrometheusAPI:
    """Minimal Prometheus HTTP API client (``requests``); ``auth`` is the pushing clients'
    HttpAuth, read from the ADVISOR_* settings."""

    def __init__(
        self,
        url: str,
        *,
        auth: HttpAuth | None = None,
        timeout_s: float = 60.0,
        session: requests.Session | None = None,
        compression: bool = False,
    ) -> None:
        url = url.rstrip("/")
        for suffix in ("/api/v1/query_range", "/api/v1/query", "/api/v1"):
            if url.endswith(suffix):
                url = url[: -len(suffix)]
                break
        auth = auth or HttpAuth()
        # Credentials in the URL become basic auth: ``url`` is shown in reports and errors.
        url, user, password = split_credentials(url)
        if user is not None:
            if auth.bearer_token or auth.basic_auth_user:
                raise AdvisorConfigError(
                    "prometheus_url carries credentials (user:password@) and "
                    "ADVISOR_BEARER_TOKEN or ADVISOR_BASIC_AUTH_USER is set too; keep only one",
                    settings=("prometheus_url",),
                )
            auth = dataclasses.replace(auth, basic_auth_user=user, basic_auth_password=password)
        self.url = url
        self.timeout_s = timeout_s
        self.log = QueryLog()
        self._secrets = auth.secrets()
        self._session = session or requests.Session()
        # Prometheus spends seconds gzipping tens of MB of samples; on a LAN the plain
        # response is faster end to end. Turn compression on for slow links.
        self._session.headers["Accept-Encoding"] = "gzip" if compression else "identity"
        auth.apply(self._session)

    @property
    def query_count(self) -> int:
        return self.log.count

    def close(self) -> None:
        self._session.close()

    # -- HTTP ------------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        self.log.entries.append({"path": path, **params})
        try:
            resp = self._session.get(self.url + path, params=params, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise QueryError(
                f"cannot reach the Prometheus API at {self.url}: {type(exc).__name__}; "
                "check prometheus_url (the query root, e.g. http://localhost:9090) and that "
                "the server is up",
                settings=("prometheus_url",),
            ) from exc
        if resp.status_code in (401, 403):
            raise QueryError(
                f"the Prometheus API at {self.url} answered {resp.status_code}: check the bearer "
                "token / basic auth settings (ADVISOR_BEARER_TOKEN, ADVISOR_BASIC_AUTH_USER)"
            )
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code != 200 or not isinstance(body, dict) or body.get("status") != "success":
            detail = body.get("error") if isinstance(body, dict) else resp.text[:4096]
            detail = receiver_text(str(detail), self._secrets)
            raise QueryError(
                f"query {params.get('query')!r} failed with HTTP {resp.status_code}: {detail}; "
                "check the URL points at a Prometheus-compatible query API and the time range"
            )
        data = body.get("data") or {}
        if data.get("resultType") not in ("matrix", "vector"):
            raise QueryError(f"unexpected result type {data.get('resultType')!r} for {params}")
        return list(data.get("result") or [])

    # -- how far back ------------------------------------------------------------------------

    def retention_s(self) -> float | None:
        """How long the receiver keeps data, where it says: Prometheus' runtime info
        (``storageRetention``, e.g. ``15d`` or ``15d or 512MiB``), VictoriaMetrics'
        ``-retentionPeriod`` flag. None when it does not."""
        try:
            resp = self._session.get(
                self.url + "/api/v1/status/runtimeinfo", timeout=min(self.timeout_s, 10)
            )
            if resp.status_code == 200:
                text = str(resp.json().get("data", {}).get("storageRetention") or "")
                return _duration_s(text.partition(" or ")[0])
            resp = self._session.get(self.url + "/flags", timeout=min(self.timeout_s, 10))
            if resp.status_code == 200:
                found = re.search(r'-retentionPeriod="?([0-9.]+[a-z]*)', resp.text)
                if found:
                    value = found.group(1)
                    # VictoriaMetrics: a bare number is months
                    return float(value) * 31 * 86400 if value[-1].isdigit() else _duration_s(value)
        except (requests.RequestException, ValueError, AttributeError):
            return None
        return None

    def bounded_since(self, since_s: float, shown: str) -> float:
        """``--since`` no longer than the receiver keeps data (then shortened, and said so)
        and never past MAX_SINCE_S (an error): a huge --since would otherwise send one query
        per 6 h of it, for ever."""
        retention = self.retention_s()
        limit = MAX_SINCE_S if retention is None else min(retention, MAX_SINCE_S)
        if since_s <= limit:
            return since_s
        if retention is not None and retention <= MAX_SINCE_S:
            log.info(
                "--since %s reaches back further than %s keeps data (%s): reading that much",
                shown,
                self.url,
                _format_s(retention),
            )
            return retention
        kept = "an unknown time" if retention is None else _format_s(retention)
        raise AdvisorConfigError(
            f"since_s {shown} reaches back further than the advisor scans "
            f"({_format_s(MAX_SINCE_S)}; {self.url} keeps data for {kept}): pass a shorter "
            "since_s, e.g. 30d, or the runs' manifests with results",
            settings=("since_s", "results"),
        )

    # -- fetching --------------------------------------------------------------------------

    def fetch(
        self,
        selector: str,
        start_s: float,
        end_s: float,
        *,
        mode: str = "raw",
        step_s: float = 0.1,
        raw_chunk_s: float = DEFAULT_RAW_CHUNK_S,
        max_points: int = DEFAULT_MAX_POINTS,
    ) -> list[Series]:
        """Every sample of ``selector`` in [start_s, end_s], merged across chunks."""
        if end_s <= start_s:
            return []
        raw: list[dict[str, Any]] = []
        if mode == "raw":
            chunk = max(1.0, raw_chunk_s)
            t = start_s
            while t < end_s:
                stop = min(end_s, t + chunk)
                raw.extend(
                    self._get(
                        "/api/v1/query",
                        {"query": f"{selector}[{_format_duration_ms(stop - t)}]", "time": stop},
                    )
                )
                t = stop
        elif mode == "range":
            if step_s <= 0:
                raise QueryError(
                    "step_s must be positive; pass step_s 0.1 (the sample interval)",
                    settings=("step_s",),
                )
            chunk = step_s * max(1, max_points - 1)
            # Evaluate on multiples of the step so the grid lines up with the clients' ticks.
            t = math.floor(start_s / step_s) * step_s
            while t < end_s:
                stop = min(end_s, t + chunk)
                raw.extend(
                    self._get(
                        "/api/v1/query_range",
                        {"query": selector, "start": t, "end": stop, "step": step_s},
                    )
                )
                t = stop
        else:
            raise QueryError(f"unknown query mode {mode!r}; use raw or range")
        return merge_results(raw, start_s, end_s)


def _duration_s(text: str) -> float | None:
    """Seconds in a Prometheus-style duration (``1y2w``, ``15d``, ``36h``); None if it is not
    one (a size-only retention such as ``512MiB``)."""
    text = text.strip()
    parts = _DURATION_PART_RE.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _DURATION_S[u] for n, u in parts) or None


def _format_s(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:g}d"
    return f"{seconds / 3600:g}h"


def _to_arrays(values: Sequence[Sequence[Any]]) -> tuple[FloatArray, FloatArray]:
    if not values:
        return np.empty(0), np.empty(0)
    t = np.fromiter((p[0] for p in values), dtype=np.float64, count=len(values))
    # Straight to float64 (values are strings): half the time of building a str array first.
    v = np.array([p[1] for p in values], dtype=np.float64)
    return t, v


def merge_results(
    results: Iterable[Mapping[str, Any]], start_s: float, end_s: float
) -> list[Series]:
    """Join chunked results per label set; sort by time, drop duplicate timestamps."""
    parts: dict[tuple[tuple[str, str], ...], list[tuple[FloatArray, FloatArray]]] = {}
    labels_of: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
    for item in results:
        metric = dict(item.get("metric") or {})
        key = tuple(sorted(metric.items()))
        labels_of[key] = metric
        values = item.get("values")
        if values is None and item.get("value") is not None:
            values = [item["value"]]
        parts.setdefault(key, []).append(_to_arrays(values or []))
    out: list[Series] = []
    for key, chunks in parts.items():
        t = np.concatenate([c[0] for c in chunks])
        v = np.concatenate([c[1] for c in chunks])
        order = np.argsort(t, kind="stable")
        t, v = t[order], v[order]
        if t.size:
            keep = np.ones(t.size, dtype=bool)
            keep[1:] = np.diff(t) > 0
            keep &= (t >= start_s - 1e-9) & (t <= end_s + 1e-9)
            keep &= ~np.isnan(v)
            t, v = t[keep], v[keep]
        if t.size:
            out.append(Series(labels_of[key], t, v))
    return out
