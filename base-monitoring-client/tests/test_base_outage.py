"""The core delivery promise against a real Prometheus: the receiver is down for two minutes and
the client is restarted during the outage -> zero samples lost, zero duplicates, order kept.

WATTPUSH_OUTAGE_S (default 120) shortens the outage for quick runs. Run with ``-s`` to see the
measured numbers.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from base_monitoring_client.synthetic import SyntheticClient
from wattpush_testing import PrometheusProcess, wait_until
from wattpush_testing.faults import ClientProcess, reserve_port

pytestmark = [pytest.mark.slow, pytest.mark.integration]

OUTAGE_S = float(os.environ.get("WATTPUSH_OUTAGE_S", "120"))
SERIES = 20
INTERVAL_MS = 100
INSTANCE = "outage-test"
METRIC = "synthetic_power_watts"
STOPPED_RE = re.compile(r"stopped: (\d+) samples sent, (\d+) dropped, (\d+) in spool")


def stopped_totals(client: ClientProcess) -> tuple[int, int, int]:
    """(sent, dropped, left in spool) from the client's last log line."""
    found = STOPPED_RE.findall(client.log())
    assert found, f"no 'stopped:' line in the client log:\n{client.log()[-2000:]}"
    sent, dropped, spooled = found[-1]
    return int(sent), int(dropped), int(spooled)


def wait(seconds: float) -> None:
    threading.Event().wait(max(0.0, seconds))


def series_samples(
    prom: PrometheusProcess, selector: str, start_ms: float, end_ms: float
) -> list[dict[str, Any]]:
    return prom.raw_samples(selector, start_ms / 1000 - 1, end_ms / 1000 + 1)


def last_before(points: list[tuple[int, float]], before_ms: float) -> float:
    hits = [(t, v) for t, v in points if t < before_ms]
    assert hits
    return max(hits)[1]


def self_metric(
    prom: PrometheusProcess, name: str, start_ms: float, end_ms: float
) -> list[tuple[int, float]]:
    found = series_samples(prom, f'{name}{{instance="{INSTANCE}"}}', start_ms, end_ms)
    assert len(found) == 1, found
    return [(round(float(t) * 1000), float(v)) for t, v in found[0]["values"]]


def grid_check(stamps: list[int], skipped: int, what: str) -> None:
    """Ticks are strictly increasing and their count matches the sampling grid: the only
    holes are the ticks the client itself reported as skipped (collect overran).

    A tick's timestamp is the wall time it actually ran, which on a loaded machine can be tens
    of ms behind its deadline while the next tick is on time, so ticks are counted against the
    span (±1 for the late first/last tick) rather than rounded into slots."""
    assert all(b > a for a, b in itertools.pairwise(stamps)), f"{what}: not strictly increasing"
    span_ticks = (stamps[-1] - stamps[0]) / INTERVAL_MS + 1
    assert abs(len(stamps) + skipped - span_ticks) <= 1, (
        f"{what}: {len(stamps)} ticks + {skipped} skipped over a span of {span_ticks:.1f} ticks"
    )


