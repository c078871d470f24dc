"""Command-line entry shared by every client: config, logging, signals, exit codes."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import __version__
from .client import MonitoringClient
from .config import BASE_SETTINGS, ClientConfig, Setting, add_setting_flags, config_from_args
from .errors import ConfigError, MonitoringClientError
from .logutil import configure_logging
from .pipeline import Pipeline
from .settings import SettingsArgumentParser
from .signals import STOP_SIGNALS, StopSignals
from .synthetic import SyntheticClient

log = logging.getLogger(__name__)

ClientFactory = Callable[[ClientConfig, Mapping[str, Any]], MonitoringClient]


def build_parser(
    prog: str,
    description: str,
    settings: Sequence[Setting],
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.ArgumentParser:
    parser = SettingsArgumentParser(
        prog=prog,
        description=description,
        epilog="Every setting is read from its environment variable; a flag overrides it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    if add_arguments is not None:
        add_arguments(parser)
    add_setting_flags(parser, list(BASE_SETTINGS) + list(settings))
    return parser


def run_client_main(
    factory: ClientFactory,
    *,
    prog: str,
    description: str = "",
    settings: Sequence[Setting] = (),
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    install_signal_handlers: bool = True,
    ready: Callable[[Pipeline], None] | None = None,
    stop_event: threading.Event | None = None,
) -> int:
    """Parse, build the client, run the pipeline until SIGTERM/SIGINT; return the exit code."""
    parser = build_parser(prog, description, settings, add_arguments)
    args = parser.parse_args(argv)
    all_settings = list(BASE_SETTINGS) + list(settings)
    try:
        config, values = config_from_args(args, all_settings, env)
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exc.exit_code
    configure_logging(config.log_level, config.log_format, prog)
    for warning in config.warnings:
        log.warning("%s", warning)
    setting_names = {s.dest for s in all_settings}
    extras = {k: v for k, v in vars(args).items() if k not in setting_names}
    try:
        client = factory(config, {**values, **extras})
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exc.exit_code
    except MonitoringClientError as exc:
        log.error("%s", exc)
        return exc.exit_code
    stop = stop_event or threading.Event()
    # Once shut down the signals are ignored: the interpreter restores default handlers while
    # it finalises, but leaves SIG_IGN alone.
    with StopSignals(
        lambda _: stop.set(), install=install_signal_handlers, ignore_after=True
    ) as signals:
        pipeline = Pipeline(client, config)
        pipeline.on_fatal = stop.set  # a dead stage thread ends the process, exit code 1
        try:
            _start(pipeline, block_signals=signals.installed)
        except MonitoringClientError as exc:
            log.error("%s", exc)
            return exc.exit_code
        log.info(
            "%s %s pushing to %s every %gs, sampling every %gs",
            prog,
            __version__,
            config.remote_write_url,
            config.push_interval_s,
            config.sample_interval_s,
        )
        if ready is not None:
            ready(pipeline)
        try:
            # Only this thread takes SIGTERM/SIGINT (see _start), and a signal interrupts this
            # wait: no periodic wake-up needed. Without our handlers, poll as a safety net.
            while not stop.wait(None if signals.installed else 1.0):
                pass
        finally:
            if signals.received:
                log.info("signal %s received: flushing", signals.first_name)
            pipeline.stop()
    if pipeline.dead:
        log.error("exiting with code 1: the %s thread died", ", ".join(pipeline.dead))
        return 1
    return 0


def _start(pipeline: Pipeline, *, block_signals: bool) -> None:
    """Start the pipeline with SIGTERM/SIGINT blocked, so that its threads (which inherit
    the mask) never take them: the kernel then delivers them to the main thread, which runs
    the handlers."""
    if not block_signals:
        pipeline.start()
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, set(STOP_SIGNALS))
    try:
        pipeline.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def run_client(
    client_class: type[MonitoringClient],
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    **options: Any,
) -> int:
    """The console script of a client class: its settings, ``from_settings`` and flags."""
    return run_client_main(
        client_class.from_settings,
        prog=client_class.name,
        description=client_class.description,
        settings=client_class.settings,
        add_arguments=client_class.add_arguments,
        argv=argv,
        env=env,
        **options,
    )


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    return run_client(SyntheticClient, argv, env)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
