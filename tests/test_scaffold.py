"""make new-model, followed as a user would: scaffold a model in a copy of the repository, run the test it wrote
(which serves the new model through the unchanged score.py), and lint what it wrote."""

from __future__ import annotations

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


def test_a_scaffolded_model_is_registered_served_and_lint_clean(repo_copy: Path) -> None:
    written = scaffold.scaffold("tiny_net", repo_copy)

    assert [p.name for p in written] == ["tiny_net.py", "test_tiny_net.py", "registry.py"]
    registry = (repo_copy / "model_arch" / "registry.py").read_text()
    assert "from model_arch import digits_cnn, linnerud_mlp, tiny_net" in registry
    assert "MODULES = (digits_cnn, linnerud_mlp, tiny_net)" in registry
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_tiny_net.py"],
        cwd=repo_copy, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert "2 passed" in tests.stdout
    ruff = Path(sys.executable).with_name("ruff")
    lint = subprocess.run([str(ruff), "check", "model_arch", "tests"], cwd=repo_copy, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout


def test_scaffold_refuses_bad_names_and_existing_files(repo_copy: Path) -> None:
    with pytest.raises(ValueError, match="snake_case"):
        scaffold.scaffold("TinyNet", repo_copy)
    with pytest.raises(ValueError, match="already exist"):
        scaffold.scaffold("digits_cnn", repo_copy)
