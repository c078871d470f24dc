"""The advisor never throws away an analysis nor prints a secret: --output is checked before
the analysis and never leaves a temp file, credentials in --prometheus-url never reach a report
or an error, a mistyped flag's value is not echoed, and --since is bounded by what the receiver
keeps (or refused with a message) instead of querying for ever."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from advisor.cli import _write, main
from advisor.errors import AdvisorError
from wattpush_testing import ReceiverProcess
from wattpush_testing.files import read_only_dir
from wattpush_testing.receivers import serve_get

from .conftest import World

pytestmark = pytest.mark.usefixtures("restore_root_logging")

SECRET = "pw-S3CRET-71d"
USER = "alice"
ENCODED = base64.b64encode(f"{USER}:{SECRET}".encode()).decode()


def assert_no_secret(text: str) -> None:
    for secret in (SECRET, ENCODED, "S3CRET"):
        assert secret not in text, text[max(0, text.find(secret) - 200) :][:400]


class FakeQueryAPI:
    """A query API on a loopback port: empty answers, a retention it states (or not), and
    errors that echo the request's Authorization header (as careless proxies do)."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.authorizations: list[str | None] = []
        self.retention: str | None = "1d"
        self.vm_flags: str | None = None
        self.echo_error = False

    def answer(self, path: str, authorization: str | None) -> tuple[int, str]:
        if path == "/api/v1/status/runtimeinfo":
            if self.retention is None:
                return 404, "404 page not found"
            return 200, json.dumps({"status": "success",
                                    "data": {"storageRetention": self.retention}})  # fmt: skip
        if path == "/flags":
            return (200, self.vm_flags) if self.vm_flags else (404, "not found")
        if self.echo_error:
            error = f"refused; got Authorization: {authorization}"
            return 400, json.dumps({"status": "error", "errorType": "bad_data", "error": error})
        empty = {"resultType": "matrix", "result": []}
        return 200, json.dumps({"status": "success", "data": empty})


@pytest.fixture
def api() -> Iterator[tuple[FakeQueryAPI, str]]:
    state = FakeQueryAPI()

    def answer(
        path: str, query: dict[str, list[str]], headers: Mapping[str, str]
    ) -> tuple[int, str]:
        state.paths.append(path)
        state.authorizations.append(headers.get("Authorization"))
        return state.answer(path, headers.get("Authorization"))

    with serve_get(answer, "fake-query-api") as url:
        yield state, url


def with_credentials(url: str) -> str:
    return url.replace("http://", f"http://{USER}:{SECRET}@")


# -- --output --------------------------------------------------------------------------------


def test_an_output_that_is_a_directory_is_refused_before_the_analysis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], api: tuple[FakeQueryAPI, str]
) -> None:
    state, url = api
    rc = main(["report", "--prometheus-url", url, "--since", "1h", "--output", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert f"--output {tmp_path}: is a directory" in err
    assert state.paths == [], "it queried before checking where the report goes"


def test_an_output_in_a_read_only_directory_is_refused_and_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], api: tuple[FakeQueryAPI, str]
) -> None:
    state, url = api
    with read_only_dir(tmp_path / "reports") as reports:
        rc = main(["report", "--prometheus-url", url, "--since", "1h",
                   "--output", str(reports / "report.html")])  # fmt: skip
        left = list(reports.iterdir())
    err = capsys.readouterr().err
    assert rc == 2, err
    assert f"--output {reports / 'report.html'}: cannot write in {reports}" in err
    assert "Traceback" not in err
    assert left == [] and state.paths == []


def test_a_write_that_fails_after_the_analysis_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "report.json"
    target.parent.mkdir()
    target.write_text("{}")  # an older report: it stays whole
    with read_only_dir(target.parent), pytest.raises(AdvisorError, match="cannot write the report"):
        _write('{"new": true}', str(target))
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.json"]
    assert target.read_text() == "{}"
    _write('{"new": true}', str(target))
    assert json.loads(target.read_text()) == {"new": True}
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.json"]


# -- secrets ---------------------------------------------------------------------------------


