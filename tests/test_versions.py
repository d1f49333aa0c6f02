"""Pinned versions agree everywhere they appear: pyproject.toml, environment/ and what runs the tests."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version

import pytest
import yaml

from tests.helpers import REPO_ROOT

PIN = re.compile(r"^([A-Za-z0-9_.-]+(?:\[[a-z,]+\])?)==([^\s;]+)$")  # a name, perhaps with extras


def pins(requirements: list[str]) -> dict[str, str]:
    found = {}
    for line in requirements:
        match = PIN.match(line.strip())
        assert match, f"{line!r} is not pinned exactly (name==version)"
        found[match.group(1).lower()] = match.group(2)
    return found


def project() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def conda_pip_pins(name: str) -> dict[str, str]:
    conda = yaml.safe_load((REPO_ROOT / "environment" / name).read_text())
    pip_lists = [d["pip"] for d in conda["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, f"{name} should have exactly one pip: section"
    return pins([line for line in pip_lists[0] if not line.startswith("--")])  # index options are not pins


def dockerfile_pins() -> dict[str, str]:
    text = (REPO_ROOT / "environment" / "Dockerfile").read_text()
    return pins(re.findall(r"\b[A-Za-z0-9_.-]+==[^\s\\]+", text))


@pytest.mark.parametrize("name", ["conda-cpu.yaml", "conda-gpu.yaml"])
def test_serving_environments_pin_exactly_what_pyproject_pins(name: str) -> None:
    assert conda_pip_pins(name) == pins(project()["dependencies"])


def test_the_dockerfile_pins_exactly_what_pyproject_pins() -> None:
    assert dockerfile_pins() == pins(project()["dependencies"])


def test_the_training_environment_adds_only_the_train_extra() -> None:
    serving = {k: v for k, v in pins(project()["dependencies"]).items() if k != "azureml-inference-server-http"}
    train = pins(project()["optional-dependencies"]["train"])

    assert conda_pip_pins("conda-train.yaml") == {**serving, **train}


def test_torch_is_pinned_to_2_13_0() -> None:
    assert pins(project()["dependencies"])["torch"] == "2.13.0"


def test_installed_versions_match_every_pin() -> None:
    wanted = pins(project()["dependencies"])
    for extra in project()["optional-dependencies"].values():
        wanted.update(pins(extra))

    installed = {name: version(name).split("+")[0] for name in wanted}  # 2.13.0+cpu is the 2.13.0 CPU build

    assert installed == wanted


def test_extras_agree_with_each_other() -> None:
    extras = project()["optional-dependencies"]
    dev, train = pins(extras["dev"]), pins(extras["train"])

    assert {name: dev[name] for name in train} == train


# What the batch runtime needs in the image besides the template (docs/batch.md), and the one pin it forces down:
# azureml-dataset-runtime 1.62 requires numpy below 2.3.3.
BATCH_RUNTIME = {"azureml-core": "1.61.0.post4", "azureml-dataset-runtime[fuse]": "1.62.0.post1"}
BATCH_NUMPY = "2.3.2"
ONLINE_ONLY = ("azureml-inference-server-http", "azureml-ai-monitoring")  # the server, and its data collection


def test_the_batch_environment_is_serving_plus_the_batch_extra_and_the_runtime() -> None:
    serving = {k: v for k, v in pins(project()["dependencies"]).items() if k not in ONLINE_ONLY}
    batch = pins(project()["optional-dependencies"]["batch"])

    assert conda_pip_pins("conda-batch.yaml") == {**serving, "numpy": BATCH_NUMPY, **batch, **BATCH_RUNTIME}
