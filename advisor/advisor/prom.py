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

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import requests
from base_monitoring_client.httpauth import HttpAuth

from .errors import QueryError

FloatArray = npt.NDArray[np.float64]

DEFAULT_RAW_CHUNK_S = 6 * 3600.0
DEFAULT_MAX_POINTS = 10_000  # Prometheus refuses > 11,000 points per series per query_range


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
        self.url = url
        self.timeout_s = timeout_s
        self.log = QueryLog()
        self._session = session or requests.Session()
        # Prometheus spends seconds gzipping tens of MB of samples; on a LAN the plain
        # response is faster end to end. Turn compression on for slow links.
        self._session.headers["Accept-Encoding"] = "gzip" if compression else "identity"
        (auth or HttpAuth()).apply(self._session)

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
                "check --prometheus-url (the query root, e.g. http://localhost:9090) and that "
                "the server is up"
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
            detail = body.get("error") if isinstance(body, dict) else resp.text[:300]
            raise QueryError(
                f"query {params.get('query')!r} failed with HTTP {resp.status_code}: {detail}; "
                "check the URL points at a Prometheus-compatible query API and the time range"
            )
        data = body.get("data") or {}
        if data.get("resultType") not in ("matrix", "vector"):
            raise QueryError(f"unexpected result type {data.get('resultType')!r} for {params}")
        return list(data.get("result") or [])

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
                raise QueryError("step must be positive; pass --step 0.1 (the sample interval)")
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
