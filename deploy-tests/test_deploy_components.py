"""The one list of components, ``[tool.wattpush] components`` in pyproject.toml, against the
sections that cannot read it (hatch's dev-mode-dirs and wheel packages, pytest's testpaths, the
console scripts), and the test layout that goes with it: a tests folder holds only test modules
and its conftest, every helper is imported from the test-support package (wattpush_testing),
which stays out of the wheel and out of the component packages."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
PYPROJECT: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text())
WATTPUSH = PYPROJECT["tool"]["wattpush"]
COMPONENTS: list[tuple[str, str]] = [(c["dir"], c["package"]) for c in WATTPUSH["components"]]
TEST_SUPPORT = Path(WATTPUSH["test-support"])
TESTPATHS: list[str] = PYPROJECT["tool"]["pytest"]["ini_options"]["testpaths"]
# sys.path edits (insert, append, extend, slice or plain assignment) and site.addsitedir.
SYS_PATH_EDIT = re.compile(
    r"\bsys\.path\s*(\.\s*(insert|append|extend)\b|\[[^\]]*\]\s*=|\+=|=(?!=))|\baddsitedir\("
)


def disagree(section: str, found: object, expected: object) -> str:
    return (
        f"pyproject.toml {section} disagrees with the component list [tool.wattpush] components"
        f"\n  found:    {found!r}\n  expected: {expected!r}\n"
        "Change both (the list is the source; this section cannot refer to it)."
    )


def test_component_list_names_existing_components() -> None:
    assert COMPONENTS, "[tool.wattpush] components is empty"
    for directory, package in COMPONENTS:
        root = REPO / directory
        assert (root / package / "__init__.py").is_file(), f"{directory}/{package}: no package"
        assert (root / "tests").is_dir(), f"{directory}/tests is missing"
        assert (root / "Dockerfile").is_file(), f"{directory}/Dockerfile is missing"
    assert len({d for d, _ in COMPONENTS}) == len(COMPONENTS), "a component is listed twice"


def test_hatch_dev_mode_dirs_are_the_component_dirs_and_test_support() -> None:
    found = PYPROJECT["tool"]["hatch"]["build"]["dev-mode-dirs"]
    expected = [d for d, _ in COMPONENTS] + [str(TEST_SUPPORT.parent)]
    assert found == expected, disagree("[tool.hatch.build] dev-mode-dirs", found, expected)


def test_wheel_packages_are_the_component_packages() -> None:
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
    found = wheel["packages"]
    expected = [f"{d}/{p}" for d, p in COMPONENTS]
    assert found == expected, disagree("[tool.hatch.build.targets.wheel] packages", found, expected)
    for source in wheel.get("force-include", {}):
        assert not Path(source).is_relative_to(TEST_SUPPORT), (
            f"[tool.hatch.build.targets.wheel.force-include] puts {source} in the wheel; "
            f"test support ({TEST_SUPPORT}) must stay out of it"
        )


def test_pytest_testpaths_hold_each_components_tests() -> None:
    found = [p for p in TESTPATHS if Path(p).name == "tests"]
    expected = [f"{d}/tests" for d, _ in COMPONENTS]
    assert found == expected, disagree("[tool.pytest.ini_options] testpaths", found, expected)
    for path in TESTPATHS:
        assert (REPO / path).is_dir(), f"[tool.pytest.ini_options] testpaths: no folder {path}"


def test_console_scripts_are_the_components_clis() -> None:
    found = PYPROJECT["project"]["scripts"]
    expected = {d: f"{p}.cli:main" for d, p in COMPONENTS}
    assert found == expected, disagree("[project.scripts]", found, expected)


@pytest.mark.parametrize("path", TESTPATHS)
def test_tests_folders_hold_only_tests(path: str) -> None:
    """Six folders are called ``tests``: as packages (``__init__.py``) each would be the
    top-level package ``tests`` and pytest would import every conftest as ``tests.conftest``.
    They are plain folders, so a helper module beside the tests has no package path."""
    folder = REPO / path
    for init in folder.rglob("__init__.py"):
        pytest.fail(f"{init.relative_to(REPO)}: test folders are not packages; remove it")
    for module in folder.rglob("*.py"):
        if module.name != "conftest.py" and not module.name.startswith("test_"):
            pytest.fail(
                f"{module.relative_to(REPO)} is not a test module: move it into the test-support"
                f" package ({TEST_SUPPORT}/) and import it from there"
            )


def test_no_sys_path_edits_in_tests_test_support_or_bench() -> None:
    folders = [REPO / p for p in TESTPATHS] + [REPO / TEST_SUPPORT, REPO / "bench"]
    offenders = [
        f"{f.relative_to(REPO)}:{n}: {line.strip()}"
        for folder in folders
        for f in sorted(folder.rglob("*.py"))
        for n, line in enumerate(f.read_text().splitlines(), 1)
        if SYS_PATH_EDIT.search(line)
    ]
    assert not offenders, (
        "sys.path is edited; import components and wattpush_testing from the editable install "
        "(`make venv`) instead:\n" + "\n".join(offenders)
    )


def imported_modules(source: Path) -> set[str]:
    tree = ast.parse(source.read_text(), str(source))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("component", [f"{d}/{p}" for d, p in COMPONENTS])
def test_component_packages_never_import_test_support(component: str) -> None:
    support = TEST_SUPPORT.name
    for source in sorted((REPO / component).rglob("*.py")):
        for name in imported_modules(source):
            assert name.split(".")[0] != support, (
                f"{source.relative_to(REPO)} imports {name}: {support} is not in the wheel"
            )


def test_no_import_arrow_runs_from_the_framework_to_another_component() -> None:
    """base-monitoring-client is the bottom layer: nothing under its folder imports a wing, and
    the test support (which imports the wings) lives outside it."""
    framework_dir, _ = COMPONENTS[0]
    wings = {p for d, p in COMPONENTS if d != framework_dir}
    arrows = [
        f"{source.relative_to(REPO)} imports {name}"
        for source in sorted((REPO / framework_dir).rglob("*.py"))
        for name in imported_modules(source)
        if name.split(".")[0] in wings
    ]
    assert not arrows, "imports from the framework's folder up into the wings:\n" + "\n".join(
        arrows
    )
    assert not TEST_SUPPORT.is_relative_to(framework_dir), (
        f"the test support ({TEST_SUPPORT}) sits under the framework but imports the wings"
    )
