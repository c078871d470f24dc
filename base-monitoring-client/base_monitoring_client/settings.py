"""The settings table: each tunable is a ``Setting`` read from its environment variable and
its command-line flag (the flag wins).

A ``Setting`` has a parser that raises ``InvalidValue`` with what it expects; parse_settings()
collects every problem and raises one ConfigError that names each variable, the bad value
(never for secrets) and the fix. Every component builds its command line and reads its
environment through this table (``add_setting_flags`` + ``settings_from_args``).
"""

from __future__ import annotations

import argparse
import difflib
import ipaddress
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn
from urllib.parse import urlsplit

from .errors import ConfigError
from .redact import redact_url
from .sample import LABEL_NAME_RE

Parser = Callable[[str], Any]
#: How a setting appears on the command line; see ``Setting.flag_kind``.
FlagKind = Literal["value", "switch", "repeat", "none"]

# RFC 9110 field names (tokens); values: no control characters but tab (a CR or LF would end
# the header and start another). The transport checks what it sends with these too.
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
HEADER_VALUE_BAD_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
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
    """An http(s) URL with a host and, if any, a port in 1..65535 (checked here: urllib only
    notices a bad port when the first request is built)."""
    url = text.strip()
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise InvalidValue("a URL cannot contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidValue(f"{exc}: the port must be a number between 1 and 65535") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidValue("expected an http:// or https:// URL with a host")
    if port == 0:
        raise InvalidValue("port 0 cannot be connected to: use a port between 1 and 65535")
    return url


def parse_host_address(text: str) -> str:
    """An address to listen on: an IPv4/IPv6 literal or a host name (not resolved here)."""
    value = text.strip()
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        if not _HOSTNAME_RE.match(value):
            raise InvalidValue(
                "expected an IP address or a host name, e.g. 127.0.0.1 or 0.0.0.0"
            ) from None
    return value.strip("[]")


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
    """``Name=value[,Name=value]`` HTTP headers. Messages name the header, never its value
    (headers carry API keys)."""
    headers: dict[str, str] = {}
    for index, raw_item in enumerate(text.split(","), 1):
        item = raw_item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            shown = repr(item.partition(":")[0].strip()) if ":" in item else f"number {index}"
            raise InvalidValue(f"header {shown} has no '=' (the value is not shown)")
        if not HEADER_NAME_RE.match(name):
            raise InvalidValue(
                f"header name {name!r} is not a valid HTTP field name (letters, digits and "
                "-, no spaces or line breaks)"
            )
        if name.lower() in {h.lower() for h in headers}:
            raise InvalidValue(f"header {name!r} appears twice")
        if HEADER_VALUE_BAD_RE.search(value):
            raise InvalidValue(
                f"the value of header {name!r} contains a line break or another control "
                "character, which HTTP does not allow (value not shown)"
            )
        headers[name] = value.strip()
    return headers


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
            shown = "<hidden>" if s.secret else repr(redact_url(raw))
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


def misspelt_variables(
    settings: Sequence[Setting], env: Mapping[str, str] | None = None
) -> list[str]:
    """Problems for environment variables that look like a mistyped setting: same first word
    as a setting (``SPOOL_`` of ``SPOOL_DIR``) and nearly its name, e.g. ``SPOOL_DIRECTORY``,
    ``PUSH_INTERVALS``, ``REMOTE_WRITE_BEARER_TOKN``. A typo would otherwise leave the setting
    at its default without a word (spool or auth silently off).

    Other variables sharing a first word (``DOCKER_CONTEXT`` beside ``DOCKER_HOST``) are
    left alone: other programs in the same environment read them.
    """
    env = os.environ if env is None else env
    known = {s.env for s in settings}
    by_prefix: dict[str, list[str]] = {}
    for name in known:
        by_prefix.setdefault(name.split("_", 1)[0] + "_", []).append(name)
    problems: list[str] = []
    for name in sorted(env):
        if name in known:
            continue
        candidates = by_prefix.get(name.split("_", 1)[0] + "_") if "_" in name else None
        if not candidates:
            continue
        guess = _closest_setting(name, candidates)
        if guess is not None:
            problems.append(
                f"{name} is not a setting (it is ignored); did you mean {guess}? "
                f"Rename it to {guess}, or unset it"
            )
    return problems


def _closest_setting(name: str, candidates: Sequence[str]) -> str | None:
    """The setting ``name`` is most likely a typo of: nearly the same letters, or the same
    letters with a word added or an underscore moved (``SPOOL_DIRECTORY``, ``PUSH_INTERVALS``)."""
    squeezed = name.replace("_", "")
    for candidate in candidates:
        other = candidate.replace("_", "")
        if squeezed.startswith(other) or other.startswith(squeezed):
            return candidate
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.85)
    return close[0] if close else None


class SettingsArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser that never echoes what it could not parse: a mistyped secret flag
    (``--remote-write-basic-auth-pasword S``) would otherwise print the secret in the
    "unrecognized arguments" error. Unknown flags are named (with the closest known one);
    their values are not shown."""

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(self._unrecognized(extras))
        return parsed

    def _unrecognized(self, extras: Sequence[str]) -> str:
        flags = [item.partition("=")[0] for item in extras if item.startswith("-")]
        known = sorted(_option_strings(self))
        parts = []
        for flag in flags:
            close = difflib.get_close_matches(flag, known, n=1, cutoff=0.7)
            parts.append(f"{flag} (did you mean {close[0]}?)" if close else flag)
        hidden = len(extras) - len(flags)
        text = "unrecognized arguments: " + (", ".join(parts) if parts else "")
        if hidden:
            text += f"{'; ' if parts else ''}{hidden} value(s) not shown (they may be secrets)"
        return text + "; see --help"

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every flag of ``parser`` and its sub-commands."""
    found: set[str] = set()
    for action in parser._actions:
        found.update(s for s in action.option_strings if s.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _option_strings(sub)
    return found
