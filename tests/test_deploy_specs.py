"""The YAML under deploy/ loads through azure-ai-ml's own loaders (offline), agrees with the scoring code, and the
deploy tool validates it, reporting malformed specs clearly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from deploy import tool
from model_arch.digits_cnn import INPUT_SPEC
from serving.codecs import JSON, decode
from serving.settings import Settings
from tests.helpers import REPO_ROOT, SAMPLE_REQUEST

DEPLOY = REPO_ROOT / "deploy"


@pytest.fixture(scope="module")
def specs(built_model: Path) -> tool.Specs:
    return tool.load_specs()


def test_every_spec_loads_and_the_specs_agree_with_the_code(specs: tool.Specs) -> None:
    assert tool.check(specs) == []
    assert specs.endpoint.auth_mode == "key" and specs.kubernetes_endpoint.auth_mode == "key"
    assert specs.kubernetes_deployment.scale_settings.target_utilization_percentage == 70
    assert specs.train_job.command == "python -m training.train --output-dir ./outputs"


@pytest.mark.parametrize("name", ["blue", "green", "kubernetes"])
def test_workers_concurrency_and_timeouts_agree(specs: tool.Specs, name: str) -> None:
    deployment = specs.kubernetes_deployment if name == "kubernetes" else specs.deployments[name]
    env = deployment.environment_variables
    settings = Settings.from_env(env)

    assert deployment.request_settings.max_concurrent_requests_per_instance == settings.worker_count
    assert int(env["SCORING_TIMEOUT_MS"]) <= deployment.request_settings.request_timeout_ms
    assert deployment.request_settings.request_timeout_ms > 5000  # set on purpose, above the default


def test_deployment_paths_point_at_the_repository(specs: tool.Specs, built_model: Path) -> None:
    blue = specs.deployments["blue"]

    assert (DEPLOY / blue.code_configuration.code).resolve() == REPO_ROOT
    assert Path(blue.model.path).resolve() == built_model
    assert Path(specs.model.path).resolve() == built_model
    assert blue.environment.conda_file == yaml.safe_load((REPO_ROOT / "environment" / "conda-cpu.yaml").read_text())


def test_the_code_upload_holds_what_scoring_needs_and_nothing_else() -> None:
    uploaded = tool.upload_list(REPO_ROOT)

    assert "score.py" in uploaded and "serving/inputs.py" in uploaded and "model_arch/registry.py" in uploaded
    assert "swagger3.json" in uploaded
    for excluded in ("tests/", "build/", ".venv/", ".git/", "bench/", "harness/", "deploy/", "environment/"):
        assert not any(f.startswith(excluded) for f in uploaded), excluded
    # code, the OpenAPI documents, and the demo texts the training job reads (training/texts/)
    assert all(f.endswith((".py", ".json")) or f.startswith("training/texts/") for f in uploaded)
    assert "training/texts/topics.tsv" in uploaded


@pytest.mark.parametrize("deployment", ["blue", "green"])
def test_dry_run_validates_offline_and_prints_the_resolved_specs(
    specs: tool.Specs, deployment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = tool.main(["deploy", "--deployment", deployment, "--dry-run"])

    out = capsys.readouterr().out
    assert code == 0
    assert f"# deployment {deployment}" in out and "max_concurrent_requests_per_instance: 4" in out
    assert f"deploy would act on {deployment}" in out


def test_cloud_commands_without_a_workspace_say_what_is_missing(specs: tool.Specs, monkeypatch, capsys) -> None:
    for name in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME"):
        monkeypatch.delenv(name, raising=False)

    assert tool.main(["invoke", "--subscription", "", "--resource-group", "", "--workspace", ""]) == 1
    assert "no workspace: give --subscription, --resource-group, --workspace" in capsys.readouterr().err


@pytest.fixture
def repo_copy(built_model: Path, tmp_path: Path) -> Path:
    """The deploy specs and what they point at, copied, so a test can break them."""
    root = tmp_path / "repo"
    for folder in ("deploy", "environment"):
        shutil.copytree(REPO_ROOT / folder, root / folder)
    shutil.copy(REPO_ROOT / "score.py", root / "score.py")
    shutil.copytree(built_model, root / "build" / "model")
    return root / "deploy"


def edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def set_env(name: str, value: str):
    return lambda d: d["environment_variables"].update({name: value})


MALFORMED = [
    # (id, file, change, fragments of the message)
    ("unknown-key", "blue-deployment.yml", lambda d: d.update(instance_size="big"),
     ["blue-deployment.yml does not load", "instance_size"]),
    ("traffic-over-100", "endpoint.yml", lambda d: d.update(traffic={"blue": 80, "green": 40}),
     ["endpoint.yml does not load", "Traffic rule percentages must sum to less than or equal to 100%"]),
    ("no-instance-type", "blue-deployment.yml", lambda d: d.pop("instance_type"),
     ["instance_type", "Missing data for required field"]),
    ("workers-vs-concurrency", "blue-deployment.yml", set_env("WORKER_COUNT", "8"),
     ["max_concurrent_requests_per_instance is 4 but WORKER_COUNT is 8"]),
    ("timeouts", "blue-deployment.yml", set_env("SCORING_TIMEOUT_MS", "60000"),
     ["SCORING_TIMEOUT_MS (60000) is longer than request_timeout_ms (10000)"]),
    ("body-timeout", "blue-deployment.yml", set_env("BODY_TIMEOUT_S", "30"),
     ["BODY_TIMEOUT_S (30 s) is longer than request_timeout_ms (10000)"]),
    ("blue-green-drift", "green-deployment.yml", lambda d: d.update(instance_count=3),
     ["differ in ['instance_count']"]),
    ("probe-too-short", "blue-deployment.yml", lambda d: d["readiness_probe"].update(failure_threshold=2),
     ["allows 15 s to become ready"]),
    ("unknown-deployment", "endpoint.yml", lambda d: d.update(traffic={"purple": 100}), ["traffic names ['purple']"]),
    ("collection-name", "blue-deployment.yml",
     lambda d: d["data_collector"]["collections"].update(inputs={"enabled": "True"}),
     ["data_collector.collections names ['inputs']"]),
    ("collection-off", "blue-deployment.yml", set_env("DATA_COLLECTION", "off"),
     ["but DATA_COLLECTION=off sends nothing"]),
]  # fmt: skip


@pytest.mark.parametrize(("file", "change", "fragments"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_make_validate_reports_malformed_specs_clearly(repo_copy: Path, file: str, change, fragments, capsys) -> None:
    edit(repo_copy / file, change)

    code = tool.main(["validate", "--deploy-dir", str(repo_copy)])

    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("INVALID")
    for fragment in fragments:
        assert fragment in err


def test_sample_request_is_valid_for_the_demo_model() -> None:
    batch = decode(SAMPLE_REQUEST.read_bytes(), JSON, INPUT_SPEC, max_rows=1024).batch

    assert batch.shape == (len(json.loads(SAMPLE_REQUEST.read_text())["data"]), 1, 8, 8)
