"""Configuration: defaults, env and flags, every problem reported at once, secrets hidden."""

from __future__ import annotations

from pathlib import Path

import pytest
from base_monitoring_client.cli import main
from base_monitoring_client.config import (
    BASE_SETTINGS,
    ClientConfig,
    Setting,
    load_config,
    parse_bytes,
    parse_float,
)
from base_monitoring_client.errors import ConfigError


def test_defaults_match_the_spec_table() -> None:
    config, _ = load_config(env={})
    assert config.remote_write_url == "http://localhost:9090/api/v1/write"
    assert config.sample_interval_s == 0.1
    assert config.push_interval_s == 4.0
    assert config.max_samples_per_send == 2000
    assert config.queue_capacity == 100_000
    assert config.spool_dir is None
    assert config.spool_max_bytes == 256 * 1024 * 1024
    assert (config.min_backoff_s, config.max_backoff_s) == (0.03, 5.0)
    assert config.retry_on_429 is True
    assert config.remote_write_timeout_s == 10.0
    assert config.health_port == 0
    assert config.shutdown_timeout_s == 10.0
    assert config.instance  # hostname


def test_flags_win_over_environment() -> None:
    config, _ = load_config(
        env={"SAMPLE_INTERVAL_S": "0.5", "PUSH_INTERVAL_S": "2"},
        flags={"sample_interval_s": "0.25"},
    )
    assert config.sample_interval_s == 0.25
    assert config.push_interval_s == 2.0


def test_all_problems_are_reported_together_with_name_value_and_fix() -> None:
    env = {
        "SAMPLE_INTERVAL_S": "fast",
        "MAX_SAMPLES_PER_SEND": "0",
        "REMOTE_WRITE_URL": "prometheus:9090",
        "RETRY_ON_429": "maybe",
        "EXTRA_LABELS": "team=a,bad-name=b",
        "SPOOL_MAX_BYTES": "lots",
    }
    with pytest.raises(ConfigError) as info:
        load_config(env=env)
    problems = info.value.problems
    assert len(problems) == 6
    text = str(info.value)
    for name, value in env.items():
        assert name in text
        assert repr(value) in text
    assert "e.g. 0.1 for 10 Hz" in text  # the fix, not only the complaint


def test_cross_field_checks() -> None:
    with pytest.raises(ConfigError, match="MAX_BACKOFF_S=0.01 is below MIN_BACKOFF_S=1"):
        load_config(env={"MIN_BACKOFF_S": "1", "MAX_BACKOFF_S": "0.01"})
    with pytest.raises(ConfigError, match="without REMOTE_WRITE_BASIC_AUTH_USER"):
        load_config(env={"REMOTE_WRITE_BASIC_AUTH_PASSWORD": "pw"})


def test_secrets_never_appear_in_errors_or_repr(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cr3t-token\n")
    config, _ = load_config(env={"REMOTE_WRITE_BEARER_TOKEN_FILE": str(token_file)})
    assert config.auth.bearer_token == "s3cr3t-token"
    assert "s3cr3t" not in repr(config)
    from base_monitoring_client.config import InvalidValue, parse_settings

    def bad(_: str) -> int:
        raise InvalidValue("expected digits")

    secret = Setting("API_KEY", "", bad, "key", secret=True)
    with pytest.raises(ConfigError) as info:
        parse_settings([secret], env={"API_KEY": "hunter2"})
    assert "hunter2" not in str(info.value)
    assert "<hidden>" in str(info.value)


def test_unreadable_secret_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="REMOTE_WRITE_BEARER_TOKEN_FILE=.*cannot read"):
        load_config(env={"REMOTE_WRITE_BEARER_TOKEN_FILE": str(tmp_path / "missing")})


def test_labels_headers_and_sizes() -> None:
    config, _ = load_config(
        env={
            "EXTRA_LABELS": "site=lab, rack=r1",
            "REMOTE_WRITE_HEADERS": "X-Scope-OrgID=team1",
            "SPOOL_MAX_BYTES": "64MiB",
        }
    )
    assert config.extra_labels == {"site": "lab", "rack": "r1"}
    assert config.auth.headers == {"X-Scope-OrgID": "team1"}
    assert config.spool_max_bytes == 64 * 1024 * 1024
    assert parse_bytes("1.5GB") == 1_500_000_000
    assert parse_bytes("1024") == 1024


def test_client_settings_are_parsed_with_the_base_ones() -> None:
    own = Setting("RAPL_WIDGETS", "3", parse_float(1, 10), "widgets", "use 1..10")
    with pytest.raises(ConfigError) as info:
        load_config([*BASE_SETTINGS, own], env={"RAPL_WIDGETS": "99", "HEALTH_PORT": "-1"})
    assert len(info.value.problems) == 2
    _, values = load_config([*BASE_SETTINGS, own], env={"RAPL_WIDGETS": "4"})
    assert values["rapl_widgets"] == 4.0


def test_cli_exits_2_with_every_problem(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["--sample-interval-s", "0", "--push-interval-s", "x"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--sample-interval-s='0'" in err
    assert "--push-interval-s='x'" in err


def test_config_is_frozen() -> None:
    config = ClientConfig()
    with pytest.raises(AttributeError):
        config.sample_interval_s = 1.0  # type: ignore[misc]


def test_the_settings_defaults_are_the_client_config_defaults() -> None:
    config, _ = load_config(env={"INSTANCE": "h"})
    assert config == ClientConfig(instance="h")
