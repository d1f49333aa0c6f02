"""The README's curl examples, run as written (only the port changes) against a real server."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from conftest import REPO_ROOT, SAMPLE_LABELS

from harness.server import InferenceServer

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
    examples = curl_examples()

    assert len(examples) == 3
    assert "deploy/sample-request.json" in examples[0][0]


def test_the_quick_start_curl_scores_the_sample_request(served: InferenceServer) -> None:
    command, _ = curl_examples()[0]

    assert run_curl(command, served)["predictions"] == SAMPLE_LABELS


def test_the_nested_rows_curl_is_answered(served: InferenceServer) -> None:
    command, _ = curl_examples()[1]

    assert run_curl(command, served)["predictions"] == [0]  # digits.images[0] is a zero


def test_the_error_curl_answers_exactly_what_the_readme_shows(served: InferenceServer) -> None:
    command, documented = curl_examples()[2]

    assert documented is not None
    assert run_curl(command, served) == json.loads(documented)
