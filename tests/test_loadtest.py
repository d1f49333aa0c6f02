"""A small run of the load tool against the real server: 16 clients on 2 workers, every answer checked."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from harness import loadtest
from harness.server import InferenceServer
from model_folder.manifest import read_manifest

pytestmark = pytest.mark.server


def test_sixteen_clients_on_two_workers_get_only_right_answers(served: InferenceServer, trained_folder: Path) -> None:
    manifest = read_manifest(trained_folder)
    jobs = loadtest.make_jobs(manifest, trained_folder / manifest.weights_file, count=800, max_rows=4, seed=1)

    report = loadtest.run_load(served.url + "/score", jobs, clients=16, seconds=120)

    print(report.summary())
    assert served.workers == 2
    assert (report.errors, report.wrong_answers, report.requests) == (0, 0, 800), report.examples
    assert report.rows == sum(len(job.rows) for job in jobs)


def test_the_load_tool_catches_wrong_answers(served: InferenceServer, trained_folder: Path) -> None:
    manifest = read_manifest(trained_folder)
    jobs = loadtest.make_jobs(manifest, trained_folder / manifest.weights_file, count=20, max_rows=2, seed=2)
    swapped = [loadtest.Job(job.rows, [(label + 1) % 10 for label in job.labels], job.probabilities) for job in jobs]

    report = loadtest.run_load(served.url + "/score", swapped, clients=4, seconds=60)

    assert report.wrong_answers == 20


def test_the_load_tool_command_starts_its_own_server_and_exits_0(trained_folder: Path, capsys) -> None:
    code = loadtest.main(["--model", str(trained_folder), "--requests", "200", "--clients", "8", "--seconds", "60"])

    out = capsys.readouterr().out
    assert code == 0, out
    assert "200 requests" in out and "wrong answers 0" in out


def test_an_answer_cut_off_mid_body_counts_as_a_connection_error(trained_folder: Path) -> None:
    """What a worker killed mid-answer looks like to a client: headers, then half the body, then a closed socket."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_truncated(count: int) -> None:
        for _ in range(count):
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")

    manifest = read_manifest(trained_folder)
    jobs = loadtest.make_jobs(manifest, trained_folder / manifest.weights_file, count=5, max_rows=1, seed=3)
    server = threading.Thread(target=serve_truncated, args=(len(jobs),), daemon=True)
    server.start()
    try:
        report = loadtest.run_load(f"http://127.0.0.1:{port}/score", jobs, clients=1, seconds=30)
    finally:
        server.join(timeout=10)
        listener.close()

    assert (report.connection_errors, report.requests, report.wrong_answers) == (5, 0, 0)
    assert "IncompleteRead" in report.examples[0]
