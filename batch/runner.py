"""Run a batch scoring script locally the way Azure ML's batch runtime runs it: ``python -m batch.runner INPUT``
(``make batch-local INPUT=...``), and what the tests and ``bench/batch.py`` use.

Azure ML has no local mode for batch deployments (docs/batch.md), so this emulates the runtime's contract:

* the input is a folder (its files, sorted; nested folders are not explored, as in Azure) or one file; it is split
  into mini-batches of ``mini_batch_size`` absolute paths;
* N worker processes (``instance_count × max_concurrency_per_instance`` in Azure) each set ``AZUREML_MODEL_DIR`` (the
  model laid out as Azure lays it, ``harness.layout``) and ``AZUREML_BI_OUTPUT_PATH``, import the script, call
  ``init()`` once and ``run(mini_batch)`` per mini-batch;
* every element ``run()`` returns becomes one line of one output file (``append_row``), which must not exist yet;
* a mini-batch whose ``run()`` raises, returns fewer elements than it had files, or runs past ``timeout`` is a failed
  attempt, retried up to ``max_retries`` times (a timed-out worker is killed and replaced); after the last attempt its
  files count as failed, and once more files failed than ``error_threshold`` (-1: no limit) the job stops.

The defaults come from the batch deployment spec (``deploy/batch/deployment.yml``: ``mini_batch_size``,
``retry_settings``, ``error_threshold``, ``output_file_name``, ``environment_variables``), so a local run behaves like
the deployment; flags override them. The summary (files, rows, items not scored, failed files, seconds, each
worker's peak memory) is printed as JSON and returned by ``run_job``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENT_SPEC = REPO_ROOT / "deploy" / "batch" / "deployment.yml"
SCRIPT = REPO_ROOT / "batch_score.py"
ERROR_MARK = '"status":"error"'  # how batch.output writes a file that was not scored
# Set per worker from the number of processes, never taken from the deployment spec (its cluster's cores are not ours)
THREAD_SETTINGS = ("WORKER_COUNT", "TORCH_NUM_THREADS")


@dataclass
class JobConfig:
    """One local batch job. ``model_dir`` is an ``AZUREML_MODEL_DIR`` (already laid out as Azure lays it)."""

    input: Path
    output: Path
    model_dir: Path
    script: Path = SCRIPT
    processes: int = 2
    mini_batch_size: int = 10
    max_retries: int = 3
    timeout_s: float = 30.0
    error_threshold: int = -1
    env: dict[str, str] = field(default_factory=dict)
    start_together: bool = False  # hand out work once every worker is ready (benchmarks: no start-up in the rates)


@dataclass
class Summary:
    """What a job did. ``error_files``: files the script reported as not scored (an error line each);
    ``failed_files``: files of mini-batches that failed every attempt (the runtime's failures)."""

    files: int = 0
    mini_batches: int = 0
    rows: int = 0
    error_files: int = 0
    failed_files: int = 0
    failed_attempts: int = 0
    stopped: bool = False
    seconds: float = 0.0
    init_seconds: float = 0.0
    scoring_seconds: float = 0.0  # from the first mini-batch handed out to the last line written
    peak_rss_mib: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.stopped


def list_inputs(source: Path) -> list[Path]:
    """The files a job scores: ``source`` itself, or the files directly in it, sorted (sub-folders are skipped)."""
    source = Path(source).resolve()
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"{source} is neither a file nor a folder; give INPUT=path/to/folder")
    return sorted(path for path in source.iterdir() if path.is_file())


def split(files: list[Path], size: int) -> list[list[str]]:
    """Mini-batches of at most ``size`` paths, by count (the runtime does not look at file sizes)."""
    return [[str(path) for path in files[i : i + size]] for i in range(0, len(files), size)]


def defaults_from_spec(path: Path = DEPLOYMENT_SPEC) -> dict[str, Any]:
    """The runner's defaults as the batch deployment spec sets them (plain YAML: the SDK is not needed to read it)."""
    import yaml

    if not path.is_file():
        return {}
    settings = (yaml.safe_load(path.read_text()) or {}).get("settings") or {}
    retry = settings.get("retry_settings") or {}
    env = {k: str(v) for k, v in (settings.get("environment_variables") or {}).items() if k not in THREAD_SETTINGS}
    found = {
        "mini_batch_size": settings.get("mini_batch_size"),
        "max_retries": retry.get("max_retries"),
        "timeout_s": retry.get("timeout"),
        "error_threshold": settings.get("error_threshold"),
        "output_file_name": settings.get("output_file_name"),
        "env": env,
    }
    return {key: value for key, value in found.items() if value is not None}


# ---------------------------------------------------------------------------------------------- worker


