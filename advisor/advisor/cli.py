"""``advisor report``, ``advisor compare`` and ``advisor predict``."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import re
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from base_monitoring_client import ConfigError, MonitoringClientError
from base_monitoring_client.config import LOG_SETTINGS
from base_monitoring_client.httpauth import HttpAuth, auth_settings
from base_monitoring_client.logutil import configure_logging
from base_monitoring_client.settings import (
    InvalidValue,
    Setting,
    SettingsArgumentParser,
    add_setting_flags,
    misspelt_variables,
    parse_bool,
    parse_choice,
    parse_float,
    parse_http_url,
    settings_from_args,
)
from ffmpeg_runner.contract import QUALITY_METRICS, parse_bitrate

from .analysis import SCORE_DIRECTIONS, finite_or_none
from .attribution import BASES
from .cost import TitleCostRequest
from .cost_config import load_cost_config
from .errors import AdvisorConfigError, AdvisorError, InsufficientDataError
from .export import require_pyarrow, write_parquet
from .predict import PowerPredictor
from .present.quality import compare_doc
from .present.quality import lines as quality_lines
from .prom import PrometheusAPI
from .quality import QualityTarget, compare, parse_target
from .recommender import DEFAULT_MAX_EDGE_GAP_S, TranscodingRecommender
from .render import CSV_TABLES, FORMATS, markdown_table, render, text_table
from .render_hosts import render_host_comparison

log = logging.getLogger("advisor")
PROG = "advisor"
ENV_PREFIX = "ADVISOR_"
QUERY_COMMANDS = ("report", "compare")
_DURATION_RE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$|^\d+(?:\.\d+)?$")
_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)?")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def parse_duration(text: str) -> float:
    text = text.strip()
    total = (
        sum(float(n) * _UNITS[u or None] for n, u in _PART_RE.findall(text))
        if _DURATION_RE.match(text)
        else 0.0
    )
    if total <= 0:
        raise AdvisorConfigError(
            f"--since {text!r} is not a duration; write it like 90s, 30m, 2h, 2h30m or 1d"
        )
    return total


def _positive_seconds(flag: str, *, allow_zero: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            least = "0 or more" if allow_zero else "more than 0"
            raise argparse.ArgumentTypeError(f"{flag} {text!r}: give seconds, {least}")
        return value

    return parse


def _parse_query_url(text: str) -> str | None:
    return parse_http_url(text) if text.strip() else None


#: Where ``report`` and ``compare`` query, and how: each an ADVISOR_* variable and a flag.
QUERY_SETTINGS: tuple[Setting, ...] = (
    Setting("ADVISOR_PROMETHEUS_URL", "", _parse_query_url,
            "query API root, e.g. http://localhost:9090",
            "pass the Prometheus-compatible query root, e.g. http://localhost:9090",
            cli_flag="--prometheus-url"),
    *auth_settings(ENV_PREFIX, short_flags=True),
    Setting("ADVISOR_TIMEOUT_S", "60", parse_float(positive=True, max_value=3600),
            "seconds per query", "use a number of seconds > 0, e.g. 60", cli_flag="--timeout"),
    Setting("ADVISOR_HTTP_COMPRESSION", "false", parse_bool,
            "ask for gzip responses (slow links; costs receiver CPU)", "use true or false",
            cli_flag="--http-compression", flag_kind="switch"),
    Setting("ADVISOR_QUERY_MODE", "raw", parse_choice("raw", "range"),
            "raw: every stored sample; range: query_range at --step", "use raw or range",
            cli_flag="--query-mode"),
)  # fmt: skip


def command_settings(command: str) -> tuple[Setting, ...]:
    """The settings a subcommand reads (``predict`` queries nothing)."""
    return (*LOG_SETTINGS, *(QUERY_SETTINGS if command in QUERY_COMMANDS else ()))


@dataclass(frozen=True)
class QueryConfig:
    """The query API's settings, parsed and checked together."""

    url: str
    auth: HttpAuth
    timeout_s: float
    compression: bool
    query_mode: str

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> QueryConfig:
        """From the parsed QUERY_SETTINGS; one ConfigError names every problem and its fix."""
        problems: list[str] = []
        url = values["advisor_prometheus_url"]
        if url is None:
            problems.append(
                "no Prometheus URL: pass --prometheus-url or set ADVISOR_PROMETHEUS_URL to the "
                "Prometheus-compatible query root, e.g. http://localhost:9090"
            )
        auth = HttpAuth()
        try:
            auth = HttpAuth.from_values(values, ENV_PREFIX)
        except ConfigError as exc:
            problems.extend(exc.problems)
        if problems:
            raise AdvisorConfigError(problems)
        return cls(
            url,
            auth,
            values["advisor_timeout_s"],
            values["advisor_http_compression"],
            values["advisor_query_mode"],
        )

    def api(self) -> PrometheusAPI:
        return PrometheusAPI(
            self.url, auth=self.auth, timeout_s=self.timeout_s, compression=self.compression
        )


