"""The batch endpoint's YAML (deploy/batch/) loads through azure-ai-ml's own loaders offline, agrees with
batch_score.py and its cluster, and a spec that breaks a rule is reported with the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from batch.runner import defaults_from_spec
from deploy import batch_specs
from tests.helpers import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"


def test_the_batch_specs_load_and_agree(built_model: Path) -> None:
    specs = batch_specs.load(DEPLOY)

    assert batch_specs.check(specs, DEPLOY) == []
    assert type(specs.deployment).__name__ == "ModelBatchDeployment"
    assert specs.deployment.settings.output_action == "append_row"


def test_the_local_runner_takes_its_defaults_from_the_deployment_spec() -> None:
    spec = yaml.safe_load((DEPLOY / "batch" / "deployment.yml").read_text())["settings"]

    defaults = defaults_from_spec()

    assert defaults["mini_batch_size"] == spec["mini_batch_size"]
    assert defaults["timeout_s"] == spec["retry_settings"]["timeout"]
    assert defaults["error_threshold"] == spec["error_threshold"]
    assert "TORCH_NUM_THREADS" not in defaults["env"]  # the local machine's cores decide that


BROKEN = [
    (["settings", "max_concurrency_per_instance"], 8, "WORKER_COUNT is 4 but max_concurrency_per_instance is 8"),
    (["settings", "environment_variables", "TORCH_NUM_THREADS"], "2", "8 threads on 4 vCPUs"),
    (["settings", "error_threshold"], -1, "error_threshold is -1"),
    (["settings", "retry_settings", "timeout"], 30, "retry_settings.timeout is 30 s"),
    (["settings", "output_file_name"], "predictions.csv", "name it *.jsonl"),
    (["resources", "instance_count"], 9, "at most 4 nodes"),
    (["compute"], "azureml:other-cluster", "the cluster spec is azureml:batch-cluster"),
    (["code_configuration", "scoring_script"], "score.py", "is not batch_score.py"),
    (["environment", "conda_file"], str(REPO_ROOT / "environment" / "conda-cpu.yaml"), "lacks azureml-core"),
]


@pytest.mark.parametrize(("keys", "value", "fragment"), BROKEN, ids=[".".join(k) for k, _, _ in BROKEN])
def test_a_broken_batch_spec_is_reported(
    built_model: Path, tmp_path: Path, keys: list[str], value: object, fragment: str
) -> None:
    deploy_dir = tmp_path / "deploy"
    shutil.copytree(DEPLOY / "batch", deploy_dir / "batch")
    path = deploy_dir / "batch" / "deployment.yml"
    document = yaml.safe_load(path.read_text())
    for key in ("model", "code_configuration", "environment"):  # relative paths: point them back at the repository
        _rebase(document, key)
    target = document
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    path.write_text(yaml.safe_dump(document))

    problems = batch_specs.check(batch_specs.load(deploy_dir), deploy_dir)

    assert any(fragment in problem for problem in problems), problems


def _rebase(document: dict, key: str) -> None:
    section = document[key]
    for field in ("path", "code", "conda_file"):
        if isinstance(section, dict) and isinstance(section.get(field), str) and section[field].startswith("../"):
            section[field] = str((DEPLOY / "batch" / section[field]).resolve())


def test_batch_invoke_dry_run_loads_checks_and_prints_offline(
    built_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from deploy import tool

    assert tool.main(["batch-invoke", "--input", str(tmp_path), "--dry-run"]) == 0

    printed = capsys.readouterr().out
    assert f'"type": "uri_folder", "path": "{tmp_path}"' in printed
    assert "batch-invoke would act on batch endpoint digits-cnn-batch, deployment digits-cnn-batch-cpu" in printed
    assert tool.main(["batch-invoke", "--input", str(tmp_path / "missing"), "--dry-run"]) == 1
