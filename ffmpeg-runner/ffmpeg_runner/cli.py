"""``ffmpeg-runner single | multi | batch --file F``: run scenarios (in ``--order``, with
``--repeats``), tag their windows, write the results manifest; ``ffmpeg-runner clips`` lists
the named real clips and their paths.
Exit codes: 0 every window ok, 1 a window failed (or another error), 2 invalid
flags/settings/batch file (or quality asked for that no ffmpeg can measure), 3 ffmpeg
unusable, 128+N stopped by signal N."""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from base_monitoring_client import (
    BASE_SETTINGS,
    ConfigError,
    InvalidValue,
    MonitoringClientError,
    Setting,
    parse_float,
    parse_optional_str,
    parse_path,
    parse_str,
)
from base_monitoring_client.config import add_setting_flags, config_from_args
from base_monitoring_client.logutil import configure_logging
from base_monitoring_client.pipeline import Pipeline
from base_monitoring_client.settings import SettingsArgumentParser
from base_monitoring_client.signals import StopSignals

from . import __version__, search_cli
from .client import RunnerClient
from .contract import QUALITY_METRICS, SearchRecord, parse_bitrate
from .errors import FfmpegUnavailableError, RunnerError, ScenarioError
from .ffmpeg import FfmpegInfo, check_encoders, probe_ffmpeg, stream_commands
from .manifest import RUN_ID_RE, check_output_dir, new_run_id
from .policy import DEFAULT_ORDER, ORDER_HELP, Order, parse_order
from .quality import QualityTool, choose_tool
from .runner import NullSink, Runner, RunOptions, WindowSink
from .scenario import FIELDS, Scenario, build_scenario, load_batch, parse_ladder, read_batch
from .schedule import Schedule
from .source import CLIP_DISTRIBUTION, CLIPS, clip_path

log = logging.getLogger(__name__)
PROG = "ffmpeg-runner"

RUNNER_SETTINGS: tuple[Setting, ...] = (
    Setting("OUTPUT_DIR", "results", parse_path,
            "directory of the manifest <run_id>.json and of encoded files (<run_id>/...)",
            "point it at a writable directory, e.g. results"),
    Setting("FFMPEG_PATH", "ffmpeg", parse_str, "ffmpeg binary (name on PATH or a path)",
            "install ffmpeg or give the full path, e.g. /usr/bin/ffmpeg"),
    Setting("STOP_GRACE_S", "5", parse_float(0.1, 600),
            "seconds ffmpeg gets after 'q' (and again after SIGTERM) before the next step",
            "use a number of seconds between 0.1 and 600, e.g. 5"),
    Setting("QUALITY_FFMPEG_PATH", "", parse_optional_str,
            "ffmpeg that measures quality (default: FFMPEG_PATH, else the quality extra's "
            "static ffmpeg; the first with every filter asked for is used)",
            "give an ffmpeg built with --enable-libvmaf, e.g. /opt/ffmpeg/bin/ffmpeg"),
)  # fmt: skip

# flag dest -> (scenario field, text -> JSON-typed value)
_SCENARIO_FLAGS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "name": ("name", str),
    "input": ("input", str),
    "encoder": ("encoder", str),
    "preset": ("preset", str),
    "resolution": ("resolution", str),
    "fps": ("fps", float),
    "output": ("output", str),
    "duration": ("duration", float),
    "stabilization": ("stabilization", float),
    "cooldown": ("cooldown", float),
    "repeat": ("repeat", str),  # N or auto[:MIN:MAX]
    "with_baseline": ("with_baseline", bool),
    "baseline_duration": ("baseline_duration", float),
    "realtime": ("realtime", bool),
    "quality": ("quality", str),
    "vmaf_subsample": ("vmaf_subsample", int),
}


# Flags whose name is not their dest's (an error names the flag the help shows).
_FLAG_NAMES = {"repeat": "--repeats"}