def build_api(args: argparse.Namespace, env: Mapping[str, str]) -> PrometheusAPI:
    """The query API from the flags and the ADVISOR_* variables (a flag wins)."""
    return QueryConfig.from_values(settings_from_args(args, QUERY_SETTINGS, env)).api()


def check_output(output: str | None) -> None:
    """Refuse an --output that cannot be written before the analysis, not after it: a
    directory, or a place this user cannot create a file in."""
    if not output:
        return
    path = Path(output)
    if path.is_dir():
        raise AdvisorConfigError(f"--output {output}: is a directory; give a file name in it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise AdvisorConfigError(
            f"--output {output}: cannot write in {path.parent} ({exc.strerror or exc}); "
            "choose a writable place or leave --output out to print to stdout"
        ) from None


def _write(text: str, output: str | None) -> None:
    """To stdout, or whole to ``output`` (a temp file beside it, renamed; never left behind)."""
    if not output:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    path = Path(output)
    tmp = ""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise AdvisorError(
            f"--output {output}: cannot write the report ({exc.strerror or exc}); the "
            "analysis is lost: choose a writable place and run again"
        ) from None
    log.info("wrote %s", path)


def _bounded_since(
    api: PrometheusAPI, since: float | None, args: argparse.Namespace
) -> float | None:
    return None if since is None else api.bounded_since(since, args.since)


def _recommender(
    args: argparse.Namespace, query: QueryConfig, api: PrometheusAPI, **kw: object
) -> TranscodingRecommender:
    return TranscodingRecommender(
        api=api,
        allow_estimated=args.allow_estimated,
        query_mode=query.query_mode,
        step_s=args.step,
        matchers=args.match or [],
        instance=args.instance,
        max_gap_s=args.max_gap,
        max_edge_gap_s=args.max_edge_gap,
        energy_basis=args.energy_basis,
        **kw,  # type: ignore[arg-type]
    )


def _count(flag: str, *, positive: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text.replace("_", ""))
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            least = "more than 0" if positive else "0 or more"
            raise argparse.ArgumentTypeError(f"{flag} {text!r}: give a number {least}")
        return value

    return parse


def _title_cost(args: argparse.Namespace, target: QualityTarget | None) -> TitleCostRequest | None:
    """--title-minutes, --views and --cost-config, checked before any query."""
    given = [
        flag
        for flag, value in (
            ("--views", args.views),
            ("--title-minutes", args.title_minutes),
            ("--cost-config", args.cost_config),
        )
        if value is not None
    ]
    if not given:
        return None
    if target is None:
        raise AdvisorConfigError(
            f"{given[0]} needs --target-quality: the title cost prices each family at a quality "
            "target; add e.g. --target-quality vmaf=93"
        )
    if args.views is None or args.title_minutes is None:
        raise AdvisorConfigError(
            f"{' and '.join(given)} need both --title-minutes M and --views N, e.g. "
            "--title-minutes 90 --views 1000000"
        )
    if args.compare_hosts:
        raise AdvisorConfigError(
            "--views prices one host's families: leave out --compare-hosts (run a report per host)"
        )
    config = load_cost_config(Path(args.cost_config) if args.cost_config else None)
    return TitleCostRequest(args.title_minutes, args.views, config)


def _windows_source(args: argparse.Namespace) -> float | None:
    if bool(args.results) == bool(args.since):
        raise AdvisorConfigError("pass exactly one of --results manifest.json or --since 2h")
    return parse_duration(args.since) if args.since else None