def test_credentials_in_the_url_are_sent_as_basic_auth_and_never_shown(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
    api: tuple[FakeQueryAPI, str],
) -> None:  # fmt: skip
    state, url = api
    rc = main(["report", "--prometheus-url", with_credentials(url), "--since", "1h"])
    out = capsys.readouterr()
    assert rc == 1  # nothing to report: said with the receiver's URL
    assert f"at {url}" in caplog.text
    assert state.authorizations[-1] == f"Basic {ENCODED}"
    state.echo_error = True
    rc = main(["report", "--prometheus-url", with_credentials(url), "--since", "1h"])
    assert rc == 1 and "refused; got Authorization: Basic ***" in caplog.text
    rc = main(["report", "--prometheus-url", with_credentials("http://127.0.0.1:1"),
               "--since", "1h"])  # fmt: skip
    assert rc == 1 and "cannot reach the Prometheus API at http://127.0.0.1:1" in caplog.text
    rc = main(["report", "--prometheus-url", with_credentials("http://127.0.0.1:99999")])
    err = capsys.readouterr().err
    assert rc == 2 and "'http://***@127.0.0.1:99999'" in err
    for text in (out.out, out.err, err, caplog.text):
        assert_no_secret(text)


def test_a_mistyped_flag_is_named_and_its_value_not_echoed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["report", "--prometheus-url", "http://x:9090", "--bearer-tokn", SECRET])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert "--bearer-tokn (did you mean --bearer-token?)" in err
    assert_no_secret(err)


def test_a_mistyped_variable_gets_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"ADVISOR_PROMETHEUS_URL": "http://127.0.0.1:1", "ADVISOR_BEARER_TOKN": SECRET}
    assert main(["report", "--since", "1h"], env=env) == 2
    err = capsys.readouterr().err
    assert "ADVISOR_BEARER_TOKN is not a setting" in err
    assert "did you mean ADVISOR_BEARER_TOKEN?" in err
    assert_no_secret(err)


# -- --since ---------------------------------------------------------------------------------


def test_since_beyond_the_retention_reads_what_the_receiver_keeps(
    caplog: pytest.LogCaptureFixture, api: tuple[FakeQueryAPI, str]
) -> None:
    state, url = api
    caplog.set_level("INFO", logger="advisor")
    assert main(["report", "--prometheus-url", url, "--since", "99999999h"]) == 1
    assert "reaches back further than" in caplog.text and "(1d)" in caplog.text
    # 1 d of 6 h chunks, after the retention question: bounded, not 16 million queries.
    assert state.paths[0] == "/api/v1/status/runtimeinfo"
    assert len([p for p in state.paths if p == "/api/v1/query"]) <= 5, state.paths
    assert "no ffmpeg_scenario_info windows in the last 86400 s" in caplog.text


@pytest.mark.parametrize("flags", [None, '-retentionPeriod="100y"'], ids=["unknown", "100y"])
def test_since_beyond_what_the_advisor_scans_is_refused_with_the_fix(
    flags: str | None, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
    api: tuple[FakeQueryAPI, str],
) -> None:  # fmt: skip
    state, url = api
    state.retention = None  # no runtime info: a VictoriaMetrics
    state.vm_flags = flags
    assert main(["report", "--prometheus-url", url, "--since", "99999999h"]) == 2
    kept = "an unknown time" if flags is None else "36500d"
    assert "--since 99999999h reaches back further than the advisor scans (366d" in caplog.text
    assert f"keeps data for {kept}" in caplog.text
    # the analysis names since_s and results; the command line says its flags
    assert "pass a shorter --since, e.g. 30d, or the runs' manifests with --results" in caplog.text
    assert "/api/v1/query" not in state.paths


@pytest.mark.integration
@pytest.mark.slow
def test_since_is_bounded_against_real_receivers(
    receiver: ReceiverProcess, world: World, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:  # fmt: skip
    """Prometheus keeps 1 d (PrometheusProcess): --since is cut to that and the report made;
    VictoriaMetrics keeps 100 y: more than the advisor scans, refused with the fix."""
    caplog.set_level("INFO", logger="advisor")
    out = tmp_path / "report.json"
    base = ["report", "--prometheus-url", with_credentials(receiver.base_url), "--since",
            "99999999h", "--run-id", "rank", "--no-predict"]  # fmt: skip
    argv = [*base, "--format", "json", "--output", str(out)]
    rc = main(argv)
    if receiver.kind == "prometheus":
        assert rc == 0, caplog.text
        report = json.loads(out.read_text())
        assert report["meta"]["queries"] < 40
        assert report["meta"]["prometheus_url"] == receiver.base_url
        assert_no_secret(out.read_text())
        for fmt in ("table", "markdown", "csv", "html"):
            capsys.readouterr()
            assert main([*base, "--format", fmt]) == 0
            assert_no_secret(capsys.readouterr().out)
    else:
        assert rc == 2
        assert "reaches back further than the advisor scans" in caplog.text
        assert not out.exists()
    assert_no_secret(caplog.text)
