"""Deploy to Azure ML from the YAML in ``deploy/``: ``python -m deploy.tool COMMAND`` (``make validate``, ``make
deploy``, ``make rollout``, ``make invoke``, ``make logs``; ``make batch-deploy``, ``make batch-invoke`` for the batch
endpoint in ``deploy/batch/``, whose checks live in ``deploy/batch_specs.py``).

The YAML files are the deployment spec; this tool loads them with ``azure-ai-ml``'s own loaders and never restates
them. ``validate`` (and ``--dry-run`` on every other command) works offline, without credentials: it loads every
spec, checks that they agree with the scoring code (workers, concurrency, timeouts, probes, paths, traffic, what
gets uploaded) and prints the fully resolved specs. The cloud commands authenticate with
``DefaultAzureCredential`` (``az login`` is enough) and take the workspace from arguments or from
``AZURE_SUBSCRIPTION_ID``, ``AZURE_RESOURCE_GROUP`` and ``AZUREML_WORKSPACE_NAME``. Keys are never fetched or
printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deploy import batch_specs

DEPLOY_DIR = Path(__file__).resolve().parent
REPO_ROOT = DEPLOY_DIR.parent
DEPLOYMENTS = ("blue", "green")
UPLOAD_NEEDS = ("score.py", "serving/", "model_folder/", "model_arch/")
UPLOAD_MUST_NOT = ("tests/", "build/", ".venv/", ".git/", "bench/", "harness/")
MIN_READY_SECONDS = 60  # probes must give a worker at least this long to load the model


class SpecError(Exception):
    """A spec that does not load, or specs that disagree; the message names the file and the fix."""


@dataclass
class Specs:
    endpoint: Any
    deployments: dict[str, Any]
    model: Any
    kubernetes_endpoint: Any
    kubernetes_deployment: Any
    train_job: Any


def load_specs(deploy_dir: Path = DEPLOY_DIR) -> Specs:
    """Every spec, through azure-ai-ml's loaders (offline; unknown keys and bad values are refused there).

    Raises:
        SpecError: naming the file that did not load and the loader's reason.
    """
    from azure.ai.ml import load_job, load_model, load_online_deployment, load_online_endpoint

    def load(loader, relative: str):
        return load_one(loader, deploy_dir / relative)

    return Specs(
        endpoint=load(load_online_endpoint, "endpoint.yml"),
        deployments={name: load(load_online_deployment, f"{name}-deployment.yml") for name in DEPLOYMENTS},
        model=load(load_model, "model.yml"),
        kubernetes_endpoint=load(load_online_endpoint, "kubernetes/endpoint.yml"),
        kubernetes_deployment=load(load_online_deployment, "kubernetes/deployment.yml"),
        train_job=load(load_job, "train-job.yml"),
    )


def load_one(loader, path: Path) -> Any:
    """One spec through its azure-ai-ml loader.

    Raises:
        SpecError: naming the file and the loader's reason, without the loader's boilerplate.
    """
    try:
        return loader(path)
    except Exception as err:  # the loaders raise ValidationError, ValueError, FileNotFoundError, ...
        boilerplate = ("Visit this link", "The easiest way to author")
        lines = [line for line in str(err).splitlines() if line.strip() and not line.startswith(boilerplate)]
        reason = "\n".join(lines)[:2000]
        raise SpecError(f"{path} does not load ({type(err).__name__}):\n{reason}") from err


def check(specs: Specs, deploy_dir: Path = DEPLOY_DIR) -> list[str]:
    """Every way the specs disagree with each other or with the scoring code, as sentences (empty: all good)."""
    problems = []
    pairs = [(f"{name}-deployment.yml", d, specs.endpoint) for name, d in specs.deployments.items()]
    pairs.append(("kubernetes/deployment.yml", specs.kubernetes_deployment, specs.kubernetes_endpoint))
    for file, deployment, endpoint in pairs:
        problems += [f"{file}: {p}" for p in _check_deployment(deployment, endpoint, deploy_dir / file)]
    problems += [f"endpoint.yml: {p}" for p in _check_traffic(specs.endpoint, set(specs.deployments))]
    blue, green = (_comparable(specs.deployments[name]) for name in DEPLOYMENTS)
    if blue != green:
        differing = sorted(k for k in set(blue) | set(green) if blue.get(k) != green.get(k))
        problems.append(f"blue-deployment.yml and green-deployment.yml differ in {differing}, not only in name")
    problems += _check_upload(REPO_ROOT)
    return problems


def _seconds(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None  # unset, or not a number: serving.settings refuses that at start-up with its own message


def _check_deployment(deployment: Any, endpoint: Any, path: Path) -> list[str]:
    problems = []
    if deployment.endpoint_name != endpoint.name:
        problems.append(f"endpoint_name is {deployment.endpoint_name!r}, but the endpoint spec is {endpoint.name!r}")
    if getattr(deployment, "type", None) != "kubernetes" and not deployment.instance_type:
        problems.append("instance_type is missing; a managed deployment needs one, e.g. Standard_DS3_v2")
    env = deployment.environment_variables or {}
    settings = deployment.request_settings
    timeout_ms = settings.request_timeout_ms if settings else None
    concurrency = settings.max_concurrent_requests_per_instance if settings else None
    if timeout_ms is None:
        problems.append(
            "request_settings.request_timeout_ms is not set; the 5000 ms default answers 408 to slow batches"
        )
    if "WORKER_COUNT" not in env:
        problems.append("environment_variables.WORKER_COUNT is not set; the server then runs 1 worker")
    elif concurrency != int(env["WORKER_COUNT"]):
        problems.append(
            f"max_concurrent_requests_per_instance is {concurrency} but WORKER_COUNT is {env['WORKER_COUNT']}; "
            "make them equal (fewer: clients get 429s while workers idle; more: requests queue in the server)"
        )
    if "SCORING_TIMEOUT_MS" not in env:
        problems.append("environment_variables.SCORING_TIMEOUT_MS is not set; the server's default is one hour")
    elif timeout_ms is not None and int(env["SCORING_TIMEOUT_MS"]) > timeout_ms:
        problems.append(
            f"SCORING_TIMEOUT_MS ({env['SCORING_TIMEOUT_MS']}) is longer than request_timeout_ms ({timeout_ms}); "
            "work the gateway gave up on would go on"
        )
    body_timeout = _seconds(env.get("BODY_TIMEOUT_S"))
    if body_timeout is not None and timeout_ms is not None and body_timeout * 1000 > timeout_ms:
        problems.append(
            f"BODY_TIMEOUT_S ({env['BODY_TIMEOUT_S']} s) is longer than request_timeout_ms ({timeout_ms}); a stalled "
            "upload would hold a worker after the gateway answered the client"
        )
    problems += _check_data_collector(deployment.data_collector, env)
    probe = deployment.readiness_probe
    if probe is None:
        problems.append("readiness_probe is not set; size it for the model's start-up")
    else:
        window = (probe.initial_delay or 0) + (probe.period or 0) * (probe.failure_threshold or 0)
        if window < MIN_READY_SECONDS:
            problems.append(f"readiness_probe allows {window} s to become ready; give it at least {MIN_READY_SECONDS}")
    model_path = getattr(deployment.model, "path", None)
    if model_path and not (Path(model_path) / "manifest.json").is_file():
        problems.append(f"model.path {model_path} holds no model folder yet; run `make model` first")
    code = deployment.code_configuration
    if code and not (path.parent / code.code / code.scoring_script).resolve().is_file():
        problems.append(f"code_configuration: {code.scoring_script} is not in {code.code}")
    return problems


def _check_data_collector(collector: Any, env: dict[str, str]) -> list[str]:
    """The collections score.py sends (serving/collection.py), and no DATA_COLLECTION=off beside them."""
    if collector is None or not collector.collections:
        return []
    names = set(collector.collections)
    unknown = sorted(names - {"model_inputs", "model_outputs", "request", "response"})
    problems = []
    if unknown:
        problems.append(
            f"data_collector.collections names {unknown}; score.py sends model_inputs and model_outputs "
            "(docs/data-collection.md)"
        )
    if str(env.get("DATA_COLLECTION", "")).strip().lower() == "off" and names & {"model_inputs", "model_outputs"}:
        problems.append("data_collector collects model_inputs/model_outputs, but DATA_COLLECTION=off sends nothing")
    return problems


def _check_traffic(endpoint: Any, deployment_names: set[str]) -> list[str]:
    problems = []
    for field in ("traffic", "mirror_traffic"):
        shares = getattr(endpoint, field, None) or {}
        if sum(shares.values()) > 100:
            problems.append(f"{field} adds up to {sum(shares.values())}%; it can be at most 100%")
        unknown = sorted(set(shares) - deployment_names)
        if unknown:
            problems.append(f"{field} names {unknown}, which are not deployments here ({sorted(deployment_names)})")
    return problems


def _plain(entity: Any) -> dict[str, Any]:
    """An SDK entity as plain JSON-like data (its own dict form holds OrderedDicts and paths)."""
    return json.loads(json.dumps(entity._to_dict(), default=str))


def _comparable(deployment: Any) -> dict[str, Any]:
    data = _plain(deployment)
    data.pop("name", None)
    return data


def _check_upload(code_dir: Path) -> list[str]:
    uploaded = upload_list(code_dir)
    problems = [f"the code upload lacks {need} (check .amlignore)" for need in UPLOAD_NEEDS if not _has(uploaded, need)]
    problems += [
        f"the code upload includes {bad} (add it to .amlignore)" for bad in UPLOAD_MUST_NOT if _has(uploaded, bad)
    ]
    return problems


def upload_list(code_dir: Path) -> list[str]:
    """The files Azure ML would upload from ``code_dir``, by azure-ai-ml's own .amlignore handling."""
    from azure.ai.ml._utils._asset_utils import get_ignore_file, get_upload_files_from_folder

    return sorted(
        relative for _, relative in get_upload_files_from_folder(code_dir, ignore_file=get_ignore_file(code_dir))
    )


