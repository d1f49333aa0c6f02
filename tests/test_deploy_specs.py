"""The YAML under deploy/ loads through azure-ai-ml's own loaders (offline) and agrees with the scoring code."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from azure.ai.ml import load_model, load_online_deployment, load_online_endpoint
from conftest import REPO_ROOT, SAMPLE_REQUEST

from model_arch.digits_cnn import INPUT_SPEC
from serving.protocols import JSON, decode
from serving.settings import Settings

DEPLOY = REPO_ROOT / "deploy"


@pytest.fixture(scope="module")
def built_model(trained_folder: Path) -> Path:
    """build/model, which the specs register; made as `make model` makes it when it is not there yet."""
    folder = REPO_ROOT / "build" / "model"
    if not (folder / "manifest.json").is_file():
        shutil.copytree(trained_folder, folder, dirs_exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def deployment(built_model: Path):
    return load_online_deployment(DEPLOY / "deployment.yml")


def test_endpoint_uses_key_auth_and_matches_the_deployment(deployment) -> None:
    endpoint = load_online_endpoint(DEPLOY / "endpoint.yml")

    assert endpoint.auth_mode == "key"
    assert deployment.endpoint_name == endpoint.name


def test_deployment_code_and_environment_paths_exist(deployment) -> None:
    code = (DEPLOY / deployment.code_configuration.code).resolve()

    assert code == REPO_ROOT
    assert (code / deployment.code_configuration.scoring_script).is_file()
    conda = yaml.safe_load((REPO_ROOT / "environment" / "conda.yaml").read_text())
    assert deployment.environment.conda_file == conda  # the loader read environment/conda.yaml


def test_deployment_and_model_spec_register_the_folder_training_writes(deployment, built_model: Path) -> None:
    model = load_model(DEPLOY / "model.yml")

    assert Path(model.path).resolve() == built_model
    assert (DEPLOY / deployment.model.path).resolve() == built_model


def test_deployment_concurrency_and_timeouts_agree_with_the_workers(deployment) -> None:
    env = deployment.environment_variables
    settings = Settings.from_env(env)
    requests = deployment.request_settings

    assert requests.max_concurrent_requests_per_instance == settings.worker_count
    assert int(env["SCORING_TIMEOUT_MS"]) <= requests.request_timeout_ms


def test_sample_request_is_valid_for_the_demo_model() -> None:
    batch = decode(SAMPLE_REQUEST.read_bytes(), JSON, INPUT_SPEC, max_rows=1024).batch

    assert batch.shape == (len(json.loads(SAMPLE_REQUEST.read_text())["data"]), 1, 8, 8)


def test_amlignore_keeps_tests_builds_and_venvs_out_of_the_upload() -> None:
    ignored = {line.strip() for line in (REPO_ROOT / ".amlignore").read_text().splitlines()}

    assert {".venv/", "build/", "tests/", ".git/"} <= ignored
