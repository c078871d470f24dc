"""The AppArmor profile compiles (apparmor_parser -Q) and grants RAPL read-only, nothing more."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

APPARMOR = Path(__file__).resolve().parents[2] / "AppArmor"
PROFILE = APPARMOR / "wattpush-cpu-rapl"
INSTALL = APPARMOR / "install.sh"

needs_parser = pytest.mark.skipif(
    shutil.which("apparmor_parser") is None, reason="apparmor_parser is not installed"
)


def parse(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["apparmor_parser", "-Q", "-K", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def rules() -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in PROFILE.read_text().splitlines())
    return [line for line in lines if line]


@needs_parser
def test_apparmor_parser_accepts_the_profile() -> None:
    result = parse(PROFILE)
    assert result.returncode == 0, result.stderr


@needs_parser
def test_apparmor_parser_rejects_a_broken_copy(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.write_text(PROFILE.read_text().replace("network inet stream,", "network inet strem,"))
    assert parse(broken).returncode != 0  # the check above can fail


def test_powercap_access_is_read_only_and_limited_to_rapl() -> None:
    allowed = [r for r in rules() if "powercap" in r and not r.startswith("deny")]
    assert allowed, "the profile grants nothing under powercap"
    for rule in allowed:
        perms = rule.rstrip(",").split()[-1]
        assert set(perms) <= {"r"}, f"{rule!r} grants more than read"
        if "/sys/devices/virtual/powercap/" in rule and not rule.endswith("powercap/ r,"):
            assert "{intel-rapl,intel-rapl-mmio,amd-rapl}" in rule, rule
    assert "deny /sys/devices/virtual/powercap/** wklx," in rules()


def test_profile_grants_no_blanket_file_or_capability_access() -> None:
    body = rules()
    assert "file," not in body and "capability," not in body
    assert "deny capability," in body and "deny mount," in body
    assert not any(re.match(r"^/sys/\*\*", r) for r in body)
    assert any(r.startswith("profile wattpush-cpu-rapl ") for r in body)


@needs_parser
def test_install_script_check_mode_compiles_without_root() -> None:
    result = subprocess.run(
        [str(INSTALL), "--check"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "compiles" in result.stdout


@needs_parser
def test_install_script_rejects_a_non_numeric_group() -> None:
    result = subprocess.run(
        [str(INSTALL), "--rapl-group", "wheel"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "not a numeric group id" in result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_install_script_passes_shellcheck() -> None:
    result = subprocess.run(
        ["shellcheck", str(INSTALL)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout
