"""Synthetic experiments with closed-form answers, for tests and the benchmark.

Power is piecewise constant on the sample grid, so each window's energy is exactly
``P x duration`` and the counters are exact integrals. The experiment pushes the series a real
setup produces (CPU RAPL zones incl. a core sub-zone that must not be added, optionally a GPU,
Docker engine and host CPU counters, ffmpeg_scenario_info and ffmpeg_frames_total) by remote
write in chronological slices, and writes the ffmpeg-runner manifest for each run.

Windows given ``quality`` scores also get what the runner records after a window: per output
``ffmpeg_output_quality`` and ``ffmpeg_output_bitrate_bits_per_second`` (one sample after the
window's end) and, in the manifest (schema 2), the per-output quality and the source.

With ``accounting=True`` every window also carries the runner's CPU accounting (manifest
schema 3, and ``ffmpeg_window_cpu_seconds`` per scope at the window's end): the transcode's CPU
seconds, and the host's busy CPU seconds, which include a window's *background load* (other
processes: extra busy CPU and the power it draws), so attribution has a known answer.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import requests
from base_monitoring_client import contract
from base_monitoring_client.encoder import SeriesEncoder, compress
from base_monitoring_client.sample import STALE_NAN
from ffmpeg_runner.contract import (
    FRAMES_METRIC,
    INFO_METRIC,
    OUTPUT_BITRATE_METRIC,
    QUALITY_METRIC,
    WINDOW_CPU_METRIC,
    Accounting,
    MetricScore,
    OutputQuality,
    Rung,
    RunManifest,
    SourceInfo,
    WindowRecord,
    ladder_key,
    parse_bitrate,
)

PUSH_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
PACKAGE_SHARE = 0.8  # CPU power split: package 80 %, dram 20 %; core = 50 % of package
CORE_SHARE_OF_PACKAGE = 0.5


@dataclass(frozen=True)
class Load:
    """What the machine does during a window (piecewise constant on the sample grid): CPU and
    GPU power, and the CPU seconds per second of the Docker engine, of the whole host and of
    the window's ffmpeg processes; plus a background load of other processes (its busy CPU
    seconds per second and the CPU power it adds)."""

    cpu_w: float
    gpu_w: float = 0.0
    engine_rate: float = 0.0  # docker engine CPU seconds per second
    host_rate: float = 0.0  # busy host CPU seconds per second, background load not included
    transcode_rate: float = 0.0  # the window's ffmpeg processes' CPU seconds per second
    background_rate: float = 0.0  # other processes' extra busy CPU seconds per second
    background_w: float = 0.0  # the CPU power that background load draws

    @property
    def total_w(self) -> float:
        return self.cpu_w + self.gpu_w + self.background_w

    @property
    def host_busy_rate(self) -> float:
        return self.host_rate + self.background_rate


@dataclass(frozen=True)
class SynthWindow:
    """One generated window: the contract's record (what the runner would write) and the load
    behind it (what the generated power series say)."""

    record: WindowRecord
    load: Load

    @property
    def expected_energy_j(self) -> float:
        return self.load.total_w * self.record.duration_s

    @property
    def background_cpu_share(self) -> float:
        """What the advisor must report: 1 - transcode / host busy CPU."""
        busy = self.load.host_busy_rate
        return 1.0 - self.load.transcode_rate / busy if busy > 0 else 0.0


def window_record(
    *,
    run_id: str,
    scenario: str,
    phase: str,
    repeat: int,
    start_ms: int,
    end_ms: int,
    instance: str = "",
    encoder: str = "libx264",
    preset: str = "fast",
    streams: int = 1,
    rungs: Sequence[Rung] = (),
    fps: int = 30,
    status: str = "ok",
    realtime: bool = False,
    quality: Mapping[str, float] | None = None,
    achieved_ratio: float = 0.97,
) -> WindowRecord:
    """The record the runner writes for such a window: frames at ``fps`` for the whole window
    on every rung of every stream; with ``quality`` (metric -> mean score of every output), the
    per-output quality it measures after the window, at ``achieved_ratio`` x the target rate."""
    transcode = phase == "transcode"
    failed = status != "ok"
    duration_s = (end_ms - start_ms) / 1000.0
    frames_per_output = round(fps * duration_s)
    frames_per_rung = frames_per_output * streams
    outputs: tuple[OutputQuality, ...] = ()
    if transcode and quality:
        outputs = tuple(
            OutputQuality(
                rung=r.key,
                name=r.name,
                stream=s,
                target_bitrate_bps=r.target_bitrate_bps,
                achieved_bitrate_bps=r.bitrate_bps * achieved_ratio,
                size_bytes=round(r.bitrate_bps * achieved_ratio * duration_s / 8),
                duration_s=duration_s,
                frames=frames_per_output,
                scores={m: MetricScore(v, v * 0.95) for m, v in quality.items()},
            )
            for s in range(streams)
            for r in rungs
        )
    return WindowRecord(
        run_id=run_id,
        instance=instance,
        scenario=scenario,
        phase=phase,
        repeat=repeat,
        start_ms=start_ms,
        end_ms=end_ms,
        status=status,
        error="ffmpeg exited with code 1" if failed else None,
        encoder=encoder,
        preset=preset,
        bitrate=rungs[0].bitrate if rungs else "",
        rate_control=rungs[0].rate_control if rungs else "bitrate",
        quality_value=rungs[0].quality_value if rungs else None,
        streams=streams,
        ladder=ladder_key(rungs),
        rungs=tuple(rungs),
        fps=fps,
        input="testsrc2",
        realtime=realtime,
        commands=(("ffmpeg", "-hide_banner"),) * streams if transcode else (),
        exit_codes=(1 if failed else 0,) * streams if transcode else (),
        frames={f"{s}:{r.name}": frames_per_output for s in range(streams) for r in rungs}
        if transcode
        else {},
        frames_total=frames_per_rung * len(rungs) if transcode else 0,
        output_pixels=sum(r.pixels for r in rungs) * frames_per_rung if transcode else 0,
        source=SourceInfo(
            "file", "/synthetic/bigbuckbunny.mp4", "0" * 64, 1_000_000, fps, 1280, 720, 132
        ),
        quality=outputs,
    )


_LOAD_FIELDS = (
    "cpu_w",
    "gpu_w",
    "engine_rate",
    "host_rate",
    "transcode_rate",
    "background_rate",
    "background_w",
)


@dataclass
class Experiment:
    """A continuous timeline of idle gaps and windows on a regular sample grid."""

    start_ms: int
    interval_ms: int = 100
    idle_cpu_w: float = 20.0
    idle_gpu_w: float = 0.0
    gpu: bool = False
    cpu_source: str = contract.SOURCE_RAPL
    idle_engine_rate: float = 0.01
    idle_host_rate: float = 0.05
    with_estimated_shadow: bool = True  # an estimated duplicate that must be ignored
    with_info: bool = True
    instance: str = "synthhost"
    # wattpush_host_info labels (cpu_model, cores, ...), pushed every 4 s when given
    host_info: dict[str, str] | None = None
    windows: list[SynthWindow] = field(default_factory=list)
    cursor_ms: int = 0
    # (start_ms, end_ms) ranges where CPU samples are missing (a gap the advisor must report)
    cpu_gaps: list[tuple[int, int]] = field(default_factory=list)
    # times where the package counter restarts from zero
    counter_resets_ms: list[int] = field(default_factory=list)
    # Windows carry the runner's CPU accounting (manifest schema 3 and ffmpeg_window_cpu_seconds)
    accounting: bool = False
    cores: int = 2  # host_total_cpu_s = cores x duration
    # ffmpeg_frames_total every progress_interval_ms (default: interval_ms), the grid shifted by
    # progress_offset_ms; one sample before the window (stabilization) and one after (the final
    # count), as the runner pushes it
    progress_interval_ms: int | None = None
    progress_offset_ms: int = 0

    def __post_init__(self) -> None:
        self.start_ms -= self.start_ms % self.interval_ms
        self.cursor_ms = self.start_ms

    def idle(self, seconds: float) -> None:
        self.cursor_ms += round(seconds * 1000 / self.interval_ms) * self.interval_ms

    def add(self, seconds: float, **kw: Any) -> SynthWindow:
        """A window of ``seconds`` at the cursor: ``cpu_w``, ``gpu_w``, ``engine_rate``,
        ``host_rate``, ``transcode_rate``, ``background_rate`` and ``background_w`` are its load
        (``Load``), every other keyword goes to ``window_record``. ``transcode_rate`` defaults
        to the host's busy rate above idle in a transcode window, 0 in a baseline."""
        dur = round(seconds * 1000 / self.interval_ms) * self.interval_ms
        kw.setdefault("gpu_w", self.idle_gpu_w if self.gpu else 0.0)
        kw.setdefault("engine_rate", self.idle_engine_rate)
        kw.setdefault("host_rate", self.idle_host_rate)
        if kw.get("phase") == "transcode":
            kw.setdefault("transcode_rate", max(0.0, kw["host_rate"] - self.idle_host_rate))
        kw.setdefault("transcode_rate", 0.0)
        kw.setdefault("background_rate", 0.0)
        kw.setdefault("background_w", 0.0)
        load = Load(**{k: kw.pop(k) for k in _LOAD_FIELDS})
        kw.setdefault("instance", self.instance)
        record = window_record(start_ms=self.cursor_ms, end_ms=self.cursor_ms + dur, **kw)
        if self.accounting:
            d = dur / 1000.0
            transcode = record.phase == "transcode"
            record = dataclasses.replace(
                record,
                accounting=Accounting(
                    transcode_cpu_s=load.transcode_rate * d,
                    host_busy_cpu_s=load.host_busy_rate * d,
                    host_total_cpu_s=self.cores * d,
                    processes=record.streams if transcode else 0,
                ),
            )
        w = SynthWindow(record, load)
        self.windows.append(w)
        self.cursor_ms += dur
        return w

    @property
    def end_ms(self) -> int:
        return self.cursor_ms

    def run_manifest(self, run_id: str) -> RunManifest:
        ws = [w.record for w in self.windows if w.record.run_id == run_id]
        return RunManifest(
            run_id=run_id,
            started_ms=ws[0].start_ms,
            host={
                "hostname": self.instance,
                "cpu_model": "synthetic",
                "cores": self.cores,
                "kernel": "6.1",
                "os": "Debian GNU/Linux 12",
            },
            ffmpeg={"path": "/usr/bin/ffmpeg", "version": "5.1", "configuration": ""},
            sample_interval_s=self.interval_ms / 1000.0,
            status="completed",
            ended_ms=ws[-1].end_ms,
            windows=ws,
        )

    def manifest(self, run_id: str, schema_version: int | None = None) -> dict[str, Any]:
        """The run's manifest as the runner writes it; an older ``schema_version`` leaves out
        what that schema did not have (the advisor reads every supported schema). By default
        schema 3 with accounting, else 2 when a window of the run measured quality, else 1."""
        run = self.run_manifest(run_id)
        if schema_version is None:
            schema_version = (
                3 if self.accounting else 2 if any(w.quality for w in run.windows) else 1
            )
        return run.to_json(schema_version)

    def write_manifests(self, directory: Path, schema_version: int | None = None) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for run_id in dict.fromkeys(w.record.run_id for w in self.windows):
            p = directory / f"{run_id}.json"
            p.write_text(json.dumps(self.manifest(run_id, schema_version), indent=1))
            paths.append(p)
        return paths

    # -- series ----------------------------------------------------------------------------

    def grid(self) -> npt.NDArray[np.int64]:
        return np.arange(self.start_ms, self.end_ms + self.interval_ms, self.interval_ms)

    def _rates(self) -> dict[str, npt.NDArray[np.float64]]:
        t = self.grid()
        n = t.size
        cpu = np.full(n, self.idle_cpu_w)
        gpu = np.full(n, self.idle_gpu_w)
        eng = np.full(n, self.idle_engine_rate)
        host = np.full(n, self.idle_host_rate)
        for w in self.windows:
            a = (w.record.start_ms - self.start_ms) // self.interval_ms
            b = (w.record.end_ms - self.start_ms) // self.interval_ms
            cpu[a:b] = w.load.cpu_w + w.load.background_w
            gpu[a:b] = w.load.gpu_w
            eng[a:b] = w.load.engine_rate
            host[a:b] = w.load.host_busy_rate
        return {"cpu": cpu, "gpu": gpu, "engine": eng, "host": host}

    def series(
        self,
    ) -> list[tuple[str, dict[str, str], npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
        """Every series as (name, labels, timestamps ms, values)."""
        t = self.grid()
        dt = self.interval_ms / 1000.0
        r = self._rates()

        def counter(rate: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            # value at t_k = integral of the piecewise-constant rate up to t_k
            return np.concatenate(([0.0], np.cumsum(rate[:-1] * dt)))

        def gauge(rate: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            # like the clients: Δenergy/Δt over the interval that ends at the sample
            return np.concatenate((rate[:1], rate[:-1]))

        keep = np.ones(t.size, dtype=bool)
        for a, b in self.cpu_gaps:
            keep &= ~((t >= a) & (t < b))
        out: list[tuple[str, dict[str, str], Any, Any]] = []
        zones = {
            "package": r["cpu"] * PACKAGE_SHARE,
            "dram": r["cpu"] * (1 - PACKAGE_SHARE),
            "core": r["cpu"] * PACKAGE_SHARE * CORE_SHARE_OF_PACKAGE,
        }
        for zone, rate in zones.items():
            c = counter(rate)
            if zone == "package":
                for reset in self.counter_resets_ms:
                    idx = np.searchsorted(t, reset)
                    # restart happened half an interval before sample idx
                    c[idx:] = c[idx:] - c[idx] + rate[idx - 1] * dt / 2
            labels = {"zone": zone, "socket": "0", "source": self.cpu_source}
            out.append((contract.CPU_ENERGY.name, labels, t[keep], c[keep]))
            out.append((contract.CPU_POWER.name, labels, t[keep], gauge(rate)[keep]))
            estimated = contract.SOURCE_ESTIMATED
            if self.with_estimated_shadow and zone == "package" and self.cpu_source != estimated:
                est = {"zone": zone, "socket": "0", "source": estimated}
                out.append((contract.CPU_ENERGY.name, est, t, counter(rate * 3 + 7)))
        if self.gpu:
            # As gpu-nvml-client sends them: the energy counter and the instantaneous power.
            g = {"gpu": "0", "uuid": "GPU-synthetic-0", "name": "Synthetic GPU"}
            counter_labels = {**g, "source": contract.SOURCE_NVML_ENERGY_COUNTER}
            power_labels = {**g, "source": contract.SOURCE_NVML_POWER_INSTANT}
            out.append((contract.GPU_ENERGY.name, counter_labels, t, counter(r["gpu"])))
            out.append((contract.GPU_POWER.name, power_labels, t, gauge(r["gpu"])))
        engine = contract.ENGINE_CPU.name
        out.append((engine, {"process": "dockerd"}, t, counter(r["engine"] * 0.75)))
        out.append((engine, {"process": "containerd"}, t, counter(r["engine"] * 0.25)))
        host = contract.HOST_CPU.name
        out.append((host, {"mode": "user"}, t, counter(r["host"])))
        out.append((host, {"mode": "idle"}, t, counter(self.cores - r["host"])))
        if self.host_info:
            every = max(1, 4000 // self.interval_ms)
            host_info = contract.HOST_INFO.name
            out.append((host_info, self.host_info, t[::every], np.ones(t[::every].size)))
        if self.with_info:
            for w in (sw.record for sw in self.windows):
                tw = np.arange(w.start_ms, w.end_ms + 1, self.interval_ms)
                info = {
                    "run_id": w.run_id,
                    "scenario": w.scenario,
                    "phase": w.phase,
                    "encoder": w.encoder,
                    "preset": w.preset,
                    "ladder": ladder_key(w.rungs),
                    "streams": str(w.streams),
                    "bitrate": w.bitrate or "none",
                    "repeat": str(w.repeat),
                    "fps": f"{w.fps or 0:g}",
                    "rate_control": w.rate_control,
                    "quality_value": "" if w.quality_value is None else f"{w.quality_value:g}",
                }
                # like the runner: 1 for the whole window, then one stale marker
                out.append(
                    (
                        INFO_METRIC,
                        info,
                        np.append(tw, tw[-1] + 1),
                        np.append(np.ones(tw.size), STALE_NAN),
                    )
                )
                if w.accounting is not None:
                    out.extend(self._window_cpu_series(w))
                if w.phase != "transcode":
                    continue
                tp, frames = self._progress(w)
                for s in range(w.streams):
                    for rung in w.rungs:
                        lab = {
                            "run_id": w.run_id,
                            "scenario": w.scenario,
                            "repeat": str(w.repeat),
                            "stream": str(s),
                            "output": rung.name,
                        }
                        out.append((FRAMES_METRIC, lab, tp, frames))
                # Measured after the window, pushed once per output of stream 0 (one sample).
                t_q = np.array([w.end_ms + self.interval_ms])
                for q in (q for q in w.quality if q.stream == 0):
                    base = {
                        "run_id": w.run_id,
                        "scenario": w.scenario,
                        "repeat": str(w.repeat),
                        "rung": q.rung,
                    }
                    for metric, score in q.scores.items():
                        lab = {**base, "metric": metric}
                        out.append((QUALITY_METRIC, lab, t_q, np.array([score.mean])))
                    bps = q.achieved_bitrate_bps
                    out.append((OUTPUT_BITRATE_METRIC, base, t_q, np.array([bps])))
        return out

    def _progress(self, w: WindowRecord) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """One output's ffmpeg_frames_total: frames at the source rate on the progress grid,
        from one sample before the window to one after it, then a stale marker."""
        step = self.progress_interval_ms or self.interval_ms
        first = w.start_ms - step + self.progress_offset_ms % step
        # the last sample lies in (end, end + step]: the count after the window
        tp = np.arange(first, w.end_ms + step + 1, step, dtype=np.int64)
        frames = (tp - first) / 1000.0 * (w.fps or 0)
        return np.append(tp, tp[-1] + 1), np.append(frames, STALE_NAN)

    def _window_cpu_series(self, w: WindowRecord) -> list[tuple[str, dict[str, str], Any, Any]]:
        """ffmpeg_window_cpu_seconds, one sample per scope at the window's end (no cgroup: the
        synthetic runner is not in a container)."""
        acc = w.accounting
        assert acc is not None
        base = {"run_id": w.run_id, "scenario": w.scenario, "phase": w.phase}
        base["repeat"] = str(w.repeat)
        t_end = np.array([w.end_ms])
        return [
            (WINDOW_CPU_METRIC, {**base, "scope": scope}, t_end, np.array([value]))
            for scope, value in (
                (contract.SCOPE_TRANSCODE, acc.transcode_cpu_s),
                (contract.SCOPE_HOST_BUSY, acc.host_busy_cpu_s),
                (contract.SCOPE_HOST_TOTAL, acc.host_total_cpu_s),
            )
        ]

    def push(self, write_url: str, slice_s: float = 60.0, session: Any = None) -> int:
        """Remote-write everything in chronological slices (Prometheus only takes in-order
        samples per series, and nothing older than ~1 h behind its newest sample)."""
        enc = SeriesEncoder({"job": "synthetic", "instance": self.instance})
        http = session or requests.Session()
        series = [(enc.series(n, lab).key, t, v) for n, lab, t, v in self.series()]
        step = int(slice_s * 1000)
        sent = 0
        for lo in range(self.start_ms, self.end_ms + self.interval_ms, step):
            hi = lo + step
            groups = []
            for key, t, v in series:
                a, b = np.searchsorted(t, [lo, hi])
                if b > a:
                    groups.append((key, list(zip(v[a:b].tolist(), t[a:b].tolist(), strict=True))))
                    sent += int(b - a)
            if not groups:
                continue
            resp = http.post(
                write_url,
                data=compress(enc.encode_grouped(groups)),
                headers=PUSH_HEADERS,
                timeout=60,
            )
            if resp.status_code // 100 != 2:
                raise RuntimeError(f"remote write failed {resp.status_code}: {resp.text[:300]}")
        return sent


def ladder(*specs: tuple[int, int, str]) -> list[Rung]:
    return [Rung(f"{h}p", w, h, parse_bitrate(br)) for w, h, br in specs]


def scaling_law_power(encoder: str, streams: int, pixels_per_s: float, bitrate_bps: float) -> float:
    """The known law behind the prediction tests: idle + per-encoder cost per Mpixel/s +
    a bitrate term per stream (W)."""
    per_mpix = {"libx264": 0.9, "libx265": 1.6, "h264_nvenc": 0.25}.get(encoder, 1.0)
    return 20.0 + per_mpix * pixels_per_s / 1e6 + 1.5 * streams * bitrate_bps / 1e6


def iter_prediction_grid(
    encoders: Sequence[str] = ("libx264", "libx265"),
    streams: Sequence[int] = (1, 2, 3, 4, 6),
    ladders: Sequence[list[Rung]] | None = None,
) -> Iterator[tuple[str, int, list[Rung]]]:
    lads = ladders or [ladder((1280, 720, "2M")), ladder((640, 360, "800k"))]
    for enc in encoders:
        for s in streams:
            for lad in lads:
                yield enc, s, lad


def noisy(rng: np.random.Generator, value: float, rel_sd: float) -> float:
    return float(value * (1.0 + rel_sd * rng.standard_normal()))


PowerFn = Callable[[str, int, list[Rung], int], float]