def _add_scenario_flags(parser: argparse.ArgumentParser, *, batch: bool) -> None:
    group = parser.add_argument_group(
        "scenario (in batch mode these replace the file's defaults)" if batch else "scenario"
    )
    add = group.add_argument
    if not batch:
        add("--name", help="scenario name (default: ENCODER-PRESET-RUNG[-Nx])")
        add("--input", metavar="FILE|testsrc2|" + "|".join(CLIPS),
            help="media file or named clip (see `clips`), looped (default: testsrc2)")  # fmt: skip
    add("--encoder", help=FIELDS["encoder"].help + " (default: libx264)")
    add("--preset", help="encoder preset, e.g. fast (x264/x265), 8 (svtav1), good:4 (vp9)")
    if not batch:
        add("--bitrate", help="bitrate of the single output (default: 2M)")
        add("--bitrates", metavar="LIST", help="comma list, one scenario per bitrate: 1M,2M,4M")
        add("--ladder", metavar="RUNGS", help="outputs in one process: 1280x720@2M,640x360@800k")
        add("--crf", metavar="V[,V...]",
            help="constant quality instead of a bitrate: CRF (x264/x265 0-51, SVT-AV1 1-63, "
            "VP9/AV1 0-63; lower is better); a comma list sweeps")  # fmt: skip
        add("--cq", metavar="V[,V...]", help="NVENC constant quality (-rc vbr -cq V, 1-51)")
    add("--resolution", metavar="WxH", help=FIELDS["resolution"].help)
    add("--fps", help="source frame rate (default: 30)")
    add(
        "--output", metavar="null|files|rtmp://...", help="where encoded video goes (default: null)"
    )
    add("--duration", metavar="S", help="measured window seconds (default: 30)")
    add("--stabilization", metavar="S", help="seconds of encoding before the window (default: 5)")
    add("--cooldown", metavar="S", help="idle seconds after each window (default: 5)")
    add("--repeats", "--repeat", dest="repeat", metavar="N|auto[:MIN:MAX]",
        help="transcode windows per scenario: N, or auto (= auto:3:8): at least MIN, until "
        "the 95 %% CI of its transcode CPU per output minute is within 3 %%, at most MAX "
        "(default: 1)")  # fmt: skip
    add("--with-baseline", action="store_const", const="true", default=None,
        help="record an idle baseline window before each scenario")  # fmt: skip
    add("--baseline-duration", metavar="S", help="baseline seconds (default: --duration)")
    add("--realtime", action=argparse.BooleanOptionalAction, default=None,
        help="read input at its frame rate (-re); default on for rtmp://, else off")  # fmt: skip
    add("--quality", metavar="LIST",
        help=f"measure after each window: comma list of {','.join(QUALITY_METRICS)} "
        "(compared with the source; use real content, e.g. --input bbb)")  # fmt: skip
    add("--vmaf-subsample", metavar="N", help=FIELDS["vmaf_subsample"].help + " (default: 1)")


