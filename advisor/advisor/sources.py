"""Which power series add up to the machine's power, and which source each figure came from.

CPU (``cpu_energy_joules_total`` / ``cpu_power_watts{zone,socket,source}``): RAPL zones nest —
psys ⊇ package ⊇ core/uncore, and dram sits beside package. Only top-level zones are added:
psys when present (it already contains package and DRAM), otherwise package + dram of every
socket. core/uncore (and any other sub-zone) are reported per zone but never added.
GPU (``gpu_energy_joules_total`` / ``gpu_power_watts{gpu,uuid,name,source}``): every GPU adds.
Per (zone, socket) or GPU one source is used, by the series contract's precedence (hardware
counter > hardware power > integrated > estimate, ``source_rank``); an estimate is only used
with allow_estimated. Within a source the counter is preferred; the power gauge is integrated
where the counter is absent or does not cover a window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from base_monitoring_client import contract

from .energy import FloatArray, counter_cumulative, power_cumulative, window_integrals
from .notes import Note, note
from .prom import Series

CPU_ENERGY = contract.CPU_ENERGY.name
CPU_POWER = contract.CPU_POWER.name
GPU_ENERGY = contract.GPU_ENERGY.name
GPU_POWER = contract.GPU_POWER.name
ENGINE_CPU = contract.ENGINE_CPU.name
HOST_CPU = contract.HOST_CPU.name
DATA_METRICS = (CPU_ENERGY, CPU_POWER, GPU_ENERGY, GPU_POWER, ENGINE_CPU, HOST_CPU)
ESTIMATED = contract.SOURCE_ESTIMATED
HOST_IDLE_MODES = contract.HOST_CPU_IDLE_MODES


def zone_kind(zone: str) -> str:
    z = zone.lower()
    for kind in ("psys", "uncore", "core", "dram", "package"):
        if z.startswith(kind) or kind in z.split("-"):
            return kind
    return "package" if z.startswith("pkg") else z


@dataclass
class Entity:
    """One power domain (a CPU zone of a socket, or a GPU) from one source."""

    domain: str  # cpu | gpu
    key: str  # e.g. package/0, gpu0
    source: str
    additive: bool
    instance: str
    counter: Series | None = None
    power: Series | None = None

    @property
    def label(self) -> str:
        return f"{self.domain}:{self.key}[{self.source}]"

    def cumulative(self) -> tuple[FloatArray, FloatArray, str] | None:
        """(t, cumulative J, method) from the counter, else the integrated power gauge."""
        if self.counter is not None and self.counter.t.size >= 2:
            return self.counter.t, counter_cumulative(self.counter.v), "counter"
        if self.power is not None and self.power.t.size >= 2:
            return self.power.t, power_cumulative(self.power.t, self.power.v), "power-integral"
        return None

    def integrate(
        self, starts: FloatArray, ends: FloatArray, max_gap_s: float, max_edge_gap_s: float = 0.0
    ) -> tuple[FloatArray, list[str], list[str | None], FloatArray]:
        """Energy per window from the counter; from the integrated power gauge only when the
        entity has no counter (mixing the two inside one entity would hide counter gaps).
        Returns energy, method, why-missing and the worst-case error of interpolated edges."""
        n = starts.size
        if self.counter is not None and self.counter.t.size:
            name = "counter"
            res = window_integrals(
                self.counter.t,
                counter_cumulative(self.counter.v),
                starts,
                ends,
                max_gap_s=max_gap_s,
                raw_counter=self.counter.v,
                max_edge_gap_s=max_edge_gap_s,
            )
        elif self.power is not None:
            name = "power-integral"
            cum = power_cumulative(self.power.t, self.power.v)
            res = window_integrals(self.power.t, cum, starts, ends, max_gap_s=max_gap_s)
        else:
            return np.full(n, np.nan), [""] * n, ["no series"] * n, np.zeros(n)
        method = [""] * n
        reasons: list[str | None] = [None] * n
        for i in range(n):
            if np.isfinite(res.values[i]):
                method[i] = f"{name} ({res.notes[i]})" if res.notes[i] else name
            else:
                reasons[i] = f"{self.label} {name}: {res.reasons[i]}"
        return res.values, method, reasons, res.edge_error


@dataclass
class Selection:
    entities: list[Entity] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    excluded_estimated: list[str] = field(default_factory=list)
    engine: list[Series] = field(default_factory=list)
    host_busy: list[Series] = field(default_factory=list)

    @property
    def has_cpu(self) -> bool:
        return any(e.domain == "cpu" and e.additive for e in self.entities)

    @property
    def has_gpu(self) -> bool:
        return any(e.domain == "gpu" and e.additive for e in self.entities)


def instances_of(series: Sequence[Series]) -> list[str]:
    return sorted(
        {
            s.labels.get("instance", "")
            for s in series
            if s.name in (CPU_ENERGY, CPU_POWER, GPU_ENERGY, GPU_POWER)
        }
    )


def select_entities(series: Sequence[Series], *, allow_estimated: bool) -> Selection:
    sel = Selection()
    # (domain, instance, key) -> source -> {"counter": Series, "power": Series}
    groups: dict[tuple[str, str, str], dict[str, dict[str, Series]]] = {}
    kinds: dict[tuple[str, str, str], str] = {}
    for s in series:
        lab = s.labels
        inst = lab.get("instance", "")
        source = lab.get("source", "") or "unknown"
        if s.name in (CPU_ENERGY, CPU_POWER):
            zone = lab.get("zone", "package")
            gkey = ("cpu", inst, f"{zone}/{lab.get('socket', '0')}")
            kinds[gkey] = zone_kind(zone)
            kind = "counter" if s.name == CPU_ENERGY else "power"
        elif s.name in (GPU_ENERGY, GPU_POWER):
            gkey = ("gpu", inst, f"gpu{lab.get('gpu', '')}:{lab.get('uuid', '')}".rstrip(":"))
            kinds[gkey] = "gpu"
            kind = "counter" if s.name == GPU_ENERGY else "power"
        elif s.name == ENGINE_CPU:
            sel.engine.append(s)
            continue
        elif s.name == HOST_CPU:
            if lab.get("mode", "") not in HOST_IDLE_MODES:
                sel.host_busy.append(s)
            continue
        else:
            continue
        groups.setdefault(gkey, {}).setdefault(source, {})[kind] = s

    psys_instances = {g[1] for g, k in kinds.items() if k == "psys"}
    for gkey in sorted(groups):
        domain, inst, key = gkey
        by_source = groups[gkey]
        usable = sorted(by_source, key=contract.source_rank)
        if not allow_estimated and any(map(contract.is_estimate, usable)):
            sel.excluded_estimated.append(f"{domain}:{key}")
            usable = [u for u in usable if not contract.is_estimate(u)]
        if not usable:
            continue
        source = usable[0]
        if len(usable) > 1:
            sel.notes.append(
                note("source_chosen", entity=f"{domain}:{key}", source=source, ignored=usable[1:])
            )
        kind = kinds[gkey]
        if domain == "gpu":
            additive = True
        elif inst in psys_instances:
            additive = kind == "psys"
        else:
            additive = kind in ("package", "dram")
        pair = by_source[source]
        sel.entities.append(
            Entity(domain, key, source, additive, inst, pair.get("counter"), pair.get("power"))
        )
    if sel.excluded_estimated:
        sel.notes.append(note("estimated_excluded", entities=sorted(set(sel.excluded_estimated))))
    if psys_instances:
        sel.notes.append(note("cpu_psys"))
    elif sel.has_cpu:
        sel.notes.append(note("cpu_package_dram"))
    return sel


def drop_repeated_counter_values(s: Series) -> Series:
    """query_range repeats a series' last sample through gaps (up to the 5 min lookback). An
    energy counter always moves, so a repeated value is such a fill-in: drop it, which turns the
    fill-in back into the gap it was (shorter gaps are then interpolated, longer ones reported).
    """
    if s.name not in (CPU_ENERGY, GPU_ENERGY) or s.v.size < 2:
        return s
    keep = np.concatenate(([True], np.diff(s.v) != 0))
    return Series(s.labels, s.t[keep], s.v[keep])