def cmd_report(args: argparse.Namespace, query: QueryConfig) -> int:
    since = _windows_source(args)
    target = parse_target(args.target_quality) if args.target_quality else None
    cost = _title_cost(args, target)
    if args.format == "parquet":
        if not args.output or args.compare_hosts:
            raise AdvisorConfigError(
                "--format parquet writes one file per table: pass --output DIR (a directory) "
                "and leave out --compare-hosts"
            )
        require_pyarrow()
    api = query.api()
    since = _bounded_since(api, since, args)
    rec = _recommender(
        args,
        query,
        api,
        rank_by=args.rank_by,
        alpha=args.alpha,
        predict=not args.no_predict,
        seed=args.seed,
        target_quality=target,
        title_cost=cost,
    )
    if args.compare_hosts and (args.instance or args.save_model):
        raise AdvisorConfigError(
            "--compare-hosts analyses every host on its own: leave out --instance and "
            "--save-model (run a report per host for those)"
        )
    try:
        windows = rec.load_windows(args.results, since_s=since, run_id=args.run_id)
        if args.compare_hosts:
            comparison = rec.compare_hosts(windows)
        else:
            report = rec.analyze(windows)
    finally:
        api.close()
    if args.compare_hosts:
        _write(render_host_comparison(comparison, args.format), args.output)
        log.info(
            "host comparison done: %d queries, %d hosts",
            comparison.queries,
            len(comparison.reports),
        )
        return 0
    if args.save_model:
        if report.predictor is None:
            log.warning(
                "no model to save: %s",
                report.prediction.get("power", {}).get("message", "prediction skipped"),
            )
        else:
            report.predictor.save(args.save_model)
            log.info("model saved to %s", args.save_model)
    if args.format == "parquet":
        written, skipped = write_parquet(report, Path(args.output))
        for path in written:
            log.info("wrote %s", path)
        for table, why in skipped.items():
            log.info("table %s not written: %s", table, why)
    else:
        _write(render(report, args.format, args.csv_table), args.output)
    log.info("report done: %d queries, %d windows", report.meta["queries"], len(report.windows))
    return 0


def cmd_compare(args: argparse.Namespace, query: QueryConfig) -> int:
    since = _windows_source(args)
    api = query.api()
    since = _bounded_since(api, since, args)
    rec = _recommender(args, query, api, predict=False, quality_metric=args.metric)
    try:
        windows = rec.load_windows(args.results, since_s=since, run_id=args.run_id)
        report = rec.analyze(windows)
    finally:
        api.close()
    qa = report.quality
    if not qa.measured or qa.metric is None:
        raise InsufficientDataError(" ".join(quality_lines(qa)) or "quality was not measured")
    doc = compare_doc(qa, *compare(qa, args.family_a, args.family_b))
    if args.format == "json":
        text = json.dumps({k: _json_value(v) for k, v in doc.items()}, indent=2, allow_nan=False)
    else:
        text = doc["summary"]
    _write(text, args.output)
    # No common quality range: the comparison could not be made (the text says why).
    return 0 if doc["overlap"] is not None else 1


def _json_value(v: object) -> object:
    if isinstance(v, dict):
        return {k: _json_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_value(x) for x in v]
    return finite_or_none(v)


def _resolution_rungs(text: str) -> list[tuple[int, int]]:
    rungs = []
    for part in text.split("+"):
        m = re.match(r"^(\d+)x(\d+)(?:@\S+)?$", part.strip())
        if not m:
            raise AdvisorConfigError(
                f"--resolution {text!r}: write WxH or a ladder WxH+WxH, e.g. 1280x720+640x360"
            )
        rungs.append((int(m.group(1)), int(m.group(2))))
    return rungs


def cmd_predict(args: argparse.Namespace) -> int:
    model = PowerPredictor.load(args.model)
    try:
        streams = [int(s) for s in args.streams.split(",") if s.strip()]
    except ValueError as exc:
        raise AdvisorConfigError(f"--streams {args.streams!r}: write counts like 1,2,4,8") from exc
    if not streams or min(streams) < 1:
        raise AdvisorConfigError("--streams needs positive counts, e.g. 1,2,4,8,12")
    if args.pixels_per_s is not None:
        per_stream = args.pixels_per_s
    else:
        per_stream = sum(w * h for w, h in _resolution_rungs(args.resolution)) * args.fps
    try:
        bitrate = parse_bitrate(args.bitrate)
    except InvalidValue as exc:
        raise AdvisorConfigError(f"--bitrate: {exc}") from None
    frame = pd.DataFrame(
        {
            "streams": streams,
            "pixels_per_s": [per_stream * s for s in streams],
            "bitrate_bps": bitrate,
            "encoder": args.encoder,
            "preset": args.preset,
        }
    )
    out = model.predict(frame)
    out.insert(0, "target", model.target)
    if args.format == "json":
        text = json.dumps(
            {
                "schema_version": 1,
                "model": model.model_name_,
                "target": model.target,
                "heldout_mape_pct": model.mape_,
                "interval_level": model.interval,
                "predictions": json.loads(out.to_json(orient="records")),
            },
            indent=2,
        )
    elif args.format == "csv":
        text = out.to_csv(index=False, lineterminator="\n")
    else:
        shown = out.copy()
        for c in ("predicted", "lower", "upper"):
            shown[c] = shown[c].map(lambda v: f"{v:.4g}")
        table = markdown_table(shown) if args.format == "markdown" else text_table(shown)
        text = (
            f"model {model.model_name_} (held-out MAPE {model.mape_:.2f}%), "
            f"{int(model.interval * 100)}% prediction intervals\n\n{table}"
        )
    _write(text, args.output)
    return 0


