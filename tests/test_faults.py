"""Faults on a real server: a killed worker, a model past the scoring timeout, a model that raises, a fault in the
template's own decoding, slow and stalled senders, the largest allowed request. The service keeps answering, and
answers right; every POST has its one ``score`` line."""

from __future__ import annotations

import copy
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
import torch

from bench.run import worker_memory_mib
from harness.client import post_json, request
from harness.layout import lay_out_like_azure
from harness.loadtest import make_jobs, run_load
from harness.server import WORKER_BOOTED, WORKER_READY, InferenceServer
from model_folder.manifest import read_manifest
from serving.settings import Settings, SettingsError
from serving.startup import load_predictor
from tests.fault_models import FaultyDigits
from tests.faulty_score import FAULT
from tests.helpers import SAMPLE_LABELS, SAMPLE_REQUEST
from tests.test_server import score_records

pytestmark = [pytest.mark.server, pytest.mark.slow]
SLEEP_ROW = [[8] * 64]  # FaultyDigits sleeps on a row of all 8s
RAISE_ROW = [[16] * 64]  # and raises on a row of all 16s


def peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


@pytest.fixture
def faulty_model_dir(trained_model: torch.nn.Module, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """AZUREML_MODEL_DIR holding FaultyDigits saved whole, and the settings that trust it (and only it)."""
    weights = tmp_path / "faulty" / "model.pt"
    weights.parent.mkdir()
    torch.save(FaultyDigits(copy.deepcopy(trained_model)), weights)
    trusted = ",".join(torch.serialization.get_unsafe_globals_in_checkpoint(str(weights)))
    model_dir = lay_out_like_azure(weights.parent, tmp_path / "azureml-models")
    return model_dir, {"TRUSTED_PICKLE_GLOBALS": trusted}


def test_a_killed_worker_is_replaced_and_answers_stay_right(trained_folder: Path, tmp_path: Path) -> None:
    manifest = read_manifest(trained_folder)
    jobs = make_jobs(manifest, trained_folder / manifest.weights_file, count=600, max_rows=4)
    model_dir = lay_out_like_azure(trained_folder, tmp_path)

    with InferenceServer(model_dir, workers=2) as server:
        victim = server.worker_pids()[0]
        killer = _after(0.3, lambda: os.kill(victim, signal.SIGKILL))
        during = run_load(server.url + "/score", jobs[:400], clients=8, seconds=60)
        killer.join()
        _wait_for(lambda: server.log().count(WORKER_READY) >= 3 and len(server.worker_pids()) == 2, seconds=30)
        assert victim not in server.worker_pids()  # gunicorn replaced it
        after = run_load(server.url + "/score", jobs[400:], clients=8, seconds=60)

    print(f"worker {victim} killed mid-load: {during.summary()}")
    assert during.wrong_answers == 0  # failures are errors, never wrong answers
    assert during.requests + during.connection_errors == 400
    assert (after.errors, after.wrong_answers, after.requests) == (0, 0, 200)


def test_preloaded_onnx_workers_share_memory_answer_right_and_survive_a_kill(
    trained_folder: Path, tmp_path: Path
) -> None:
    manifest = read_manifest(trained_folder)
    jobs = make_jobs(manifest, trained_folder / manifest.weights_file, count=400, max_rows=4)
    model_dir = lay_out_like_azure(trained_folder, tmp_path)
    env = {"TORCH_NUM_THREADS": "1"}  # one thread per worker: what makes the fork safe

    with InferenceServer(model_dir, workers=2, env=env) as server:
        separate = worker_memory_mib(server)["worker PSS"]
    with InferenceServer(model_dir, workers=2, env={**env, "WORKER_PRELOAD": "true"}) as server:
        shared = worker_memory_mib(server)["worker PSS"]
        before = run_load(server.url + "/score", jobs[:200], clients=8, seconds=60)
        victim = server.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        _wait_for(lambda: server.log().count(WORKER_BOOTED) >= 3 and len(server.worker_pids()) == 2, seconds=30)
        after = run_load(server.url + "/score", jobs[200:], clients=8, seconds=60)

    print(f"worker PSS: {separate} MiB each loading the model, {shared} MiB forked from a preloaded master")
    assert server.log().count(WORKER_READY) == 1  # init() ran once, in the master
    assert "runtime onnxruntime" in server.log()
    assert (before.errors, before.wrong_answers, before.requests) == (0, 0, 200)
    assert (after.errors, after.wrong_answers, after.requests) == (0, 0, 200)  # the replacement answers too
    assert shared < 0.8 * separate


def test_worker_preload_is_refused_where_the_fork_is_unsafe(azure_model_dir: Path) -> None:
    preload = {"AZUREML_MODEL_DIR": str(azure_model_dir), "WORKER_PRELOAD": "true"}

    with pytest.raises(SettingsError, match="torch does not survive that fork") as torch_runtime:
        load_predictor(Settings.from_env({**preload, "MODEL_RUNTIME": "torch"}))
    with pytest.raises(SettingsError, match="with 2 threads per worker: ONNX Runtime's thread pool"):
        load_predictor(Settings.from_env({**preload, "TORCH_NUM_THREADS": "2"}))

    assert "PyTorch serves this model because MODEL_RUNTIME=torch" in str(torch_runtime.value)
    assert load_predictor(Settings.from_env({**preload, "TORCH_NUM_THREADS": "1"})).engine.name == "onnxruntime"


def test_a_model_past_the_scoring_timeout_gets_a_clear_5xx_and_the_worker_recovers(faulty_model_dir) -> None:
    model_dir, env = faulty_model_dir

    with InferenceServer(model_dir, env={**env, "SCORING_TIMEOUT_MS": "500"}) as server:
        started = time.monotonic()
        slow = post_json(server.url + "/score", {"data": SLEEP_ROW})
        elapsed = time.monotonic() - started
        normal = request(server.url + "/score", SAMPLE_REQUEST.read_bytes(), method="POST")

    assert slow.status == 500
    assert "Scoring timeout after 500 ms" in slow.json()["message"]
    assert elapsed < 2.5  # cut off at the timeout, not after the model's 3 s sleep
    assert (normal.status, normal.json()["predictions"]) == (200, SAMPLE_LABELS)


def test_a_model_that_raises_gets_a_bare_500_logged_with_its_request_id(faulty_model_dir) -> None:
    model_dir, env = faulty_model_dir

    with InferenceServer(model_dir, env=env) as server:
        failed = post_json(server.url + "/score", {"data": RAISE_ROW}, headers={"x-request-id": "fault-1"})
        normal = request(server.url + "/score", SAMPLE_REQUEST.read_bytes(), method="POST")
        log = server.log()

    assert failed.status == 500
    assert "injected" not in failed.body.decode() and "Traceback" not in failed.body.decode()
    assert failed.headers["x-request-id"] == "fault-1"
    assert '"request_id":"fault-1"' in log and '"status":500' in log
    assert "RuntimeError: injected fault" in log  # the traceback is in the log, not the answer
    assert "POST /score 500" in log and '"POST /score HTTP/1.1" 500' in log  # a 5xx keeps the server's lines
    assert (normal.status, normal.json()["predictions"]) == (200, SAMPLE_LABELS)


def send_the_start_of(body: bytes, connection: socket.socket, sent: int = 20) -> None:
    """A POST /score that declares the whole body's length, then sends only its first ``sent`` bytes."""
    connection.sendall(
        b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body[:sent]
    )


def test_a_slow_sender_holds_one_worker_and_the_other_keeps_answering(served: InferenceServer) -> None:
    body = SAMPLE_REQUEST.read_bytes()
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as slow:
        send_the_start_of(body, slow)
        time.sleep(0.3)  # the sender stalls mid-body, holding one of the two workers
        replies = [request(served.url + "/score", body, method="POST", timeout=10) for _ in range(5)]
    # the sender hung up without finishing its body; the server carries on
    after = request(served.url + "/score", body, method="POST")

    assert [r.status for r in replies] == [200] * 5
    assert (after.status, after.json()["predictions"]) == (200, SAMPLE_LABELS)


def test_a_body_shorter_than_its_content_length_gets_a_400_and_the_worker_keeps_serving(
    served: InferenceServer,
) -> None:
    body = SAMPLE_REQUEST.read_bytes()
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as short:
        send_the_start_of(body, short)
        short.shutdown(socket.SHUT_WR)  # the body ends here, 20 bytes in; the answer can still come back
        answer = b""
        while piece := short.recv(65536):
            answer += piece
    after = request(served.url + "/score", body, method="POST")

    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b'"incomplete_body"' in answer and f"after 20 of the {len(body)} bytes".encode() in answer
    assert (after.status, after.json()["predictions"]) == (200, SAMPLE_LABELS)


BODY_TIMEOUT_S = 1.0
CLOSE_LINGER_S = 2.0  # after answering, gunicorn waits this long for a client that keeps its connection open


@pytest.fixture(scope="module")
def short_fused(azure_model_dir_for_module: Path):
    """A real server with 2 workers, BODY_TIMEOUT_S=1 and a decoding fault on Content-Type application/x-fault."""
    env = {"BODY_TIMEOUT_S": str(BODY_TIMEOUT_S)}
    entry_script = "tests/faulty_score.py"
    with InferenceServer(azure_model_dir_for_module, workers=2, env=env, entry_script=entry_script) as server:
        yield server


@pytest.fixture(scope="module")
def azure_model_dir_for_module(trained_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained folder laid out as Azure does, once for the module."""
    return lay_out_like_azure(trained_folder, tmp_path_factory.mktemp("azureml-models"))


def test_stalled_senders_on_every_worker_get_408_and_a_good_request_waits_only_the_body_timeout(
    short_fused: InferenceServer,
) -> None:
    body = SAMPLE_REQUEST.read_bytes()
    stalled = [socket.create_connection(("127.0.0.1", short_fused.port), timeout=10) for _ in range(2)]
    for connection, request_id in zip(stalled, ["stalled-1", "stalled-2"], strict=True):
        connection.sendall(
            f"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nx-request-id: {request_id}\r\n".encode()
            + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body[:20]
        )  # and nothing more: each holds one of the two workers, and never reads or closes
    time.sleep(0.2)

    started = time.monotonic()
    good = request(short_fused.url + "/score", body, method="POST", timeout=30)
    waited = time.monotonic() - started
    answers = [_read_all(connection) for connection in stalled]
    for connection in stalled:
        connection.close()

    print(f"a good request behind 2 stalled senders waited {waited:.2f} s (BODY_TIMEOUT_S={BODY_TIMEOUT_S})")
    assert (good.status, good.json()["predictions"]) == (200, SAMPLE_LABELS)
    assert waited < BODY_TIMEOUT_S + CLOSE_LINGER_S + 1.5  # not gunicorn's WORKER_TIMEOUT (300 s)
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b'"code": "body_timeout"' in answer and b"within 1 s (BODY_TIMEOUT_S)" in answer
    records = {r["request_id"]: r for r in score_records(short_fused.log())}
    assert [records[f"stalled-{i}"]["status"] for i in (1, 2)] == [408, 408]
    assert all(1000 <= records[f"stalled-{i}"]["parse_ms"] < 1500 for i in (1, 2))


def test_a_fault_in_decoding_gets_a_bare_500_and_one_score_line(short_fused: InferenceServer) -> None:
    failed = request(
        short_fused.url + "/score", b'{"data": []}', method="POST", content_type=FAULT, headers={"x-request-id": "f-1"}
    )
    mistake = request(short_fused.url + "/score", b"{", method="POST", headers={"x-request-id": "f-2"})
    normal = request(short_fused.url + "/score", SAMPLE_REQUEST.read_bytes(), method="POST")
    log = short_fused.log()

    assert failed.status == 500 and b"injected" not in failed.body
    assert (mistake.status, mistake.json()["code"]) == (400, "invalid_json")
    lines = [r for r in score_records(log) if r["request_id"] in ("f-1", "f-2")]
    assert lines == [
        {**lines[0], "request_id": "f-1", "status": 500, "error": "RuntimeError"},
        {**lines[1], "request_id": "f-2", "status": 400, "code": "invalid_json"},
    ]
    assert log.count("RuntimeError: injected fault in decoding") == 1  # the server's traceback, once
    assert log.count("Encountered Exception: Traceback") == 1  # and none for the client's mistake
    assert (normal.status, normal.json()["predictions"]) == (200, SAMPLE_LABELS)


def _read_all(connection: socket.socket) -> bytes:
    answer = b""
    while piece := connection.recv(65536):
        answer += piece
    return answer


def test_memory_stays_bounded_for_the_largest_allowed_request(served: InferenceServer) -> None:
    largest = {"data": [[16] * 64] * 1024}  # MAX_BATCH_ROWS rows of the longest values: about 200 kB of JSON
    before = {pid: peak_rss_kib(pid) for pid in served.worker_pids()}

    statuses = [post_json(served.url + "/score", largest).status for _ in range(20)]
    growth_mib = {pid: (peak_rss_kib(pid) - kib) / 1024 for pid, kib in before.items()}

    print(f"peak RSS growth per worker after 20 largest requests: {growth_mib} MiB; before {before} KiB")
    assert statuses == [200] * 20
    assert max(growth_mib.values()) < 64


def _after(delay: float, action) -> threading.Timer:
    thread = threading.Timer(delay, action)
    thread.start()
    return thread


def _wait_for(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {seconds} s")
