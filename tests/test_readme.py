"""The README's curl examples, run as written (only the port changes) against a real server."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from harness.server import InferenceServer
from tests.helpers import REPO_ROOT, SAMPLE_LABELS

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl command"),
]
README = REPO_ROOT / "README.md"


def curl_examples() -> list[tuple[str, str | None]]:
    """(command, documented output or None) for every curl command in the README's bash blocks."""
    examples = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S):
        lines = block.replace("\\\n", " ").splitlines()
        for i, line in enumerate(lines):
            if line.startswith("curl "):
                following = lines[i + 1] if i + 1 < len(lines) else ""
                examples.append((line, following[2:] if following.startswith("# {") else None))
    return examples


def run_curl(command: str, server: InferenceServer) -> dict:
    command = command.replace("127.0.0.1:5001", f"127.0.0.1:{server.port}")
    result = subprocess.run(command, shell=True, cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_readme_has_the_examples_this_file_checks() -> None:
    commands = [command for command, _ in curl_examples()]

    assert len(commands) == 6
    assert "deploy/sample-request.json" in commands[0]
    assert '"input_data"' in commands[2] and '"inputs"' in commands[3] and "application/x-npy" in commands[4]


@pytest.mark.parametrize(
    ("index", "predictions"),
    [(0, SAMPLE_LABELS), (1, [0]), (2, [0]), (4, SAMPLE_LABELS)],
    ids=["quick-start", "data-nested", "input-data", "npy"],
)
def test_each_format_example_is_answered(served: InferenceServer, index: int, predictions: list[int]) -> None:
    command, _ = curl_examples()[index]

    assert run_curl(command, served)["predictions"] == predictions  # digits.images[0] is a zero


def test_the_v2_example_is_answered_in_v2_shape(served: InferenceServer) -> None:
    command, _ = curl_examples()[3]

    answer = run_curl(command, served)

    assert (answer["id"], answer["model_name"], answer["model_version"]) == ("req-1", "digits-cnn", "1")
    predictions = next(o for o in answer["outputs"] if o["name"] == "predictions")
    assert predictions["data"] == [0]


def test_the_error_curl_answers_exactly_what_the_readme_shows(served: InferenceServer) -> None:
    command, documented = curl_examples()[5]

    assert documented is not None
    assert run_curl(command, served) == json.loads(documented)


def test_the_npy_sample_holds_the_json_sample() -> None:
    rows = json.loads((REPO_ROOT / "deploy" / "sample-request.json").read_text())["data"]

    assert np.array_equal(np.load(REPO_ROOT / "deploy" / "sample-request.npy"), np.asarray(rows, dtype=np.float32))