def _add_window_args(p: argparse.ArgumentParser) -> None:
    """Where windows and power come from: shared by report and compare."""
    src = p.add_argument_group("windows (one of)")
    src.add_argument(
        "--results", nargs="+", action="extend", metavar="MANIFEST", help="ffmpeg-runner manifests"
    )
    src.add_argument("--since", help="discover windows from ffmpeg_scenario_info, e.g. 2h")
    p.add_argument("--run-id", help="only this run")
    p.add_argument(
        "--allow-estimated",
        action="store_true",
        help='use source="estimated" power (CPU-time model) when nothing better',
    )
    p.add_argument(
        "--step",
        type=float,
        default=None,
        help="seconds; default the manifest's sample interval (0.1)",
    )
    p.add_argument(
        "--match",
        action="append",
        metavar="MATCHER",
        help='extra label matcher for every query, e.g. job="cpu-rapl-client"',
    )
    p.add_argument("--instance", help="instance label of the measured host")
    p.add_argument(
        "--max-gap",
        type=_positive_seconds("--max-gap"),
        default=None,
        help="seconds without samples that count as missing data (default max(2, 10 x step))",
    )
    p.add_argument(
        "--max-edge-gap",
        type=_positive_seconds("--max-edge-gap", allow_zero=True),
        default=DEFAULT_MAX_EDGE_GAP_S,
        help="a window edge inside an energy-counter gap up to this long is interpolated and its "
        "worst-case error reported; longer makes the window missing; 0 never interpolates "
        f"(default {DEFAULT_MAX_EDGE_GAP_S:g})",
    )
    p.add_argument(
        "--energy-basis",
        choices=BASES,
        default=None,
        help="which energy every figure uses: attributed (the transcode's share of the dynamic "
        "energy by CPU time; needs the runner's CPU accounting), net (minus the idle baseline) "
        "or gross (the whole machine); default attributed where every window has accounting, "
        "else net where every window has a baseline, else gross",
    )
    add_setting_flags(p, QUERY_SETTINGS)


