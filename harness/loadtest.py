"""Drive a real server with many concurrent clients and check every answer: ``python -m harness.loadtest``.

Each request carries its own random rows (pixel values 0-16, 1 to ``--max-rows`` per request); the answer
the server gives is compared with the prediction computed in process for exactly those rows, so a mixed-up,
truncated or wrong answer is caught, not only an error status. Bounded in requests and seconds, loopback only;
without ``--url`` it starts its own ``azmlinfsrv`` on the model folder and stops it by PID. What ``make
loadtest`` runs; ``tests/test_loadtest.py`` runs a small version of it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from harness.client import Reply, post_json
from harness.layout import lay_out_like_azure
from harness.server import REPO_ROOT, InferenceServer
from model_folder.manifest import Manifest, read_manifest
from model_folder.weights import load_model


@dataclass(frozen=True)
class Job:
    """One request to send and the answer it must get."""

    rows: list[list[int]]
    labels: list
    probabilities: np.ndarray


@dataclass
class LoadReport:
    requests: int = 0
    rows: int = 0
    statuses: Counter = field(default_factory=Counter)
    connection_errors: int = 0
    wrong_answers: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    examples: list[str] = field(default_factory=list)  # a few failures, for the report

    @property
    def errors(self) -> int:
        return self.connection_errors + sum(n for status, n in self.statuses.items() if status != 200)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> str:
        rate = self.requests / self.seconds if self.seconds else 0.0
        return (
            f"{self.requests} requests ({self.rows} rows) in {self.seconds:.1f} s: {rate:.0f} req/s, "
            f"{self.rows / self.seconds if self.seconds else 0:.0f} rows/s; latency p50 {self.percentile(50):.1f} ms, "
            f"p90 {self.percentile(90):.1f} ms, p99 {self.percentile(99):.1f} ms; statuses {dict(self.statuses)}, "
            f"connection errors {self.connection_errors}, wrong answers {self.wrong_answers}"
        )


def make_jobs(manifest: Manifest, weights: Path, count: int, max_rows: int, seed: int = 0) -> list[Job]:
    """``count`` requests of random rows, with the answers the model gives in this process."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, max_rows + 1, count)
    rows = rng.integers(0, 17, (int(sizes.sum()), manifest.input.size))
    model = load_model(manifest, weights, torch.device("cpu"))
    with torch.inference_mode():
        probabilities = torch.softmax(model(torch.from_numpy(manifest.input.preprocess(rows))), dim=1).numpy()
    labels = [manifest.output.labels[i] for i in probabilities.argmax(axis=1)]
    jobs, start = [], 0
    for size in sizes:
        end = start + int(size)
        jobs.append(Job(rows[start:end].tolist(), labels[start:end], probabilities[start:end]))
        start = end
    return jobs


def run_load(url: str, jobs: list[Job], clients: int, seconds: float, tolerance: float = 1e-4) -> LoadReport:
    """Send ``jobs`` from ``clients`` threads until all are sent or ``seconds`` pass; check every answer."""
    report = LoadReport()
    lock = threading.Lock()
    next_job = iter(range(len(jobs)))
    deadline = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < deadline:
            with lock:
                index = next(next_job, None)
            if index is None:
                return
            job = jobs[index]
            started = time.perf_counter()
            try:
                reply = post_json(url, {"data": job.rows}, timeout=30)
            except (OSError, http.client.HTTPException) as err:  # refused, reset, or cut off mid-answer
                with lock:
                    report.connection_errors += 1
                    _note(report, f"request {index}: {type(err).__name__}: {err}")
                continue
            elapsed_ms = (time.perf_counter() - started) * 1e3
            wrong = reply.status == 200 and not _matches(reply, job, tolerance)
            with lock:
                report.requests += 1
                report.rows += len(job.rows)
                report.statuses[reply.status] += 1
                report.latencies_ms.append(elapsed_ms)
                if wrong:
                    report.wrong_answers += 1
                    _note(report, f"request {index}: answer does not match its rows")
                elif reply.status != 200:
                    _note(report, f"request {index}: HTTP {reply.status} {reply.body[:200]!r}")

    started = time.perf_counter()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report.seconds = time.perf_counter() - started
    return report


def _matches(reply: Reply, job: Job, tolerance: float) -> bool:
    try:
        answer = reply.json()
        return answer["predictions"] == job.labels and np.allclose(
            np.asarray(answer["probabilities"]), job.probabilities, atol=tolerance
        )
    except (ValueError, KeyError, TypeError):  # not JSON, or not the answer's shape: wrong all the same
        return False


def _note(report: LoadReport, text: str) -> None:
    if len(report.examples) < 5:
        report.examples.append(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "build" / "model", help="model folder")
    parser.add_argument("--url", help="score URL of a running server (default: start one on a free port)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--max-rows", type=int, default=4)
    args = parser.parse_args(argv)

    manifest = read_manifest(args.model)
    jobs = make_jobs(manifest, args.model / manifest.weights_file, args.requests, args.max_rows)
    if args.url:
        report = run_load(args.url, jobs, args.clients, args.seconds)
    else:
        model_dir = lay_out_like_azure(args.model, REPO_ROOT / "build" / "loadtest-models")
        with InferenceServer(model_dir, workers=args.workers) as server:
            print(f"azmlinfsrv pid {server.process.pid}, {args.workers} workers, on {server.url}", flush=True)
            report = run_load(server.url + "/score", jobs, args.clients, args.seconds)
    print(f"{args.clients} clients: {report.summary()}")
    for example in report.examples:
        print(f"  {example}")
    print(json.dumps({"errors": report.errors, "wrong_answers": report.wrong_answers}))
    return 1 if report.errors or report.wrong_answers else 0


if __name__ == "__main__":
    sys.exit(main())