def _has(files: list[str], entry: str) -> bool:
    return any(f == entry or (entry.endswith("/") and f.startswith(entry)) for f in files)


def resolved_yaml(specs: Specs, names: list[str]) -> str:
    """The fully resolved specs, as the SDK will send them (paths absolute, defaults filled)."""
    documents = {"endpoint": specs.endpoint, "model": specs.model}
    documents.update({f"deployment {name}": specs.deployments[name] for name in names})
    parts = [f"# {title}\n" + yaml.safe_dump(_plain(entity), sort_keys=False) for title, entity in documents.items()]
    return "---\n".join(parts)


# ---------------------------------------------------------------------------------------------- cloud


def ml_client(args: argparse.Namespace):
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    workspace = {
        "--subscription": args.subscription,
        "--resource-group": args.resource_group,
        "--workspace": args.workspace,
    }
    missing = [flag for flag, value in workspace.items() if not value]
    if missing:
        raise SpecError(
            f"no workspace: give {', '.join(missing)} or set AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and "
            "AZUREML_WORKSPACE_NAME"
        )
    return MLClient(DefaultAzureCredential(), args.subscription, args.resource_group, args.workspace)


def wait(poller: Any, what: str, every: float = 15.0) -> Any:
    """Block on a long operation, printing its status every ``every`` seconds."""
    started = time.monotonic()
    while not poller.done():
        print(f"  {what}: {poller.status()} ({time.monotonic() - started:.0f} s)", flush=True)
        poller.wait(every)
    print(f"  {what}: done in {time.monotonic() - started:.0f} s", flush=True)
    return poller.result()