def build_parser() -> argparse.ArgumentParser:
    parser = SettingsArgumentParser(
        prog=PROG,
        description="Recommend the FFmpeg configuration with the least energy at a target "
        "quality, rank configurations by measured energy efficiency, and predict power.",
    )
    add_setting_flags(parser, LOG_SETTINGS)
    sub = parser.add_subparsers(dest="command", required=True)

    rep = sub.add_parser("report", help="analyse windows and print/write a report")
    _add_window_args(rep)
    rep.add_argument("--format", choices=(*FORMATS, "parquet"), default="table")
    rep.add_argument(
        "--output", help="write here instead of stdout (with --format parquet: a directory)"
    )
    rep.add_argument(
        "--csv-table",
        choices=CSV_TABLES,
        default="scenarios",
        help="which table --format csv writes",
    )
    rep.add_argument(
        "--target-quality",
        metavar="METRIC=VALUE",
        help="recommend the family with the least energy per output minute at this quality, "
        f"e.g. vmaf=93, psnr=40 or ssim=0.98 (metrics: {', '.join(QUALITY_METRICS)})",
    )
    cost = rep.add_argument_group("title cost (with --target-quality)")
    cost.add_argument(
        "--title-minutes",
        type=_count("--title-minutes", positive=True),
        metavar="M",
        help="price encoding a title of M minutes once and delivering it --views times",
    )
    cost.add_argument(
        "--views", type=_count("--views", positive=False), metavar="N", help="e.g. 1000000"
    )
    cost.add_argument(
        "--cost-config",
        metavar="FILE",
        help="JSON prices, carbon intensity or region, delivery energy (default: the published "
        "figures, no prices; example: advisor/cost-config.example.json)",
    )
    rep.add_argument("--rank-by", choices=tuple(SCORE_DIRECTIONS), default="pixels_per_joule")
    rep.add_argument("--alpha", type=float, default=0.05, help="significance level")
    rep.add_argument("--save-model", metavar="DIR", help="save the fitted power model here")
    rep.add_argument("--no-predict", action="store_true", help="skip the prediction models")
    rep.add_argument("--seed", type=int, default=0)
    rep.add_argument(
        "--compare-hosts",
        action="store_true",
        help="analyse each host (instance) on its own and rank every scenario that ran on two "
        "or more hosts across them",
    )

    cmp_ = sub.add_parser(
        "compare",
        help="mean energy difference of two families at equal quality (an energy BD-rate)",
    )
    cmp_.add_argument("family_a", metavar="FAMILY_A", help="e.g. libx264/medium/640x360")
    cmp_.add_argument("family_b", metavar="FAMILY_B", help="e.g. libx265/fast/640x360")
    _add_window_args(cmp_)
    cmp_.add_argument(
        "--metric",
        choices=QUALITY_METRICS,
        default=None,
        help="quality metric (default: the most widely measured one)",
    )
    cmp_.add_argument("--format", choices=("table", "json"), default="table")
    cmp_.add_argument("--output", help="write here instead of stdout")

    pred = sub.add_parser("predict", help="predict with a model saved by report --save-model")
    pred.add_argument("--model", required=True, metavar="DIR")
    pred.add_argument("--streams", default="1,2,4,8,12")
    pred.add_argument(
        "--resolution",
        default="1280x720",
        help="WxH, or a ladder WxH+WxH (pixel rate adds up over rungs)",
    )
    pred.add_argument("--fps", type=float, default=30.0)
    pred.add_argument(
        "--pixels-per-s",
        type=float,
        default=None,
        help="per-stream output pixel rate (overrides --resolution/--fps)",
    )
    pred.add_argument("--bitrate", default="2M", help="top-rung bitrate, e.g. 2M")
    pred.add_argument("--encoder", default="libx264")
    pred.add_argument("--preset", default="default", help="as in the manifest (default = none)")
    pred.add_argument("--format", choices=("table", "markdown", "csv", "json"), default="table")
    pred.add_argument("--output")
    return parser


# The analysis names a setting as the Python API does; the user typed it as this flag.
FLAGS = {
    "target_quality": "--target-quality",
    "quality_metric": "--metric",
    "energy_basis": "--energy-basis",
    "rank_by": "--rank-by",
    "max_edge_gap_s": "--max-edge-gap",
    "query_mode": "--query-mode",
    "prometheus_url": "--prometheus-url",
    "instance": "--instance",
    "compare_hosts": "--compare-hosts",
    "results": "--results",
    "since_s": "--since",
    "step_s": "--step",
    "cost_config": "--cost-config",
}


def flag_message(exc: Exception) -> str:
    """The error's message with each setting it names said as the flag that sets it."""
    text = str(exc)
    for setting in getattr(exc, "settings", ()):
        flag = FLAGS.get(setting)
        if flag:
            text = re.sub(rf"(?<![\w-]){re.escape(setting)}(?![\w-])", flag, text)
    return text


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = command_settings(args.command)
        typos = misspelt_variables(settings, env)
        if typos:
            raise AdvisorConfigError(typos)
        values = settings_from_args(args, settings, env)
        query = QueryConfig.from_values(values) if args.command in QUERY_COMMANDS else None
    except ConfigError as exc:
        print(f"{PROG}: {flag_message(exc)}", file=sys.stderr)
        return exc.exit_code
    configure_logging(values["log_level"], values["log_format"], PROG)
    for warning in query.auth.warnings if query is not None else ():
        log.warning("%s", warning)
    try:
        check_output(getattr(args, "output", None))
        if query is None:
            return cmd_predict(args)
        if args.command == "report":
            return cmd_report(args, query)
        return cmd_compare(args, query)
    except ConfigError as exc:
        log.error("%s", flag_message(exc))
        return 2
    except MonitoringClientError as exc:
        log.error("%s", flag_message(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
