"""Imports point one way, as docs/layout.md says: ``serving`` → ``model_folder`` → ``model_arch``; ``training`` →
``model_folder``, ``model_arch``; ``batch`` → ``serving``; ``model_arch`` imports neither. Read from the source
with ``ast``, so an import added anywhere in a module (inside a function too) is seen."""

from __future__ import annotations

import ast

import pytest

from tests.helpers import REPO_ROOT

PACKAGES = ("model_arch", "model_folder", "serving", "training", "batch", "harness", "bench", "deploy", "tests")
MAY_NOT_IMPORT = {
    "model_arch": {"model_folder", "serving", "training", "batch", "harness", "bench", "deploy", "tests"},
    "model_folder": {"serving", "training", "batch", "harness", "bench", "deploy", "tests"},
    "serving": {"training", "batch", "harness", "bench", "deploy", "tests"},
    "training": {"serving", "batch", "harness", "bench", "deploy", "tests"},
    "batch": {"training", "harness", "bench", "deploy", "tests"},
}
# The local batch runner stands in for Azure's batch runtime, as harness/ stands in for the endpoint: it lays the
# model out with harness.layout. Nothing in the batch deployment imports it.
HARNESS_SIDE = {"batch/runner.py": {"harness"}}


def imported_packages(path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & set(PACKAGES)


@pytest.mark.parametrize("package", sorted(MAY_NOT_IMPORT))
def test_imports_point_one_way(package: str) -> None:
    wrong = {}
    for path in sorted((REPO_ROOT / package).rglob("*.py")):
        name = str(path.relative_to(REPO_ROOT))
        wrong[name] = sorted(imported_packages(path) & MAY_NOT_IMPORT[package] - HARNESS_SIDE.get(name, set()))

    assert not {path: names for path, names in wrong.items() if names}
