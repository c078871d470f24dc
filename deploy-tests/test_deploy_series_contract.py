"""The series contract (``base_monitoring_client.contract``) is the only place a metric name or
a ``source`` value is spelled: no other string literal in a component package equals one, and
what the synthetic generator pushes follows it."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from advisor.synthetic import Experiment, ladder
from base_monitoring_client import contract

REPO = Path(__file__).resolve().parent.parent
WATTPUSH = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["wattpush"]
PACKAGES = [REPO / c["dir"] / c["package"] for c in WATTPUSH["components"]]
CONTRACT = REPO / "base-monitoring-client" / "base_monitoring_client" / "contract.py"
SPELLED = set(contract.METRICS) | set(contract.SOURCES)
# Literals equal to a contract word that mean something else, each with its reason.
ALLOWED = {
    # the powercap control_type names (intel-rapl, amd-rapl) contain "rapl"
    ("cpu-rapl-client/cpu_rapl_client/zones.py", "rapl"),
}


def string_literals(source: Path) -> list[tuple[int, str]]:
    tree = ast.parse(source.read_text(), str(source))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_no_component_spells_a_metric_name_or_source_value_itself() -> None:
    offenders = []
    for package in PACKAGES:
        for source in sorted(package.rglob("*.py")):
            if source == CONTRACT or source.name.endswith("_pb2.py"):
                continue
            rel = str(source.relative_to(REPO))
            offenders += [
                f"{rel}:{line}: {text!r}"
                for line, text in string_literals(source)
                if text in SPELLED and (rel, text) not in ALLOWED
            ]
    assert not offenders, (
        "metric names and source values belong to base_monitoring_client.contract; import them:\n"
        + "\n".join(offenders)
    )


def test_every_source_value_has_a_kind_and_a_rank() -> None:
    ranked = sorted(contract.SOURCES, key=contract.source_rank)
    kinds = [contract.SOURCES[s] for s in ranked]
    assert kinds == sorted(kinds), "source_rank must follow SourceKind's precedence"
    assert ranked[-1] == contract.SOURCE_ESTIMATED
    assert contract.source_rank("something-new") < contract.source_rank(contract.SOURCE_ESTIMATED)
    assert contract.source_rank(contract.SOURCE_INTEGRATED_POWER) < contract.source_rank("x")
    for metric in contract.METRICS.values():
        assert set(metric.sources) <= set(contract.SOURCES), metric.name
        assert (contract.SOURCE in metric.labels) == bool(metric.sources), metric.name


def test_synthetic_data_follows_the_contract() -> None:
    exp = Experiment(start_ms=1_700_000_000_000, gpu=True, host_info={"cpu_model": "x"})
    exp.add(2, run_id="r", scenario="s", phase="baseline", repeat=0, cpu_w=10.0)
    exp.add(
        2,
        run_id="r",
        scenario="s",
        phase="transcode",
        repeat=0,
        cpu_w=30.0,
        rungs=ladder((640, 360, "1M")),
        quality={"vmaf": 90.0},
    )
    for name, labels, _, _ in exp.series():
        metric = contract.METRICS.get(name)
        assert metric is not None, f"{name} is not in the series contract"
        assert set(labels) <= set(metric.labels), f"{name}: {set(labels) - set(metric.labels)}"
        if metric.sources:
            assert labels["source"] in metric.sources, f"{name}: source {labels['source']}"
