"""make new-model, followed as a user would: scaffold a model in a copy of the repository, run the test it wrote
(which serves the new model through the unchanged score.py), and lint what it wrote."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT
from training import scaffold

pytestmark = pytest.mark.slow


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for folder in ("model_arch", "model_folder", "training", "serving", "harness"):
        shutil.copytree(REPO_ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "tests").mkdir()
    for name in ("__init__.py", "conftest.py", "helpers.py"):
        shutil.copy(REPO_ROOT / "tests" / name, root / "tests" / name)
    for name in ("score.py", "pyproject.toml", "swagger2.json", "swagger3.json", "swagger3.1.json"):
        shutil.copy(REPO_ROOT / name, root / name)
    return root


def run_tests(repo: Path, *names: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *(f"tests/test_{n}.py" for n in names)]
    return subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=300)


def test_a_scaffolded_model_is_served_and_its_test_follows_edits_to_the_specs(repo_copy: Path) -> None:
    written = scaffold.scaffold("tiny_net", repo_copy)
    scaffold.scaffold("tiny_file", repo_copy, spec_only=True)
    module = repo_copy / "model_arch" / "tiny_net.py"
    # The user turns the regression into a classifier: one line in the specs, nothing in the generated test.
    text = module.read_text()
    regression = 'OUTPUT_SPEC = OutputSpec(kind="regression", names=("target",))'
    assert regression in text
    module.write_text(text.replace(regression, 'OUTPUT_SPEC = OutputSpec(kind="classification", labels=("no", "yes"))'))

    assert [p.name for p in written] == ["tiny_net.py", "test_tiny_net.py", "registry.py"]
    registry = " ".join((repo_copy / "model_arch" / "registry.py").read_text().split())  # one line, or wrapped
    assert "tiny_file, tiny_net" in registry and re.search(r"tiny_net, tiny_file,? \)", registry)
    tests = run_tests(repo_copy, "tiny_net", "tiny_file")
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert "3 passed" in tests.stdout
    ruff = Path(sys.executable).with_name("ruff")
    lint = subprocess.run([str(ruff), "check", "model_arch", "tests"], cwd=repo_copy, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout
    formatted = subprocess.run(
        [str(ruff), "format", "--check", "model_arch", "tests"], cwd=repo_copy, capture_output=True, text=True
    )
    assert formatted.returncode == 0, formatted.stdout


def test_scaffold_refuses_bad_names_and_existing_files(repo_copy: Path) -> None:
    with pytest.raises(ValueError, match="snake_case"):
        scaffold.scaffold("TinyNet", repo_copy)
    with pytest.raises(ValueError, match="already exist"):
        scaffold.scaffold("digits_cnn", repo_copy)