def deploy(client: Any, specs: Specs, name: str) -> None:
    """Register build/model, create or update the endpoint, create or update one deployment."""
    model = client.models.create_or_update(specs.model)
    print(f"registered model {model.name} version {model.version}")
    endpoint = wait(client.online_endpoints.begin_create_or_update(specs.endpoint), f"endpoint {specs.endpoint.name}")
    deployment = specs.deployments[name]
    deployment.model = f"azureml:{model.name}:{model.version}"
    wait(client.online_deployments.begin_create_or_update(deployment), f"deployment {name}")
    if not endpoint.traffic:
        endpoint.traffic = {name: 100}
        wait(client.online_endpoints.begin_create_or_update(endpoint), f"traffic 100% to {name}")


def rollout(client: Any, specs: Specs, step: str, percent: int) -> None:
    """One blue/green step: create green, mirror a share to it, shift a share to it, or retire blue."""
    endpoint = client.online_endpoints.get(specs.endpoint.name)
    if step == "green":
        deploy(client, specs, "green")
        return
    if step == "mirror":
        endpoint.mirror_traffic = {"green": percent}
    elif step == "shift":
        endpoint.mirror_traffic = {}
        endpoint.traffic = {"blue": 100 - percent, "green": percent}
    elif step == "retire":
        endpoint.mirror_traffic = {}
        endpoint.traffic = {"green": 100}
    wait(client.online_endpoints.begin_create_or_update(endpoint), f"{step} {percent}%")
    if step == "retire":
        wait(client.online_deployments.begin_delete(name="blue", endpoint_name=endpoint.name), "delete blue")


