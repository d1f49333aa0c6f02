"""The batch endpoint's specs (``deploy/batch/``): load them with azure-ai-ml's own loaders, check that they agree with
each other and with ``batch_score.py``, create them in Azure and invoke a job.

``python -m deploy.tool validate`` (``make validate``) runs ``check`` beside the online checks; ``batch-deploy`` and
``batch-invoke`` (``make batch-deploy``, ``make batch-invoke INPUT=...``) act in Azure, or with ``--dry-run`` only
load, check and print, offline and without credentials. Nothing here restates the YAML: it is read, never rewritten.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

BATCH_DIR = "batch"
SCRIPT = "batch_score.py"
CONDA_FILE = "conda-batch.yaml"
UPLOAD_NEEDS = (SCRIPT, "batch/", "serving/", "model_folder/", "model_arch/")
MIN_TIMEOUT_S = 60  # a mini-batch attempt must have room for reading and scoring its files (the default is 30)
# vCPUs of the cluster sizes the checks know; another size: add it here, so concurrency × threads can be checked.
VM_CORES = {
    "Standard_DS2_v2": 2,
    "Standard_DS3_v2": 4,
    "Standard_DS4_v2": 8,
    "Standard_DS5_v2": 16,
    "Standard_D2s_v3": 2,
    "Standard_D4s_v3": 4,
    "Standard_D8s_v3": 8,
    "Standard_D16s_v3": 16,
    "Standard_D4ds_v5": 4,
    "Standard_D8ds_v5": 8,
    "Standard_F4s_v2": 4,
    "Standard_F8s_v2": 8,
    "Standard_F16s_v2": 16,
    "Standard_E4s_v3": 4,
    "Standard_E8s_v3": 8,
    "Standard_NC4as_T4_v3": 4,
    "Standard_NC8as_T4_v3": 8,
    "Standard_NC6s_v3": 6,
}


@dataclass
class BatchSpecs:
    endpoint: Any
    deployment: Any
    cluster: Any


def load(deploy_dir: Path) -> BatchSpecs:
    """The three batch specs through azure-ai-ml's loaders (``load_model_batch_deployment``, what the CLI uses for
    ``type: model``; the SDK does not export it at the top level).

    Raises:
        SpecError: naming the file that did not load and the loader's reason.
    """
    from azure.ai.ml import load_batch_endpoint, load_compute
    from azure.ai.ml.entities._load_functions import load_model_batch_deployment

    from deploy.tool import load_one

    folder = deploy_dir / BATCH_DIR
    return BatchSpecs(
        endpoint=load_one(load_batch_endpoint, folder / "endpoint.yml"),
        deployment=load_one(load_model_batch_deployment, folder / "deployment.yml"),
        cluster=load_one(load_compute, folder / "cluster.yml"),
    )


def check(specs: BatchSpecs, deploy_dir: Path) -> list[str]:
    """Every way the batch specs disagree with each other or with the batch scoring script, as sentences."""
    from batch.scoring import BatchSettings
    from serving.settings import Settings, SettingsError

    problems = []
    endpoint, deployment, cluster = specs.endpoint, specs.deployment, specs.cluster
    settings = deployment.settings
    if deployment.endpoint_name != endpoint.name:
        problems.append(f"endpoint_name is {deployment.endpoint_name!r}, but the endpoint spec is {endpoint.name!r}")
    default = (endpoint.defaults or {}).get("deploymentName") or (endpoint.defaults or {}).get("deployment_name")
    if default != deployment.name:
        problems.append(
            f"the endpoint's defaults.deployment_name is {default!r}; set it to {deployment.name!r}, the deployment "
            "an invoke without a deployment name runs"
        )
    if getattr(deployment, "type", None) != "model":
        problems.append("type is not 'model'; without it `settings` is not enforced")
    if str(deployment.compute).removeprefix("azureml:") != cluster.name:
        problems.append(f"compute is {deployment.compute!r}; the cluster spec is azureml:{cluster.name}")
    instances = _instance_count(deployment)
    if instances is None or instances < 1:
        problems.append("resources.instance_count is not set; the nodes per job must be chosen")
    elif cluster.max_instances is not None and instances > cluster.max_instances:
        problems.append(
            f"resources.instance_count is {instances} but the cluster has at most {cluster.max_instances} nodes"
        )
    env = dict(settings.environment_variables or {})
    concurrency = settings.max_concurrency_per_instance or 1
    try:
        serving = Settings.from_env(env)
        BatchSettings.from_env(env)
    except SettingsError as err:
        problems.append(f"settings.environment_variables: {err}")
        serving = None
    if "TORCH_NUM_THREADS" not in env:
        problems.append(
            "settings.environment_variables.TORCH_NUM_THREADS is not set; each of the max_concurrency_per_instance "
            "processes would take torch's default, every core, and they would fight over them"
        )
    if serving is not None and serving.worker_count != concurrency:
        problems.append(
            f"WORKER_COUNT is {serving.worker_count} but max_concurrency_per_instance is {concurrency}; make them "
            "equal (the worker count is what the scoring code shares the cores by)"
        )
    cores = VM_CORES.get(cluster.size)
    if cores is None:
        problems.append(f"cluster size {cluster.size!r} is not in deploy/batch_specs.py VM_CORES; add its vCPUs")
    elif serving is not None and serving.threads and concurrency * serving.threads > cores:
        problems.append(
            f"max_concurrency_per_instance {concurrency} × TORCH_NUM_THREADS {serving.threads} is "
            f"{concurrency * serving.threads} threads on {cores} vCPUs ({cluster.size}); keep it at most {cores}"
        )
    if settings.output_action not in ("append_row", "AppendRow"):
        problems.append(f"output_action is {settings.output_action!r}; batch_score.py returns rows for append_row")
    if not str(settings.output_file_name or "").endswith(".jsonl"):
        problems.append(
            f"output_file_name is {settings.output_file_name!r}; name it *.jsonl, as its lines are (batch/output.py)"
        )
    retry = settings.retry_settings
    if retry is None or retry.timeout is None or retry.max_retries is None:
        problems.append("retry_settings.max_retries and timeout are not both set; the defaults are 3 and 30 s")
    elif retry.timeout < MIN_TIMEOUT_S:
        problems.append(
            f"retry_settings.timeout is {retry.timeout} s for {settings.mini_batch_size} files per mini-batch; give it "
            f"at least {MIN_TIMEOUT_S} (each attempt must read and score all of them)"
        )
    if settings.error_threshold is None or settings.error_threshold == -1:
        problems.append(
            "error_threshold is -1 (the default): a job whose mini-batches keep failing still ends 'Completed' with "
            "predictions missing; set how many failed files stop it"
        )
    if not settings.mini_batch_size or settings.mini_batch_size < 1:
        problems.append("mini_batch_size is not set; choose the files per run() call")
    code = deployment.code_configuration
    spec_dir = deploy_dir / BATCH_DIR
    if code is None or code.scoring_script != SCRIPT:
        problems.append(f"code_configuration.scoring_script is not {SCRIPT}")
    elif not (spec_dir / code.code / code.scoring_script).resolve().is_file():
        problems.append(f"code_configuration: {code.scoring_script} is not in {code.code}")
    environment = deployment.environment
    conda = getattr(environment, "conda_file", None)
    needs = ("azureml-core", "azureml-dataset-runtime")
    if not isinstance(conda, dict) or not all(any(need in str(dep) for dep in _pip(conda)) for need in needs):
        problems.append(f"environment.conda_file lacks {' or '.join(needs)}; use environment/{CONDA_FILE}")
    if code is not None:
        from deploy.tool import _has

        uploaded = _upload_list((spec_dir / code.code).resolve())
        problems += [
            f"the code upload lacks {need} (check .amlignore)" for need in UPLOAD_NEEDS if not _has(uploaded, need)
        ]
    model_path = getattr(deployment.model, "path", None)
    if model_path and not (Path(model_path) / "manifest.json").is_file():
        problems.append(f"model.path {model_path} holds no model folder yet; run `make model` first")
    return problems


@functools.cache  # listing the upload walks the repository (seconds); the same folder gives the same list in a run
def _upload_list(code_dir: Path) -> list[str]:
    from deploy.tool import upload_list

    return upload_list(code_dir)


def _instance_count(deployment: Any) -> int | None:
    resources = deployment.resources
    if isinstance(resources, dict):
        return resources.get("instance_count")
    return getattr(resources, "instance_count", None)


def _pip(conda: dict[str, Any]) -> list[str]:
    return [line for dep in conda.get("dependencies", []) if isinstance(dep, dict) for line in dep.get("pip", [])]


def resolved_yaml(specs: BatchSpecs) -> str:
    """The batch specs as the SDK will send them."""
    from deploy.tool import _plain

    documents = {"batch cluster": specs.cluster, "batch endpoint": specs.endpoint, "batch deployment": specs.deployment}
    return "---\n".join(
        f"# {title}\n" + yaml.safe_dump(_plain(entity), sort_keys=False) for title, entity in documents.items()
    )


def input_of(path: str) -> Any:
    """The job input for ``path``: a local folder or file (uploaded by the SDK), or a URI (``azureml://``, ``https://``).

    Raises:
        SpecError: a local path that does not exist.
    """
    from azure.ai.ml import Input
    from azure.ai.ml.constants import AssetTypes

    from deploy.tool import SpecError

    remote = "://" in path or path.startswith("azureml:")
    if not remote and not Path(path).exists():
        raise SpecError(f"INPUT {path} does not exist; give a folder of files, one file, or an azureml:// URI")
    is_file = Path(path).is_file() if not remote else bool(Path(path.rstrip("/")).suffix)
    return Input(type=AssetTypes.URI_FILE if is_file else AssetTypes.URI_FOLDER, path=path)


def deploy(client: Any, specs: BatchSpecs, deploy_dir: Path) -> None:
    """Create the cluster if it is missing, register the model (``deploy/model.yml``, the online endpoint's), then
    create or update the batch endpoint and its deployment."""
    from azure.ai.ml import load_model
    from azure.core.exceptions import ResourceNotFoundError

    from deploy.tool import wait

    try:
        client.compute.get(specs.cluster.name)
        print(f"cluster {specs.cluster.name} exists")
    except ResourceNotFoundError:
        wait(client.compute.begin_create_or_update(specs.cluster), f"cluster {specs.cluster.name}")
    model = client.models.create_or_update(load_model(deploy_dir / "model.yml"))
    print(f"registered model {model.name} version {model.version}")
    wait(client.batch_endpoints.begin_create_or_update(specs.endpoint), f"batch endpoint {specs.endpoint.name}")
    specs.deployment.model = f"azureml:{model.name}:{model.version}"
    wait(client.batch_deployments.begin_create_or_update(specs.deployment), f"batch deployment {specs.deployment.name}")


def invoke(client: Any, specs: BatchSpecs, job_input: Any) -> None:
    """Start a job on the endpoint's deployment; print how to follow it and fetch its output."""
    job = client.batch_endpoints.invoke(
        endpoint_name=specs.endpoint.name, deployment_name=specs.deployment.name, input=job_input
    )
    print(f"started job {job.name} ({getattr(job, 'studio_url', '')})")
    print(f"  follow:   az ml job show --name {job.name}   (child jobs: scoring runs in one)")
    print(
        f"  download: az ml job download --name {job.name} --output-name score --download-path build/batch/{job.name}"
    )
    print("  then: logs/job_progress_overview.txt in the job's logs tells whether every mini-batch succeeded")


def describe_input(job_input: Any) -> str:
    return json.dumps({"type": job_input.type, "path": str(job_input.path)})
