"""The shared pieces of every command line: endpoint auth (HttpAuth and its settings under any
prefix), setting flag kinds, the stop-signal helper and the logging set-up."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

import pytest
import requests
from base_monitoring_client.config import ClientConfig, load_config
from base_monitoring_client.errors import ConfigError
from base_monitoring_client.httpauth import HttpAuth, auth_settings
from base_monitoring_client.logutil import configure_logging
from base_monitoring_client.settings import (
    add_setting_flags,
    parse_settings,
    settings_from_args,
)
from base_monitoring_client.signals import StopSignals
from base_monitoring_client.transport import HttpTransport

PREFIX = "QUERY_"


def auth_from(env: dict[str, str], prefix: str = PREFIX) -> HttpAuth:
    return HttpAuth.from_values(parse_settings(auth_settings(prefix), env), prefix)


def problems_of(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        auth_from(env)
    assert info.value.exit_code == 2
    return info.value.problems


# -- HttpAuth -------------------------------------------------------------------------------


def test_the_settings_of_a_prefix() -> None:
    assert [s.env for s in auth_settings(PREFIX)] == [
        "QUERY_BEARER_TOKEN",
        "QUERY_BEARER_TOKEN_FILE",
        "QUERY_BASIC_AUTH_USER",
        "QUERY_BASIC_AUTH_PASSWORD",
        "QUERY_BASIC_AUTH_PASSWORD_FILE",
        "QUERY_CA_FILE",
        "QUERY_TLS_INSECURE",
        "QUERY_HEADERS",
    ]
    assert auth_from({}) == HttpAuth()
    assert {s.secret for s in auth_settings(PREFIX) if "TOKEN" in s.env or "PASS" in s.env} == {
        True,
        False,  # the _FILE paths are not secret
    }


def test_secrets_are_read_from_files_and_stay_out_of_repr(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cr3t-token\n")
    (tmp_path / "password").write_text("pa55\n")
    auth = auth_from({"QUERY_BEARER_TOKEN_FILE": str(tmp_path / "token")})
    assert auth.bearer_token == "s3cr3t-token"
    basic = auth_from(
        {
            "QUERY_BASIC_AUTH_USER": "u",
            "QUERY_BASIC_AUTH_PASSWORD_FILE": str(tmp_path / "password"),
            "QUERY_HEADERS": "X-Scope-OrgID=team1, X-Api-Key=k3y",
        }
    )
    assert (basic.basic_auth_user, basic.basic_auth_password) == ("u", "pa55")
    assert basic.headers == {"X-Scope-OrgID": "team1", "X-Api-Key": "k3y"}
    for secret in ("s3cr3t", "pa55", "k3y", "team1"):
        assert secret not in repr(auth) + repr(basic)


def test_every_conflict_is_reported_at_once_naming_the_variables(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    problems = problems_of(
        {
            "QUERY_BEARER_TOKEN": "t",
            "QUERY_BEARER_TOKEN_FILE": str(token),
            "QUERY_BASIC_AUTH_PASSWORD": "p",
            "QUERY_BASIC_AUTH_PASSWORD_FILE": str(tmp_path / "missing"),
            "QUERY_CA_FILE": str(tmp_path / "ca.pem"),
        }
    )
    text = "\n".join(problems)
    assert "QUERY_BEARER_TOKEN and QUERY_BEARER_TOKEN_FILE are both set; keep only one" in text
    assert "QUERY_BASIC_AUTH_PASSWORD and QUERY_BASIC_AUTH_PASSWORD_FILE are both set" in text
    assert f"QUERY_BASIC_AUTH_PASSWORD_FILE={tmp_path / 'missing'}: cannot read the file" in text
    assert "QUERY_BASIC_AUTH_PASSWORD is set without QUERY_BASIC_AUTH_USER; set the user" in text
    assert f"QUERY_CA_FILE={tmp_path / 'ca.pem'}: no such file; point it at a PEM CA" in text
    assert len(problems) == 5
    assert "t\n" not in text and "=p" not in text  # values of secrets never shown


def test_token_and_basic_auth_conflict_and_an_empty_secret_file(tmp_path: Path) -> None:
    (problem,) = problems_of({"QUERY_BEARER_TOKEN": "t", "QUERY_BASIC_AUTH_USER": "u"})
    assert problem.startswith("QUERY_BEARER_TOKEN and QUERY_BASIC_AUTH_USER are both set")
    assert "unset the other" in problem
    empty = tmp_path / "empty"
    empty.write_text("\n")
    (problem,) = problems_of({"QUERY_BEARER_TOKEN_FILE": str(empty)})
    assert problem == f"QUERY_BEARER_TOKEN_FILE={empty}: the file is empty; write the secret " \
        "into it or unset the variable"  # fmt: skip


def test_apply_sets_headers_credentials_and_tls_on_a_session(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    session = requests.Session()
    session.headers["X-Own"] = "mine"
    HttpAuth(bearer_token="t", ca_file=ca, headers={"X-Own": "theirs", "X-T": "1"}).apply(session)
    assert session.headers["Authorization"] == "Bearer t"
    assert (session.headers["X-Own"], session.headers["X-T"]) == ("theirs", "1")
    assert session.verify == str(ca) and session.auth is None
    session = requests.Session()
    HttpAuth(basic_auth_user="u", tls_insecure=True).apply(session)
    assert session.auth == ("u", "") and session.verify is False
    assert "Authorization" not in session.headers
    session = requests.Session()
    HttpAuth().apply(session)
    assert session.verify is True and session.auth is None


def test_the_remote_write_settings_are_the_same_auth(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("rw-token")
    config, _ = load_config(
        env={
            "REMOTE_WRITE_BEARER_TOKEN_FILE": str(tmp_path / "token"),
            "REMOTE_WRITE_HEADERS": "X-Scope-OrgID=team1",
            "REMOTE_WRITE_TLS_INSECURE": "true",
        }
    )
    assert config.auth == HttpAuth(
        bearer_token="rw-token", tls_insecure=True, headers={"X-Scope-OrgID": "team1"}
    )
    transport = HttpTransport(config, "wattpush/test")
    assert transport.session.headers["Authorization"] == "Bearer rw-token"
    assert transport.session.headers["X-Scope-OrgID"] == "team1"
    assert transport.session.headers["Content-Encoding"] == "snappy"
    assert transport.session.verify is False
    transport.close()
    with pytest.raises(ConfigError, match="REMOTE_WRITE_BEARER_TOKEN and REMOTE_WRITE_BASIC"):
        load_config(env={"REMOTE_WRITE_BEARER_TOKEN": "t", "REMOTE_WRITE_BASIC_AUTH_USER": "u"})
    assert ClientConfig().auth == HttpAuth()


# -- flag kinds -----------------------------------------------------------------------------


def short_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="q")
    add_setting_flags(parser, auth_settings(PREFIX, short_flags=True))
    return parser


def test_short_flags_switch_repeat_and_no_password_flag(tmp_path: Path) -> None:
    settings = auth_settings(PREFIX, short_flags=True)
    assert [s.flag for s in settings if s.flag_kind != "none"] == [
        "--bearer-token",
        "--bearer-token-file",
        "--basic-auth-user",
        "--basic-auth-password-file",
        "--ca-file",
        "--tls-insecure",
        "--header",
    ]
    parser = short_parser()
    # No flag for the password: a command line is visible to every user (ps).
    assert "query_basic_auth_password" not in vars(parser.parse_args([]))
    args = parser.parse_args(
        ["--tls-insecure", "--header", "X-Scope-OrgID=team2", "--header", "X-B=2,X-C=3"]
    )
    env = {"QUERY_HEADERS": "X-Scope-OrgID=team1,X-A=1", "QUERY_TLS_INSECURE": "false"}
    auth = HttpAuth.from_values(settings_from_args(args, settings, env), PREFIX)
    # Each --header adds to the variable's headers; for the same name the flag wins.
    assert auth.headers == {"X-Scope-OrgID": "team2", "X-A": "1", "X-B": "2", "X-C": "3"}
    assert auth.tls_insecure is True  # the switch wins over the variable
    args = parser.parse_args([])
    auth = HttpAuth.from_values(settings_from_args(args, settings, env), PREFIX)
    assert auth.headers == {"X-Scope-OrgID": "team1", "X-A": "1"} and not auth.tls_insecure
    args = parser.parse_args(["--header", "no-equals"])
    with pytest.raises(ConfigError) as info:
        settings_from_args(args, settings, {})
    # Headers carry API keys: the message names the item, never its text.
    assert info.value.problems == [
        "--header=<hidden>: header number 1 has no '=' (the value is not shown); "
        "write headers as Name=value[,Name=value]"
    ]


def test_a_password_variable_is_still_read_without_a_flag() -> None:
    settings = auth_settings(PREFIX, short_flags=True)
    args = short_parser().parse_args(["--basic-auth-user", "u"])
    values = settings_from_args(args, settings, {"QUERY_BASIC_AUTH_PASSWORD": "pw"})
    auth = HttpAuth.from_values(values, PREFIX)
    assert (auth.basic_auth_user, auth.basic_auth_password) == ("u", "pw")


# -- stop signals ---------------------------------------------------------------------------


def test_stop_signals_call_back_then_restore_or_ignore() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    got: list[int] = []
    with StopSignals(got.append) as signals:
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGINT)
    assert got == [signal.SIGTERM, signal.SIGINT] == signals.received
    assert (signals.first, signals.first_name) == (signal.SIGTERM, "SIGTERM")
    assert {s: signal.getsignal(s) for s in before} == before
    try:
        with StopSignals(got.append, ignore_after=True):
            pass
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
    with StopSignals(got.append, install=False):
        assert {s: signal.getsignal(s) for s in before} == before


def test_stop_signals_outside_the_main_thread_install_nothing() -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with StopSignals(lambda _: None) as signals:
                assert signals.first is None and signals.first_name == ""
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert errors == []


# -- logging --------------------------------------------------------------------------------


def test_configure_logging_replaces_its_own_handler_only() -> None:
    root = logging.getLogger()
    foreign = logging.NullHandler()
    saved = (list(root.handlers), root.level)
    root.addHandler(foreign)
    try:
        configure_logging("debug", "json", "t")
        configure_logging("warning", "text", "t")
        ours = [h for h in root.handlers if type(h).__name__ == "_StderrHandler"]
        assert len(ours) == 1 and foreign in root.handlers
        assert root.level == logging.WARNING
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_a_flag_prefix_is_refused_not_taken_for_the_file_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # argparse would read `--basic-auth-password` as `--basic-auth-password-file`, and the
    # secret would turn up in the "cannot read" error as a file name.
    with pytest.raises(SystemExit) as info:
        short_parser().parse_args(["--basic-auth-password", "s3cret"])
    assert info.value.code == 2
    assert "unrecognized arguments: --basic-auth-password" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        short_parser().parse_args(["--bearer-tok", "t"])
    assert short_parser().parse_args(["--bearer-token-file", "/t"]).query_bearer_token_file