# ---------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "command", choices=["validate", "deploy", "rollout", "invoke", "logs", "batch-deploy", "batch-invoke"]
    )
    parser.add_argument("--input", help="batch-invoke: a local folder or file (uploaded), or an azureml:// URI")
    parser.add_argument("--deployment", choices=DEPLOYMENTS, default="blue")
    parser.add_argument("--step", choices=["green", "mirror", "shift", "retire"], help="rollout step")
    parser.add_argument("--percent", type=int, default=10, help="traffic share for mirror and shift")
    parser.add_argument("--lines", type=int, default=100, help="log lines")
    parser.add_argument("--dry-run", action="store_true", help="validate offline and print; touch nothing")
    parser.add_argument("--deploy-dir", type=Path, default=DEPLOY_DIR)
    parser.add_argument("--subscription", default=os.environ.get("AZURE_SUBSCRIPTION_ID"))
    parser.add_argument("--resource-group", default=os.environ.get("AZURE_RESOURCE_GROUP"))
    parser.add_argument("--workspace", default=os.environ.get("AZUREML_WORKSPACE_NAME"))
    args = parser.parse_args(argv)
    if args.command == "rollout" and not args.step:
        parser.error("rollout needs --step green, mirror, shift or retire")
    if not 0 <= args.percent <= 100:
        parser.error("--percent must be between 0 and 100")

    if args.command == "batch-invoke" and not args.input:
        parser.error("batch-invoke needs --input (make batch-invoke INPUT=folder)")
    try:
        specs = load_specs(args.deploy_dir)
        problems = check(specs, args.deploy_dir)
        batch = batch_specs.load(args.deploy_dir)  # the batch endpoint's specs (deploy/batch/), checked alike
        problems += [f"batch/{p}" for p in batch_specs.check(batch, args.deploy_dir)]
        job_input = batch_specs.input_of(args.input) if args.command == "batch-invoke" else None
    except SpecError as err:
        print(f"INVALID: {err}", file=sys.stderr)
        return 1
    if problems:
        print("INVALID:\n" + "\n".join(f"  - {p}" for p in problems), file=sys.stderr)
        return 1
    names = list(DEPLOYMENTS) if args.command == "validate" else [args.deployment]
    if args.command.startswith("batch-"):
        names = [f"batch endpoint {batch.endpoint.name}, deployment {batch.deployment.name}"]
    if args.command == "validate" or args.dry_run:
        if not args.command.startswith("batch-"):
            print(resolved_yaml(specs, names))
        if args.command == "validate" or args.command.startswith("batch-"):
            print(batch_specs.resolved_yaml(batch))
        if job_input is not None:
            print(f"# batch job input\n{batch_specs.describe_input(job_input)}")
        print(f"OK: {args.deploy_dir} is valid offline; {args.command} would act on {', '.join(names)}.")
        return 0
    try:
        client = ml_client(args)
        if args.command == "deploy":
            deploy(client, specs, args.deployment)
        elif args.command == "rollout":
            rollout(client, specs, args.step, args.percent)
        elif args.command == "invoke":
            request_file = str(args.deploy_dir / "sample-request.json")
            answer = client.online_endpoints.invoke(
                specs.endpoint.name, request_file=request_file, deployment_name=args.deployment
            )
            print(answer)
        elif args.command == "batch-deploy":
            batch_specs.deploy(client, batch, args.deploy_dir)
        elif args.command == "batch-invoke":
            batch_specs.invoke(client, batch, job_input)
        elif args.command == "logs":
            print(client.online_deployments.get_logs(args.deployment, specs.endpoint.name, lines=args.lines))
    except SpecError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    from deploy import tool  # run as deploy.tool, not __main__: deploy/batch_specs.py raises deploy.tool.SpecError

    sys.exit(tool.main())
