"""The settings table: each tunable is a ``Setting`` read from its environment variable and
its command-line flag (the flag wins).

A ``Setting`` has a parser that raises ``InvalidValue`` with what it expects; parse_settings()
collects every problem and raises one ConfigError that names each variable, the bad value
(never for secrets) and the fix. Every component builds its command line and reads its
environment through this table (``add_setting_flags`` + ``settings_from_args``).
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from .errors import ConfigError

Parser = Callable[[str], Any]
#: How a setting appears on the command line; see ``Setting.flag_kind``.
FlagKind = Literal["value", "switch", "repeat", "none"]

LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]i?[bB]?|[bB])?\s*$")
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "ki": 1024, "kib": 1024,
    "m": 1000**2, "mb": 1000**2, "mi": 1024**2, "mib": 1024**2,
    "g": 1000**3, "gb": 1000**3, "gi": 1024**3, "gib": 1024**3,
    "t": 1000**4, "tb": 1000**4, "ti": 1024**4, "tib": 1024**4,
}  # fmt: skip


class InvalidValue(ValueError):  # noqa: N818 - reads as 'raise InvalidValue(...)'
    """Raised by a parser; the message says what is expected."""


def parse_float(
    min_value: float | None = None,
    max_value: float | None = None,
    *,
    positive: bool = False,
) -> Parser:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise InvalidValue("expected a number") from None
        if not math.isfinite(value):
            raise InvalidValue("expected a finite number")
        if positive and value <= 0:
            raise InvalidValue("expected a number greater than 0")
        if min_value is not None and value < min_value:
            raise InvalidValue(f"expected a number >= {min_value:g}")
        if max_value is not None and value > max_value:
            raise InvalidValue(f"expected a number <= {max_value:g}")
        return value

    return parse


def parse_int(min_value: int | None = None, max_value: int | None = None) -> Parser:
    def parse(text: str) -> int:
        try:
            value = int(text.strip().replace("_", ""))
        except ValueError:
            raise InvalidValue("expected a whole number") from None
        if min_value is not None and value < min_value:
            raise InvalidValue(f"expected a whole number >= {min_value}")
        if max_value is not None and value > max_value:
            raise InvalidValue(f"expected a whole number <= {max_value}")
        return value

    return parse


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise InvalidValue("expected true or false")


def parse_str(text: str) -> str:
    return text


def parse_optional_str(text: str) -> str | None:
    return text or None


def parse_bytes(text: str) -> int:
    """Sizes like 268435456, 256MiB, 1.5GB."""
    match = _SIZE_RE.match(text)
    if not match:
        raise InvalidValue("expected a size such as 268435456, 256MiB or 1GB")
    number, unit = match.groups()
    factor = _SIZE_UNITS.get((unit or "").lower())
    if factor is None:
        raise InvalidValue("expected a size such as 268435456, 256MiB or 1GB")
    return int(float(number) * factor)


def parse_choice(*choices: str) -> Parser:
    def parse(text: str) -> str:
        lowered = text.strip().lower()
        if lowered not in choices:
            raise InvalidValue("expected one of " + ", ".join(choices))
        return lowered

    return parse


def parse_http_url(text: str) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise InvalidValue("expected an http:// or https:// URL with a host")
    return text.strip()


def parse_optional_path(text: str) -> Path | None:
    return Path(text) if text else None


def parse_path(text: str) -> Path:
    if not text:
        raise InvalidValue("expected a path")
    return Path(text)


def parse_pairs(text: str, *, what: str, check_label_name: bool) -> dict[str, str]:
    """``k=v,k=v`` (spaces around items ignored)."""
    pairs: dict[str, str] = {}
    for raw_item in text.split(","):
        item = raw_item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidValue(f"expected {what} as key=value[,key=value], got item {item!r}")
        if check_label_name and (not LABEL_NAME_RE.match(key) or key.startswith("__")):
            raise InvalidValue(
                f"{key!r} is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*, no leading __)"
            )
        if key in pairs:
            raise InvalidValue(f"{key!r} appears twice")
        pairs[key] = value.strip()
    return pairs


def parse_labels(text: str) -> dict[str, str]:
    return parse_pairs(text, what="labels", check_label_name=True)


def parse_headers(text: str) -> dict[str, str]:
    return parse_pairs(text, what="headers", check_label_name=False)


@dataclass(frozen=True)
class Setting:
    """One tunable: its environment variable, textual default, parser and the fix to suggest.

    ``flag_kind`` says how its flag is given: ``value`` (``--flag VALUE``), ``switch``
    (``--flag`` alone means true), ``repeat`` (``--flag VALUE`` as often as needed: each value
    is parsed on its own and merged over the environment's, later ones winning; the parser
    returns a dict) or ``none`` (environment only, e.g. a password, which ``ps`` would show).
    """

    env: str
    default: str
    parse: Parser
    help: str
    fix: str = ""
    secret: bool = False
    #: the flag; empty: derived from the variable (SAMPLE_INTERVAL_S -> --sample-interval-s)
    cli_flag: str = ""
    flag_kind: FlagKind = "value"

    @property
    def flag(self) -> str:
        return self.cli_flag or "--" + self.env.lower().replace("_", "-")

    @property
    def dest(self) -> str:
        return self.env.lower()


def add_setting_flags(parser: argparse.ArgumentParser, settings: Iterable[Setting]) -> None:
    # No prefixes of flags: `--basic-auth-password SECRET` would otherwise be taken as
    # `--basic-auth-password-file` and the secret end up in an error message as a path.
    parser.allow_abbrev = False
    group = parser.add_argument_group("settings (each flag overrides its environment variable)")
    for s in settings:
        default = "" if s.secret else f" (default: {s.default or 'unset'})"
        if s.flag_kind == "none":
            continue
        if s.flag_kind == "switch":
            group.add_argument(
                s.flag,
                dest=s.dest,
                action="store_const",
                const="true",
                default=None,
                help=f"{s.help} (or {s.env}=true)",
            )
        elif s.flag_kind == "repeat":
            group.add_argument(
                s.flag,
                dest=s.dest,
                action="append",
                default=None,
                metavar=s.env,
                help=f"{s.help}; repeatable, each added to those in {s.env}",
            )
        else:
            group.add_argument(
                s.flag, dest=s.dest, default=None, metavar=s.env, help=f"{s.help}{default}"
            )


FlagValue = str | Sequence[str] | None


def parse_settings(
    settings: Sequence[Setting],
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, FlagValue] | None = None,
) -> dict[str, Any]:
    """Parse every setting; raise one ConfigError that lists every problem.

    ``flags`` maps ``Setting.dest`` to the raw flag value (None = not given; a list of values
    for a ``repeat`` flag).
    """
    env = os.environ if env is None else env
    flags = flags or {}
    values: dict[str, Any] = {}
    problems: list[str] = []

    def parse(s: Setting, raw: str, origin: str) -> Any:
        try:
            return s.parse(raw)
        except InvalidValue as exc:
            shown = "<hidden>" if s.secret else repr(raw)
            fix = f"; {s.fix}" if s.fix else ""
            problems.append(f"{origin}={shown}: {exc}{fix}")
            return None

    for s in settings:
        flag_value = flags.get(s.dest) if s.flag_kind != "none" else None
        repeated: Sequence[str] = ()
        if s.flag_kind == "repeat" and flag_value is not None:
            repeated = [flag_value] if isinstance(flag_value, str) else flag_value
            flag_value = None  # merged over the environment's value below
        raw: str | None = None
        if isinstance(flag_value, str):
            raw, origin = flag_value, s.flag
        else:
            raw, origin = env.get(s.env), s.env
        if raw is None:
            raw, origin = s.default, f"{s.env} (default)"
        value = parse(s, raw, origin)
        for item in repeated:
            more = parse(s, item, s.flag)
            if isinstance(value, dict) and isinstance(more, dict):
                value = {**value, **more}
        values[s.dest] = value
    if problems:
        raise ConfigError(problems)
    return values


def settings_from_args(
    args: argparse.Namespace,
    settings: Sequence[Setting],
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """parse_settings() for a parser built with add_setting_flags(): the flags given win."""
    raw = vars(args)
    return parse_settings(settings, env, {s.dest: raw.get(s.dest) for s in settings})