def _worker(connection: Connection, script: str, env: dict[str, str], log: str) -> None:
    """One worker process: ``init()`` once, then ``run()`` for every mini-batch it is sent, until it is sent None.
    Its stdout and stderr go to ``log``, as the runtime keeps ``logs/user/stdout/<node>/process<N>.stdout.txt``."""
    sys.stdout = sys.stderr = open(log, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (the process's life)
    os.environ.update(env)
    sys.path.insert(0, str(Path(script).parent))  # as the runtime runs the script from the uploaded code folder
    started = time.perf_counter()
    try:
        spec = importlib.util.spec_from_file_location("batch_scoring_script", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.init()
    except BaseException:
        connection.send(("init_failed", traceback.format_exc()))
        return
    connection.send(("ready", time.perf_counter() - started, _peak_rss_mib()))
    while True:
        task = connection.recv()
        if task is None:
            return
        number, files = task
        try:
            result = module.run(files)
            lines = _as_lines(result)
        except Exception:
            connection.send(("failed", number, traceback.format_exc(), _peak_rss_mib()))
            continue
        connection.send(("done", number, lines, _peak_rss_mib()))


def _as_lines(result: Any) -> list[str]:
    """What ``append_row`` writes for a return value: a DataFrame's rows joined by spaces, a list's items as text."""
    if hasattr(result, "itertuples"):  # a pandas DataFrame, without importing pandas here
        return [" ".join(map(str, row)) for row in result.itertuples(index=False)]
    return [str(item) for item in result]


def _peak_rss_mib() -> float:
    """This process's peak resident memory. ``VmHWM``, not ``getrusage``: Linux carries ``ru_maxrss`` over ``exec``,
    so a worker spawned from a large parent would report the parent's peak."""
    try:
        for text in Path("/proc/self/status").read_text().splitlines():
            if text.startswith("VmHWM:"):
                return round(int(text.split()[1]) / 1024, 1)  # kB
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux, bytes on macOS


# ---------------------------------------------------------------------------------------------- job


@dataclass
class _Worker:
    process: Any
    connection: Connection
    task: tuple[int, list[str]] | None = None
    started: float = 0.0
    ready: bool = False


def run_job(config: JobConfig) -> Summary:
    """Score ``config.input`` into ``config.output`` with ``config.processes`` workers; see the module docstring.

    Raises:
        FileExistsError: the output file exists (the batch runtime refuses that too).
        RuntimeError: a worker's ``init()`` failed (the message holds its traceback).
    """
    output = Path(config.output)
    if output.exists():
        raise FileExistsError(f"{output} exists; a batch job writes a new output file (remove it or name another)")
    output.parent.mkdir(parents=True, exist_ok=True)
    files = list_inputs(config.input)
    batches = split(files, config.mini_batch_size)
    summary = Summary(files=len(files), mini_batches=len(batches))
    started = time.perf_counter()
    threads = max(1, (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1) // config.processes)
    env = {
        "WORKER_COUNT": str(config.processes),
        "TORCH_NUM_THREADS": str(threads),
        **config.env,
        "AZUREML_MODEL_DIR": str(config.model_dir),
        "AZUREML_BI_OUTPUT_PATH": str(output.parent),
    }
    context = multiprocessing.get_context("spawn")  # a fresh interpreter per worker, as on a node: no forked torch

    logs = output.parent / "logs"
    logs.mkdir(exist_ok=True)
    count = iter(range(1, 1_000_000))

    def start() -> _Worker:
        parent, child = context.Pipe()
        log = str(logs / f"process{next(count)}.stdout.txt")
        process = context.Process(target=_worker, args=(child, str(config.script), env, log), daemon=True)
        process.start()
        child.close()
        return _Worker(process, parent)

    pending = [(number, batch, 1) for number, batch in enumerate(batches)]  # (number, files, attempt)
    attempts: dict[int, int] = {}
    first_task = 0.0
    workers = [start() for _ in range(min(config.processes, max(1, len(batches))))]
    with output.open("a", encoding="utf-8") as out:
        try:
            while (pending or any(w.task for w in workers)) and not summary.stopped:
                all_ready = all(w.ready for w in workers) or not config.start_together
                for worker in workers:  # hand work to every idle, ready worker
                    if all_ready and worker.ready and worker.task is None and pending:
                        number, batch, attempt = pending.pop(0)
                        attempts[number] = attempt
                        worker.task, worker.started = (number, batch), time.perf_counter()
                        first_task = first_task or worker.started
                        worker.connection.send((number, batch))
                busy = [w for w in workers if w.task is not None]
                deadline = min((w.started + config.timeout_s for w in busy), default=time.perf_counter() + 60)
                ready = wait([w.connection for w in workers], timeout=max(0.0, deadline - time.perf_counter()))
                for worker in list(workers):
                    if worker.connection in ready:
                        _receive(worker, workers, start, out, pending, attempts, config, summary)
                    elif worker.task is not None and time.perf_counter() - worker.started > config.timeout_s:
                        number, batch = worker.task
                        worker.process.kill()
                        worker.process.join()
                        workers[workers.index(worker)] = start()
                        _failed_attempt(
                            number, batch, f"timed out after {config.timeout_s:g} s", pending, attempts, config, summary
                        )
            summary.scoring_seconds = round(time.perf_counter() - (first_task or started), 3)
        finally:
            for worker in workers:
                if worker.process.is_alive():
                    with contextlib.suppress(OSError):  # BrokenPipeError: it is gone already
                        worker.connection.send(None)
            for worker in workers:
                worker.process.join(timeout=10)
                if worker.process.is_alive():
                    worker.process.kill()
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _receive(worker, workers, start, out, pending, attempts, config: JobConfig, summary: Summary) -> None:
    try:
        message = worker.connection.recv()
    except EOFError:  # the worker died (out of memory, a crash in native code)
        code = worker.process.exitcode
        worker.process.join()
        workers[workers.index(worker)] = start()
        if worker.task is None:
            raise RuntimeError(f"a worker exited with code {code} before it was ready") from None
        number, batch = worker.task
        _failed_attempt(number, batch, f"the worker exited with code {code}", pending, attempts, config, summary)
        return
    kind = message[0]
    if kind == "init_failed":
        raise RuntimeError(f"init() failed in a worker; no file was scored:\n{message[1]}")
    summary.peak_rss_mib[str(worker.process.pid)] = message[-1]
    if kind == "ready":
        worker.ready = True
        summary.init_seconds = max(summary.init_seconds, round(message[1], 3))
        return
    number, batch = worker.task
    worker.task = None
    if kind == "failed":
        _failed_attempt(number, batch, message[2].strip().splitlines()[-1], pending, attempts, config, summary)
        return
    lines = message[2]
    if len(lines) < len(batch):
        reason = f"run() returned {len(lines)} element(s) for {len(batch)} file(s)"
        _failed_attempt(number, batch, reason, pending, attempts, config, summary)
        return
    out.write("".join(line + "\n" for line in lines))
    out.flush()
    summary.rows += len(lines)
    summary.error_files += sum(ERROR_MARK in line for line in lines)


def _failed_attempt(number, batch, reason, pending, attempts, config: JobConfig, summary: Summary) -> None:
    """A failed attempt at mini-batch ``number``: retried, or after the last retry its files fail; past the error
    threshold the job stops."""
    summary.failed_attempts += 1
    attempt = attempts[number]
    summary.failures.append(f"mini-batch {number} attempt {attempt}: {reason}")
    if attempt <= config.max_retries:
        pending.append((number, batch, attempt + 1))
        return
    summary.failed_files += len(batch)
    if config.error_threshold != -1 and summary.failed_files > config.error_threshold:
        summary.stopped = True
        summary.failures.append(
            f"stopped: {summary.failed_files} file(s) failed, more than error_threshold {config.error_threshold}"
        )


# ---------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    defaults = defaults_from_spec()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", type=Path, help="a folder of input files (not explored below), or one file")
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "build" / "model", help="a model folder or file")
    parser.add_argument("--output", type=Path, help="default: build/batch/<time>/<output_file_name>")
    parser.add_argument("--processes", type=int, default=2, help="worker processes (instance_count × concurrency)")
    parser.add_argument("--mini-batch-size", type=int, default=defaults.get("mini_batch_size", 10))
    parser.add_argument("--max-retries", type=int, default=defaults.get("max_retries", 3))
    parser.add_argument("--timeout", type=float, default=defaults.get("timeout_s", 30), help="seconds per attempt")
    parser.add_argument("--error-threshold", type=int, default=defaults.get("error_threshold", -1))
    parser.add_argument("--script", type=Path, default=SCRIPT)
    args = parser.parse_args(argv)
    if args.processes < 1 or args.mini_batch_size < 1 or args.max_retries < 0 or args.timeout <= 0:
        parser.error("--processes and --mini-batch-size must be at least 1, --max-retries at least 0, --timeout > 0")

    from harness.layout import lay_out_like_azure

    output = args.output or (
        REPO_ROOT / "build" / "batch" / time.strftime("%Y%m%d-%H%M%S") / defaults.get("output_file_name", "out.jsonl")
    )
    with tempfile.TemporaryDirectory(prefix="azureml-models-") as root:
        config = JobConfig(
            input=args.input,
            output=output,
            model_dir=lay_out_like_azure(args.model, Path(root), name=args.model.resolve().name),
            script=args.script.resolve(),
            processes=args.processes,
            mini_batch_size=args.mini_batch_size,
            max_retries=args.max_retries,
            timeout_s=args.timeout,
            error_threshold=args.error_threshold,
            env=defaults.get("env", {}),
        )
        try:
            summary = run_job(config)
        except (FileExistsError, FileNotFoundError, RuntimeError) as err:
            print(f"ERROR: {err}", file=sys.stderr)
            return 2
    print(json.dumps(asdict(summary), indent=2))
    print(
        f"wrote {output}: {summary.rows} row(s); {summary.error_files} file(s) not scored (see their error rows); "
        f"worker logs in {output.parent / 'logs'}"
    )
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
