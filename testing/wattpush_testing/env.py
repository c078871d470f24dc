"""The environment for running a component's console script from this checkout."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def process_env(
    *components: str,
    drop_prefixes: Iterable[str] = (),
    base: Mapping[str, str] | None = None,
    **overrides: str,
) -> dict[str, str]:
    """``base`` (default: this process's environment) without the variables starting with
    ``drop_prefixes``, with the base client and ``components`` (folder names) on PYTHONPATH,
    unbuffered output, then ``overrides``."""
    prefixes = tuple(drop_prefixes)
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not (prefixes and k.startswith(prefixes))}
    paths = [str(ROOT / c) for c in ("base-monitoring-client", *components)]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env