def _add_run_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("run")
    group.add_argument("--run-id", help="run id (default: UTC time + random suffix)")
    group.add_argument(
        "--order",
        metavar="ORDER",
        help=f'window order: {ORDER_HELP}; default: the batch file\'s "order", else '
        "interleaved (round r runs repeat r of every scenario)",
    )
    group.add_argument(
        "--dry-run", action="store_true", help="print the ffmpeg command lines, run nothing"
    )
    group.add_argument(
        "--fail-fast", action="store_true", help="stop the batch at the first failed window"
    )
    group.add_argument(
        "--no-push", action="store_true", help="write the manifest only; push no samples"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = SettingsArgumentParser(
        prog=PROG,
        description="Run reproducible ffmpeg transcoding scenarios, tag their windows in "
        "Prometheus (remote write) and write a results manifest.",
        epilog="Every setting is read from its environment variable; a flag overrides it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="single|multi|batch|search|clips"
    )
    all_settings = list(BASE_SETTINGS) + list(RUNNER_SETTINGS)
    single = sub.add_parser("single", help="one stream (sweep with --bitrates)")
    multi = sub.add_parser("multi", help="N parallel streams (sweep with --count 1,2,4,8)")
    batch = sub.add_parser("batch", help="scenarios from a JSON file")
    sub.add_parser("clips", help="list the named real clips (--input NAME) and their paths")
    search_cli.add_search_parser(sub, all_settings)
    for command in (single, multi, batch):
        if command is batch:
            command.add_argument(
                "--file",
                required=True,
                type=Path,
                help="batch JSON file, or a shipped batch by name: quick, demo, codecs, "
                "stress, search (a file with a search object runs a target-quality search)",
            )
        if command is multi:
            command.add_argument(
                "--count",
                default="2",
                metavar="N[,N...]",
                help="parallel ffmpeg processes, or a comma list to sweep (default: 2)",
            )
        _add_scenario_flags(command, batch=command is batch)
        _add_run_flags(command)
        add_setting_flags(command, all_settings)
    return parser


# -- scenarios from flags ----------------------------------------------------------------------


def _flag_values(args: argparse.Namespace, problems: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for dest, (field, convert) in _SCENARIO_FLAGS.items():
        raw = getattr(args, dest, None)
        if raw is None:
            continue
        flag = _FLAG_NAMES.get(dest, "--" + dest.replace("_", "-"))
        try:
            typed = raw if isinstance(raw, bool) else convert(raw)
            if field == "with_baseline":
                typed = True
            values[field] = FIELDS[field].parse(typed)
        except (ValueError, InvalidValue) as exc:
            problems.append(f"{flag} {raw}: {exc}")
    return values


def _batch_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The scenario flags of ``batch`` (parsed; problems are reported by the batch itself)."""
    if args.command != "batch":
        return {}
    return _flag_values(args, [])


def _split_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def plan_from_args(args: argparse.Namespace) -> tuple[list[Scenario], Order]:
    """The scenarios and the order: ``--order``, else the batch file's, else interleaved."""
    order = None
    if args.order is not None:
        try:
            order = parse_order(args.order)
        except InvalidValue as exc:
            raise ScenarioError(f"--order {args.order}: {exc}") from None
    if args.command == "batch":
        problems: list[str] = []
        values = _flag_values(args, problems)
        if problems:
            raise ScenarioError(problems)
        batch = read_batch(args.file, overrides=values)
        return batch.scenarios, order or batch.order or DEFAULT_ORDER
    return scenarios_from_args(args), order or DEFAULT_ORDER


def scenarios_from_args(args: argparse.Namespace) -> list[Scenario]:
    problems: list[str] = []
    values = _flag_values(args, problems)
    if args.command == "batch":
        if problems:
            raise ScenarioError(problems)
        return load_batch(args.file, overrides=values)
    bitrates: list[int | None] = []
    if args.bitrate is not None and args.bitrates is not None:
        problems.append("--bitrate and --bitrates: give one of them")
    for text in _split_list(args.bitrates or args.bitrate or ""):
        try:
            bitrates.append(parse_bitrate(text))
        except InvalidValue as exc:
            problems.append(f"--bitrate(s) {text}: {exc}")
    if args.ladder is not None:
        if bitrates:
            problems.append("--ladder and --bitrate(s): each rung has its bitrate; drop --bitrate")
        values["ladder"] = parse_ladder(args.ladder, problems, "--")
    quality_values = constant_quality_values(args, problems)
    counts = [1]
    if args.command == "multi":
        counts = []
        for text in _split_list(args.count):
            try:
                count = int(text)
                FIELDS["streams"].parse(count)
                counts.append(count)
            except (ValueError, InvalidValue):
                problems.append(
                    f"--count {text}: expected whole numbers from 1 to 64, e.g. 1,2,4,8"
                )
    if problems:
        raise ScenarioError(problems)
    explicit_name = values.pop("name", None)
    scenarios: list[Scenario] = []
    settings: list[dict[str, Any]] = [{"bitrate": bps} for bps in bitrates]
    settings += [{"rate_control": rc, "quality_value": v} for rc, v in quality_values]
    for setting in settings or [{}]:
        for count in counts:
            item = dict(values, streams=count, **setting)
            # A CRF/CQ out of the encoder's range is reported as the flag that gave it.
            rc = setting.get("rate_control")
            where = f"--{rc} {setting['quality_value']:g}: " if rc else ""
            probe = build_scenario({**item, "name": "probe"}, where, problems)
            if probe is None:
                raise ScenarioError(sorted(set(problems)))
            name = explicit_name or f"{probe.encoder}-{probe.preset_label}-{probe.rungs[0].name}"
            if len(settings) > 1:
                name += f"-{probe.rungs[0].setting}"
            if args.command == "multi" and (explicit_name is None or len(counts) > 1):
                name += f"-{count}x"
            scenario = build_scenario({**item, "name": name}, where, problems)
            if scenario is None:
                raise ScenarioError(problems)
            scenarios.append(scenario)
    return scenarios


def constant_quality_values(
    args: argparse.Namespace, problems: list[str]
) -> list[tuple[str, float]]:
    """(rate control, value) for each ``--crf``/``--cq`` value; the encoder's range is checked
    when the scenario is built."""
    out: list[tuple[str, float]] = []
    given = [rc for rc in ("crf", "cq") if getattr(args, rc, None) is not None]
    if len(given) > 1:
        problems.append("--crf and --cq: give one of them (cq is NVENC's, crf the others')")
    clashing = [f for f in ("bitrate", "bitrates", "ladder") if getattr(args, f) is not None]
    if given and clashing:
        problems.append(
            f"--{given[0]} and --{clashing[0]}: constant quality replaces the bitrate; give one "
            f"(a ladder writes it per rung: 640x360@{given[0]}23)"
        )
    for rc in given:
        for text in _split_list(getattr(args, rc)):
            try:
                out.append((rc, float(text)))
            except ValueError:
                problems.append(f"--{rc} {text}: expected a number, e.g. --{rc} 23")
    return out


# -- main --------------------------------------------------------------------------------------


def print_dry_run(scenarios: Sequence[Scenario], options: RunOptions, out: Any) -> None:
    schedule = Schedule(scenarios, options.order)
    seed = f" (seed {schedule.seed})" if schedule.seed is not None else ""
    print(f"# run {options.run_id}: manifest would be {options.manifest_path}", file=out)
    print(f"# order {schedule.kind}{seed}", file=out)
    for scenario in scenarios:
        policy = scenario.repeat_policy
        if policy.auto:
            print(f"# {scenario.name}: repeats {policy.text}: {policy.min} shown; up to "
                  f"{policy.max} until stable", file=out)  # fmt: skip
    for step in schedule.steps():
        scenario = step.scenario
        if step.phase == "baseline":
            print(f"# {scenario.name} baseline: {scenario.baseline_duration_s:g} s idle", file=out)
            continue
        commands = stream_commands(
            scenario, step.repeat, options.media_dir, options.ffmpeg.path, options.stats_period_s
        )
        for stream, argv in enumerate(commands):
            print(f"# {scenario.name} repeat {step.repeat} stream {stream}", file=out)
            print(shlex.join(argv), file=out)


def print_clips(out: Any) -> int:
    """``ffmpeg-runner clips``: each named clip, its path (or how to install it)."""
    for name, (_, about) in CLIPS.items():
        path = clip_path(name)
        where = str(path) if path else f"not installed (needs {CLIP_DISTRIBUTION}: make venv)"
        print(f"{name:<6} {where}\n       {about}", file=out)
    return 0


def pick_quality_tool(
    scenarios: Sequence[Scenario], values: Mapping[str, Any], encode_ffmpeg: str
) -> QualityTool | None:
    """The ffmpeg that measures every metric the scenarios ask for (None: none asked)."""
    metrics = sorted({m for s in scenarios for m in s.quality}, key=QUALITY_METRICS.index)
    if not metrics:
        return None
    tool = choose_tool(metrics, values.get("quality_ffmpeg_path"), encode_ffmpeg)
    log.info("quality %s measured with %s (%s)", ",".join(metrics), tool.path, tool.origin)
    return tool


def _exit_code(status: str, signum: int | None) -> int:
    if status == "interrupted":
        return 128 + (signum or signal.SIGTERM)
    return 0 if status == "completed" else 1


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "clips":
        return print_clips(sys.stdout)
    all_settings = list(BASE_SETTINGS) + list(RUNNER_SETTINGS)
    try:
        config, values = config_from_args(args, all_settings, env)
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.exit_code
    configure_logging(config.log_level, config.log_format, PROG)
    for warning in config.warnings:
        log.warning("%s", warning)
    if args.command == "search" or (
        args.command == "batch" and search_cli.is_search_file(args.file)
    ):
        return search_cli.main(args, config, values, run=run, overrides=_batch_overrides(args))
    try:
        scenarios, order = plan_from_args(args)
        run_id = args.run_id or new_run_id()
        if not RUN_ID_RE.match(run_id):
            raise ScenarioError(
                f"--run-id {run_id!r}: use letters, digits, '.', '_' or '-' (it names a file)"
            )
        try:
            info = probe_ffmpeg(values["ffmpeg_path"])
        except FfmpegUnavailableError as exc:
            if not args.dry_run:
                raise
            log.warning("%s; printing commands without checking encoders", exc)
            info = FfmpegInfo(values["ffmpeg_path"], "unknown", "", frozenset())
        else:
            check_encoders(scenarios, info, probe_hardware=not args.dry_run)
        quality_tool = pick_quality_tool(scenarios, values, info.path)
    except MonitoringClientError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.exit_code
    options = RunOptions(
        run_id=run_id,
        output_dir=values["output_dir"],
        ffmpeg=info,
        sample_interval_s=config.sample_interval_s,
        stop_grace_s=values["stop_grace_s"],
        fail_fast=args.fail_fast,
        quality=quality_tool,
        instance=config.instance,
        order=order,
    )
    if args.dry_run:
        print_dry_run(scenarios, options, sys.stdout)
        return 0
    try:
        check_output_dir(options.output_dir)
    except RunnerError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.exit_code
    return run(scenarios, options, None if args.no_push else config)


def run(
    scenarios: Sequence[Scenario],
    options: RunOptions,
    config: Any,
    *,
    search: Sequence[SearchRecord] = (),
    started_ms: int | None = None,
) -> int:
    """Run with a pipeline (config given) or without pushing (None); returns the exit code.
    ``search``: the target-quality searches that chose these scenarios (and ``started_ms``,
    when their probes began), written into the manifest."""
    client = RunnerClient()
    pipeline = Pipeline(client, config) if config is not None else None
    sink: WindowSink = client if pipeline is not None else NullSink()
    try:
        runner = Runner(scenarios, options, sink=sink)
        if search:
            runner.manifest.set_search(search, started_ms)
        if pipeline is not None:
            pipeline.start()
    except MonitoringClientError as exc:
        log.error("%s", exc)
        return exc.exit_code
    except OSError as exc:
        log.error("cannot start: %s; check OUTPUT_DIR and SPOOL_DIR permissions", exc)
        return 1

    # A signal asks the runner to stop: the window open is marked interrupted, the manifest
    # written; a second one while the pipeline flushes changes nothing.
    def on_signal(signum: int) -> None:
        runner.request_stop(f"{signal.Signals(signum).name} received")

    with StopSignals(on_signal) as signals:
        try:
            manifest = runner.run()
        except RunnerError as exc:  # the manifest could not be written at all
            log.error("%s", exc)
            return exc.exit_code
        finally:
            if pipeline is not None:
                # The closing samples and stale markers are made on the sampler's next tick.
                client.wait_idle(timeout=2.0 + 3 * options.sample_interval_s)
                pipeline.stop()
    for window in manifest.windows:
        print(
            f"{window.scenario:<32} {window.phase:<9} r{window.repeat:<3} "
            f"{window.status:<11} {window.duration_s:8.2f} s "
            f"{window.frames_total:>9} frames {window.output_pixels:>15} px"
        )
    print(f"manifest: {manifest.path} ({manifest.status})")
    return _exit_code(manifest.status, signals.first)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
