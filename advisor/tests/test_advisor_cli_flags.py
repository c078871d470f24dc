"""Errors name settings as the Python API does; the command line says them as its flags."""

from __future__ import annotations

import argparse

import pytest
from advisor.cli import FLAGS, build_parser, flag_message
from advisor.errors import AdvisorConfigError
from advisor.recommender import TranscodingRecommender


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    found: set[str] = set()
    for action in parser._actions:  # argparse keeps its options only here
        found.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _option_strings(sub)
    return found


def test_every_setting_maps_to_a_flag_the_cli_has() -> None:
    flags = _option_strings(build_parser())
    assert {flag for flag in FLAGS.values() if flag not in flags} == set()


@pytest.mark.parametrize(
    ("kwargs", "api", "cli"),
    [
        ({"rank_by": "bogus"}, "rank_by 'bogus' is not a score", "--rank-by 'bogus' is not"),
        ({"max_edge_gap_s": -1.0}, "max_edge_gap_s -1.0: give seconds", "--max-edge-gap -1.0:"),
        ({"query_mode": "x"}, "query_mode 'x': use raw or range", "--query-mode 'x': use raw"),
        ({"energy_basis": "x"}, "energy_basis 'x': choose one of", "--energy-basis 'x': choose"),
    ],
)
def test_the_api_names_the_parameter_and_the_cli_the_flag(
    kwargs: dict[str, object], api: str, cli: str
) -> None:
    with pytest.raises(AdvisorConfigError) as exc:
        TranscodingRecommender("http://127.0.0.1:9", **kwargs)  # type: ignore[arg-type]
    assert str(exc.value).startswith(api) and exc.value.settings
    assert flag_message(exc.value).startswith(cli)


def test_a_word_that_only_contains_a_setting_is_left_alone() -> None:
    err = AdvisorConfigError(
        "pass results or since_s; the results_dir and instances stay", settings=("results",)
    )
    assert flag_message(err) == "pass --results or since_s; the results_dir and instances stay"
