"""score.py under a real ``azmlinfsrv`` process on a free loopback port, as ``make serve`` runs it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harness.client import post_json, request
from harness.server import InferenceServer
from tests.bad_requests import cases
from tests.helpers import SAMPLE_LABELS, SAMPLE_REQUEST

pytestmark = pytest.mark.server


def test_the_real_server_answers_the_sample_request(served: InferenceServer) -> None:
    reply = request(served.url + "/score", SAMPLE_REQUEST.read_bytes(), method="POST")

    assert reply.status == 200
    assert reply.json()["predictions"] == SAMPLE_LABELS
    assert reply.headers["x-request-id"]


def test_the_real_server_echoes_the_callers_request_id_and_logs_it(served: InferenceServer) -> None:
    sample = SAMPLE_REQUEST.read_bytes()
    good = request(served.url + "/score", sample, method="POST", headers={"x-request-id": "trace-42"})
    bad = request(served.url + "/score", b"[]", method="POST", headers={"x-request-id": "trace-43"})

    assert good.headers["x-request-id"] == "trace-42"
    assert bad.headers["x-request-id"] == "trace-43"
    records = {r["request_id"]: r for r in score_records(served.log())}
    assert records["trace-42"]["status"] == 200 and records["trace-42"]["rows"] == 2
    assert records["trace-42"]["protocol"] == "data"
    assert {"parse_ms", "model_ms", "render_ms"} <= set(records["trace-42"])
    assert (records["trace-43"]["status"], records["trace-43"]["code"]) == (400, "missing_data")
    assert records["trace-43"]["bytes"] == len(bad.body)
    assert records["trace-42"]["bytes"] == len(good.body)
    # One line per scored request: the server's access lines for it (azmlinfsrv's, gunicorn's) and its
    # "run() output is HTTP Response" are dropped; its lines for other requests stay.
    assert request(served.url + "/score").status == 200
    deadline = time.monotonic() + 5  # gunicorn writes its access line after it has sent the answer
    while '"GET /score HTTP/1.1" 200' not in served.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = served.log()
    assert "POST /score 200" not in log and '"POST /score HTTP/1.1" 200' not in log
    assert "run() output is HTTP Response" not in log
    assert "GET /score 200" in log and '"GET /score HTTP/1.1" 200' in log


def score_records(log: str) -> list[dict]:
    """The structured per-request lines ("... serving.http - score {json}") in a server log."""
    return [json.loads(line.split(" - score ", 1)[1]) for line in log.splitlines() if " - score {" in line]


def test_the_real_server_answers_mistakes_with_json_4xx_and_keeps_serving(served: InferenceServer) -> None:
    for body, status, code in [
        (b"{", 400, "invalid_json"),
        (json.dumps({"data": [[1, 2, 3]]}).encode(), 422, "wrong_row_shape"),
        (json.dumps({"data": [[99] * 64]}).encode(), 422, "out_of_range"),
    ]:
        reply = request(served.url + "/score", body, method="POST")
        assert (reply.status, reply.json()["code"]) == (status, code)

    assert post_json(served.url + "/score", json.loads(SAMPLE_REQUEST.read_text())).status == 200


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "code", "fragment"),
    [case[1:] for case in cases() if case[4] != "batch_too_large"],  # the server's limit is 1024, not 4
    ids=[case[0] for case in cases() if case[4] != "batch_too_large"],
)
def test_every_malformed_request_gets_its_4xx_and_the_next_request_is_answered(
    served: InferenceServer, raw: bytes, content_type: str, status: int, code: str, fragment: str
) -> None:
    bad = request(served.url + "/score", raw, method="POST", content_type=content_type)
    good = request(served.url + "/score", SAMPLE_REQUEST.read_bytes(), method="POST")

    assert (bad.status, bad.json()["code"]) == (status, code)
    assert fragment in bad.json()["message"]
    assert bad.headers["x-request-id"] and bad.headers["x-model-version"]
    assert (good.status, good.json()["predictions"]) == (200, SAMPLE_LABELS)


def test_limits_are_enforced_by_the_real_server(served: InferenceServer) -> None:
    too_many_rows = {"data": [[0] * 64] * 1025}
    limit = request(served.url + "/score").json()["request"]["max_body_bytes"]  # 20 MB: the digits take images
    too_many_bytes = b'{"data": [[' + b"0, " * (limit // 3) + b"0]]}"

    rows_reply = post_json(served.url + "/score", too_many_rows)
    bytes_reply = request(served.url + "/score", too_many_bytes, method="POST")
    put_reply = request(served.url + "/score", b"{}", method="PUT")

    assert (rows_reply.status, rows_reply.json()["code"]) == (413, "batch_too_large")
    assert (bytes_reply.status, bytes_reply.json()["code"]) == (413, "body_too_large")
    assert f"at most {limit} (MAX_BODY_BYTES)" in bytes_reply.json()["message"] and limit == 20_000_000
    assert put_reply.status == 405  # answered by the server itself, before score.py
    assert post_json(served.url + "/score", json.loads(SAMPLE_REQUEST.read_text())).status == 200


def test_the_real_server_listens_on_loopback_only(served: InferenceServer) -> None:
    log = served.log()

    assert f"Listening at: http://127.0.0.1:{served.port}" in log
    assert "0.0.0.0" not in log.split("Listening at:")[1].splitlines()[0]


def test_every_worker_logs_its_start_up(served: InferenceServer) -> None:
    log = served.log()

    assert log.count("model ready:") == 2
    assert "runtime onnxruntime (model.onnx) (the model folder has an ONNX export" in log
    assert "served on the CPU) on cpu" in log


def test_a_jobs_bare_outputs_folder_is_served(bare_outputs_dir: Path) -> None:
    with InferenceServer(bare_outputs_dir) as server:
        reply = request(server.url + "/score", SAMPLE_REQUEST.read_bytes(), method="POST")

    assert reply.status == 200
    assert reply.json()["predictions"] == SAMPLE_LABELS
    assert "no manifest: default config" in server.log()


@pytest.mark.parametrize("layout", ["empty", "missing"])
def test_a_broken_model_dir_makes_the_server_exit_with_the_fix_in_its_log(tmp_path: Path, layout: str) -> None:
    model_dir = tmp_path / "azureml-models" / "digits-cnn" / "1"
    if layout == "empty":
        model_dir.mkdir(parents=True)
    server = InferenceServer(model_dir)

    returncode = server.wait_for_exit(timeout=60)

    log = server.log()
    assert returncode != 0
    assert "User's init function failed" in log
    assert f"AZUREML_MODEL_DIR={model_dir}" in log
    if layout == "empty":
        assert "or set MODEL_PATH to the file or folder" in log
        assert "that path does not exist in a deployment" in log
    else:
        assert "is not a folder (it does not exist). Check the deployment's `model:` setting" in log


def test_worker_preload_with_torch_stops_the_server_with_the_reason(azure_model_dir: Path) -> None:
    server = InferenceServer(azure_model_dir, env={"WORKER_PRELOAD": "true", "MODEL_RUNTIME": "torch"})

    assert server.wait_for_exit(timeout=60) != 0
    assert "torch does not survive that fork" in server.log()