@pytest.mark.timeout(OUTAGE_S + 240)
def test_outage_with_client_restart_loses_nothing_duplicates_nothing_keeps_order(
    tmp_path: Path, processes: list[ClientProcess]
) -> None:
    prom = PrometheusProcess(tmp_path / "prom")
    spool = tmp_path / "spool"
    env = {
        "REMOTE_WRITE_URL": prom.write_url,
        "SAMPLE_INTERVAL_S": "0.1",
        "PUSH_INTERVAL_S": "1",
        "SPOOL_DIR": str(spool),
        "MIN_BACKOFF_S": "0.03",
        "MAX_BACKOFF_S": "2",
        "SHUTDOWN_TIMEOUT_S": "5",
        "INSTANCE": INSTANCE,
        "HEALTH_PORT": "0",
        "LOG_LEVEL": "info",
    }
    placeholder: socket.socket | None = None
    try:
        prom.start()
        first = ClientProcess(env, tmp_path / "first.log", series=SERIES)
        processes.append(first)
        first.wait_running()
        assert wait_until(lambda: prom.query(f'{METRIC}{{instance="{INSTANCE}"}}'), timeout=20)
        wait(3.0)

        prom.stop()  # SIGTERM; the data directory stays
        # Hold the port (bound, not listening: the client is refused) so that nothing else
        # takes it during the outage.
        placeholder = reserve_port(prom.port)
        down_at = time.monotonic()
        down_wall = time.time()
        wait(OUTAGE_S / 2)
        first_sigterm_ms = time.time() * 1000
        assert first.terminate() == 0, first.log()[-2000:]
        first_exit_ms = time.time() * 1000
        assert list(spool.glob("*.seg")), "the first client spooled nothing"

        second = ClientProcess(env, tmp_path / "second.log", series=SERIES)
        processes.append(second)
        second_launch_ms = second.started_wall * 1000
        second.wait_running()
        wait(down_at + OUTAGE_S - time.monotonic())

        placeholder.close()
        prom.start()  # same port, same data directory
        up_wall = time.time()
        assert wait_until(lambda: not list(spool.glob("*.seg")), timeout=120, interval=0.5), (
            "spool not drained:\n" + second.log()[-2000:]
        )
        drained_s = time.time() - up_wall
        wait(3.0)  # live data flows again
        assert second.terminate() == 0, second.log()[-2000:]
        second_exit_ms = time.time() * 1000

        start_ms, end_ms = first.started_wall * 1000, second_exit_ms
        found = series_samples(prom, f'{METRIC}{{instance="{INSTANCE}"}}', start_ms, end_ms)
        everything = series_samples(prom, f'{{instance="{INSTANCE}"}}', start_ms, end_ms)
        collected = self_metric(prom, "monitoring_client_samples_collected_total", start_ms, end_ms)
        skipped = self_metric(prom, "monitoring_client_skipped_ticks_total", start_ms, end_ms)
        dropped = series_samples(
            prom, f'monitoring_client_samples_dropped_total{{instance="{INSTANCE}"}}', start_ms,
            end_ms,
        )  # fmt: skip
        prom_log = prom.log_tail(1_000_000)
    finally:
        for p in processes:
            p.kill()
        prom.stop()
        if placeholder is not None:
            placeholder.close()

    # -- every series, every tick, once, in order, right value --------------------------------
    assert len(found) == SERIES
    per_series: dict[int, list[tuple[int, float]]] = {}
    for s in found:
        per_series[int(s["metric"]["series"])] = [
            (round(float(t) * 1000), float(v)) for t, v in s["values"]
        ]
    stamps = [t for t, _ in per_series[0]]
    for i, points in per_series.items():
        assert [t for t, _ in points] == stamps, f"series {i} has other ticks than series 0"
        bad = [(t, v) for t, v in points if v != SyntheticClient.value_at(i, t)]
        assert not bad, f"series {i}: wrong values {bad[:3]}"
    firsts = [t for t in stamps if t < second_launch_ms]
    seconds = [t for t in stamps if t >= second_launch_ms]
    n1 = last_before(collected, second_launch_ms)  # the first client's final self-report
    n2 = collected[-1][1]
    skipped1 = int(last_before(skipped, second_launch_ms))
    skipped2 = int(skipped[-1][1])
    # What each process collected arrived, each sample once (Prometheus would also silently
    # take an exact duplicate of the newest sample: the sent totals below catch that).
    assert SERIES * len(firsts) == n1
    assert SERIES * len(seconds) == n2
    grid_check(firsts, skipped1, "first client")
    grid_check(seconds, skipped2, "second client")
    # The only hole is the restart, and it matches the two processes' lifetimes.
    assert first.started_wall * 1000 <= firsts[0]
    assert first_sigterm_ms - 2 * INTERVAL_MS <= firsts[-1] <= first_exit_ms
    assert second_launch_ms <= seconds[0] <= second.running_wall * 1000
    assert seconds[-1] <= second_exit_ms
    assert firsts[-1] > down_wall * 1000  # the first client sampled into the outage

    # -- nothing dropped, nothing sent twice --------------------------------------------------
    sent1, dropped1, left1 = stopped_totals(first)
    sent2, dropped2, left2 = stopped_totals(second)
    assert (dropped1, dropped2, left2) == (0, 0, 0)
    assert left1 > 0
    assert all(float(v) == 0 for s in dropped for _, v in s["values"])
    stored_total = sum(len(s["values"]) for s in everything)
    assert sent1 + sent2 == stored_total, "a sample was sent twice (or not stored)"
    assert "Out of order sample" not in prom_log and "duplicate sample" not in prom_log.lower()

    summary = {
        "outage_s": OUTAGE_S,
        "series": SERIES,
        "expected_samples": int(n1 + n2),
        "stored_samples": SERIES * len(stamps),
        "lost": int(n1 + n2) - SERIES * len(stamps),
        "duplicates": sent1 + sent2 - stored_total,
        "first_client_ticks": len(firsts),
        "second_client_ticks": len(seconds),
        "skipped_ticks": [skipped1, skipped2],
        "restart_gap_ms": seconds[0] - firsts[-1],
        "process_gap_ms": round(second_launch_ms - first_exit_ms),
        "spooled_at_first_exit": left1,
        "sent_by_first": sent1,
        "sent_by_second": sent2,
        "all_samples_stored_incl_self_metrics": stored_total,
        "spool_drain_s": round(drained_s, 2),
    }
    print("outage summary: " + json.dumps(summary))
