"""The curl examples of the README and of docs/api.md, run as written (only the port changes) against a real server.

Each example is the ```bash block after a ``<!-- example: NAME -->`` line, so the README may be reordered freely.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import pytest

from harness.server import InferenceServer
from tests.helpers import REPO_ROOT, SAMPLE_LABELS

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl command"),
]
README = REPO_ROOT / "README.md"
DOCUMENTS = (README, REPO_ROOT / "docs" / "api.md")  # the API reference holds the rarer request formats' examples
EXAMPLE = re.compile(r"^<!-- example: ([\w-]+) -->\n```bash\n(.*?)```", flags=re.S | re.M)
EXAMPLE_NAMES = [
    "quick-start",
    "data-nested",
    "input-data",
    "v2",
    "npy",
    "image-raw",
    "image-multipart",
    "image-base64",
    "error",
]


@dataclass(frozen=True)
class Example:
    command: str  # the curl command, continuation lines joined
    documented: str | None  # the answer shown in a "# {...}" comment under it, if any


def readme_examples() -> dict[str, Example]:
    """Every marked example in the README and the API reference, by name."""
    examples = {}
    for name, block in EXAMPLE.findall("\n".join(path.read_text() for path in DOCUMENTS)):
        assert name not in examples, f"two README examples are marked {name!r}"
        lines = block.replace("\\\n", " ").splitlines()
        commands = [line for line in lines if line.startswith("curl ")]
        assert len(commands) == 1, f"the README example {name!r} should hold one curl command: {lines}"
        comments = [line[2:] for line in lines if line.startswith("# {")]
        examples[name] = Example(commands[0], comments[0] if comments else None)
    return examples


def example(name: str) -> Example:
    examples = readme_examples()
    assert name in examples, f"the README has no example marked <!-- example: {name} -->; found {sorted(examples)}"
    return examples[name]


def run_curl(command: str, server: InferenceServer) -> dict:
    command = command.replace("127.0.0.1:5001", f"127.0.0.1:{server.port}")
    result = subprocess.run(command, shell=True, cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_readme_marks_every_example_this_file_checks() -> None:
    examples = readme_examples()

    assert sorted(examples) == sorted(EXAMPLE_NAMES)
    assert "deploy/sample-request.json" in examples["quick-start"].command
    assert '"data"' in examples["data-nested"].command
    assert '"input_data"' in examples["input-data"].command
    assert '"inputs"' in examples["v2"].command
    assert "application/x-npy" in examples["npy"].command
    assert "image/png" in examples["image-raw"].command and "-F file=@" in examples["image-multipart"].command


@pytest.mark.parametrize(
    ("name", "predictions"),
    [("quick-start", SAMPLE_LABELS), ("data-nested", [0]), ("input-data", [0]), ("npy", SAMPLE_LABELS)],
)
def test_each_format_example_is_answered_with_its_predictions(
    served: InferenceServer, name: str, predictions: list[int]
) -> None:
    answer = run_curl(example(name).command, served)

    assert answer["predictions"] == predictions  # digits.images[0], in the data-nested and input-data rows, is a zero


def test_the_v2_example_is_answered_in_v2_shape(served: InferenceServer) -> None:
    answer = run_curl(example("v2").command, served)

    assert (answer["id"], answer["model_name"], answer["model_version"]) == ("req-1", "digits-cnn", "1")
    predictions = next(o for o in answer["outputs"] if o["name"] == "predictions")
    assert predictions["data"] == [0]


def test_the_error_example_answers_exactly_what_the_readme_shows(served: InferenceServer) -> None:
    error = example("error")

    assert error.documented is not None
    assert run_curl(error.command, served) == json.loads(error.documented)


def test_the_npy_sample_holds_the_json_sample() -> None:
    rows = json.loads((REPO_ROOT / "deploy" / "sample-request.json").read_text())["data"]

    assert np.array_equal(np.load(REPO_ROOT / "deploy" / "sample-request.npy"), np.asarray(rows, dtype=np.float32))


@pytest.mark.parametrize("name", ["image-raw", "image-base64"])
def test_each_image_example_is_answered_with_the_digit_in_the_picture(served: InferenceServer, name: str) -> None:
    answer = run_curl(example(name).command, served)

    assert answer["predictions"] == [3]  # deploy/sample-digit.png is a 3


def test_the_multipart_example_answers_the_three_most_probable_digits(served: InferenceServer) -> None:
    [ranked] = run_curl(example("image-multipart").command, served)["predictions"]

    assert len(ranked) == 3 and ranked[0]["label"] == 3
    assert ranked[0]["score"] >= ranked[1]["score"] >= ranked[2]["score"]
