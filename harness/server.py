"""Run the real Azure ML inference server (``azmlinfsrv``) on loopback, in the foreground or under a test.

``python -m harness.server`` (what ``make serve`` runs) lays the model folder out as Azure does under
``build/azureml-models/`` and replaces itself with ``azmlinfsrv`` on 127.0.0.1; Ctrl-C stops it. With ``--collect``
(``make serve COLLECT=1``) it first starts a local receiver for model data collection and turns collection on.
``InferenceServer`` starts the same command as a child process for tests and benchmarks, waits until it
answers ``GET /``, and stops it by its PID.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from harness.client import request
from harness.layout import DEFAULT_VERSION, lay_out_like_azure

REPO_ROOT = Path(__file__).resolve().parents[1]
LOOPBACK_CONFIG = REPO_ROOT / "harness" / "gunicorn_loopback.py"
ENTRY_SCRIPT = "score.py"
WORKER_READY = "ready for serving traffic"  # what azmlinfsrv logs once a worker's init() has finished
WORKER_BOOTED = "Booting worker with pid"  # gunicorn, per worker; with WORKER_PRELOAD=true init() ran before it


class ServerExitedError(RuntimeError):
    """The server process ended before it answered; the message holds its exit code and the end of its log."""

    def __init__(self, returncode: int, log: str) -> None:
        super().__init__(f"azmlinfsrv exited with code {returncode} before it was ready; log tail:\n{log[-4000:]}")
        self.returncode = returncode
        self.log = log


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command(model_dir: Path, port: int, workers: int, entry_script: str = ENTRY_SCRIPT) -> list[str]:
    """The ``azmlinfsrv`` command line, using the one installed beside this Python."""
    executable = Path(sys.executable).with_name("azmlinfsrv")
    launcher = [str(executable)] if executable.exists() else [sys.executable, "-m", "azureml_inference_server_http"]
    return [
        *launcher,
        "--entry_script",
        entry_script,
        "--model_dir",
        str(model_dir),
        "--port",
        str(port),
        "--worker_count",
        str(workers),
    ]


def server_env(workers: int, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment ``azmlinfsrv`` runs with: loopback bind, the repo as app root, unbuffered logs."""
    env = dict(os.environ)
    env.update(
        {
            "AML_APP_ROOT": str(REPO_ROOT),
            "GUNICORN_CMD_ARGS": f"--config {LOOPBACK_CONFIG}",
            "WORKER_COUNT": str(workers),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


class InferenceServer:
    """A real ``azmlinfsrv`` child process on a loopback port. Use as a context manager.

    Its combined stdout/stderr goes to a temporary file (``log()`` reads it), so a chatty server can never
    block on a full pipe.
    """

    def __init__(
        self,
        model_dir: Path,
        *,
        port: int | None = None,
        workers: int = 1,
        env: Mapping[str, str] | None = None,
        entry_script: str = ENTRY_SCRIPT,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.entry_script = entry_script  # relative to the repository root (the app root)
        self.port = port or free_port()
        self.workers = workers
        self.env = server_env(workers, env)
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at: float | None = None  # time.monotonic() at launch
        self.first_answer_s: float | None = None  # launch to the first 200 on GET /
        self.all_ready_s: float | None = None  # launch to every worker having finished init()
        self._log = tempfile.NamedTemporaryFile(prefix="azmlinfsrv-", suffix=".log", delete=False)  # noqa: SIM115
        self._final_log: str | None = None  # kept once the process is gone and the file removed

    @property
    def _ready_marker(self) -> str:
        """The log line that appears once per worker ready to answer (WORKER_PRELOAD: once the master forked it)."""
        return WORKER_BOOTED if self.env.get("WORKER_PRELOAD", "").lower() == "true" else WORKER_READY

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> InferenceServer:
        """Start the server and wait until every worker has finished ``init()`` and ``GET /`` answers 200.

        Raises:
            ServerExitedError: the process ended first (for example because ``init()`` failed).
            TimeoutError: it neither answered nor ended within ``timeout`` seconds (it is stopped).
        """
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            server_command(self.model_dir, self.port, self.workers, self.entry_script),
            cwd=REPO_ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the workers can be reaped with the master
        )
        deadline = self.started_at + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise ServerExitedError(self.process.returncode, self.log())
            healthy = self._healthy()
            if healthy and self.first_answer_s is None:
                self.first_answer_s = time.monotonic() - self.started_at
            if healthy and self.log().count(self._ready_marker) >= self.workers:
                self.all_ready_s = time.monotonic() - self.started_at
                return self
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"azmlinfsrv did not answer on {self.url} within {timeout} s; log:\n{self.log()[-4000:]}")

    def wait_for_exit(self, timeout: float = 90.0) -> int:
        """Start the server expecting it to fail; return its exit code (stops it and raises if it serves)."""
        try:
            self.start(timeout)
        except ServerExitedError as err:
            return err.returncode
        self.stop()
        raise AssertionError(f"azmlinfsrv started and served on {self.url}; expected it to exit")

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM the master by its PID (gunicorn stops its workers), then SIGKILL the group if needed.

        The log stays readable through ``log()``; its temporary file is removed.
        """
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(grace)
        if self._final_log is None:
            self._final_log = self.log()
            self._log.close()
            os.unlink(self._log.name)

    def worker_pids(self) -> list[int]:
        """The PIDs of the gunicorn workers the master has forked (Linux: read from /proc)."""
        master = self.process.pid
        return [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]

    def log(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        if self._final_log is not None:
            return self._final_log
        return Path(self._log.name).read_text(errors="replace")

    def _healthy(self) -> bool:
        try:
            return request(self.url + "/", timeout=1.0).status == 200
        except OSError:
            return False

    def __enter__(self) -> InferenceServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def model_name_for(path: Path) -> str:
    """A registered model's name for a folder or file, as Azure ML allows it: letters, digits, '-', '_' and '.'."""
    stem = Path(path).resolve().name if Path(path).is_dir() else Path(path).stem
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._") or "model"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a model folder with azmlinfsrv on 127.0.0.1.")
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "build" / "model", help="model folder or file")
    parser.add_argument("--root", type=Path, default=REPO_ROOT / "build" / "azureml-models")
    parser.add_argument("--name", help="registered model name (folder level); default: the folder's (or file's) name")
    parser.add_argument("--version", default=DEFAULT_VERSION, help="registered model version (folder level)")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKER_COUNT", "1")))
    parser.add_argument("--collect", action="store_true", help="data collection on, to a local receiver (COLLECT=1)")
    args = parser.parse_args(argv)

    name = args.name or model_name_for(args.model)
    model_dir = lay_out_like_azure(args.model, args.root, name, args.version)
    print(f"AZUREML_MODEL_DIR={model_dir}", flush=True)
    print(f"Serving on http://127.0.0.1:{args.port}/score  (try: make smoke PORT={args.port})", flush=True)
    command = server_command(model_dir, args.port, args.workers)
    os.chdir(REPO_ROOT)
    os.execve(command[0], command, server_env(args.workers, start_collector_receiver() if args.collect else None))


def start_collector_receiver() -> dict[str, str]:
    """``make serve COLLECT=1``: a receiver on a free loopback port standing in for the instance's agent
    (``harness.collector_receiver``; it prints each record and appends it to build/collected/records.jsonl, and
    exits with this process, which becomes the server); returns the environment that turns collection on."""
    port, out = free_port(), REPO_ROOT / "build" / "collected" / "records.jsonl"
    receiver = [sys.executable, "-m", "harness.collector_receiver", "--port", str(port), "--out", str(out)]
    subprocess.Popen([*receiver, "--parent", str(os.getpid())], cwd=REPO_ROOT)
    print(f"Data collection on: records to 127.0.0.1:{port}, printed here and appended to {out}", flush=True)
    return {"AZUREML_MDC_ENABLED": "true", "AZUREML_MDC_HOST": "127.0.0.1", "AZUREML_MDC_PORT": str(port)}


if __name__ == "__main__":
    main()
