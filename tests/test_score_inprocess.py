"""score.py through the inference server's own Flask app, in process (no port): routes, codes, headers."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from model_arch.digits_cnn import DigitsCNN
from tests.helpers import SAMPLE_LABELS, SAMPLE_REQUEST, scoring_app_client
from tests.model_files import PAYLOAD_MARKER, REFUSED, build_case

ROW = [0] * 64


@pytest.fixture
def make_client(monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    """Build the server's app for score.py on a model dir (runs init()), as azmlinfsrv would in a worker."""
    return lambda model_dir, **env: scoring_app_client(monkeypatch, model_dir, **env)


def test_sample_request_is_answered_with_predictions_and_probabilities(make_client, azure_model_dir: Path) -> None:
    client = make_client(azure_model_dir)

    response = client.post("/score", data=SAMPLE_REQUEST.read_bytes(), content_type="application/json")

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert (response.headers["x-model-name"], response.headers["x-model-version"]) == ("digits-cnn", "1")
    answer = response.get_json()
    assert answer["predictions"] == SAMPLE_LABELS
    assert len(answer["probabilities"]) == 2
    for row, label in zip(answer["probabilities"], SAMPLE_LABELS, strict=True):
        assert len(row) == 10
        assert sum(row) == pytest.approx(1.0, abs=1e-5)
        assert max(row) == row[label]


def test_a_jobs_bare_state_dict_serves_without_a_manifest(make_client, bare_outputs_dir: Path) -> None:
    client = make_client(bare_outputs_dir)

    response = client.post("/score", data=SAMPLE_REQUEST.read_bytes(), content_type="application/json")

    assert response.status_code == 200
    assert response.get_json()["predictions"] == SAMPLE_LABELS


def test_nested_rows_are_answered_like_flat_rows(make_client, azure_model_dir: Path) -> None:
    client = make_client(azure_model_dir)
    flat = json.loads(SAMPLE_REQUEST.read_text())["data"]
    nested = [[row[i : i + 8] for i in range(0, 64, 8)] for row in flat]

    by_flat = client.post("/score", json={"data": flat}).get_json()
    by_nested = client.post("/score", json={"data": nested}).get_json()

    assert by_nested == by_flat


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code", "fragment"),
    [
        (b"not json", "application/json", 400, "invalid_json", "not valid JSON"),
        (b"data=1", "application/x-www-form-urlencoded", 415, "unsupported_content_type", "curl -d"),
        (json.dumps({"rows": [ROW]}).encode(), "application/json", 400, "missing_data", '"data" field'),
        (json.dumps({"data": [ROW[:10]]}).encode(), "application/json", 422, "wrong_row_shape", "64 numbers"),
        (
            json.dumps({"data": [["a"] * 64]}).encode(),
            "application/json",
            422,
            "non_numeric",
            "must be a number",
        ),
        (json.dumps({"data": []}).encode(), "application/json", 422, "empty_batch", "at least one row"),
    ],
    ids=["not-json", "form-encoded", "no-data", "wrong-row-length", "non-numeric", "empty-batch"],
)
def test_client_mistakes_get_json_4xx_and_the_next_request_still_works(
    make_client, azure_model_dir: Path, body: bytes, content_type: str, status: int, code: str, fragment: str
) -> None:
    client = make_client(azure_model_dir)

    bad = client.post("/score", data=body, content_type=content_type)
    good = client.post("/score", data=SAMPLE_REQUEST.read_bytes(), content_type="application/json")

    assert bad.status_code == status
    assert bad.get_json()["code"] == code
    assert fragment in bad.get_json()["message"]
    assert bad.headers["x-request-id"]
    assert good.status_code == 200
    assert good.get_json()["predictions"] == SAMPLE_LABELS


def test_max_batch_rows_setting_bounds_a_request(make_client, azure_model_dir: Path) -> None:
    client = make_client(azure_model_dir, MAX_BATCH_ROWS="3")

    response = client.post("/score", json={"data": [ROW] * 4})

    assert response.status_code == 413
    assert response.get_json()["code"] == "batch_too_large"


def test_get_score_describes_the_model_and_the_contract(make_client, azure_model_dir: Path) -> None:
    client = make_client(azure_model_dir)

    response = client.get("/score")

    assert response.status_code == 200
    info = response.get_json()
    assert (info["name"], info["version"], info["architecture"]) == ("digits-cnn", "1", "digits_cnn")
    # the digits model takes images: their forms, limits and pipeline are part of the contract
    assert info["request"]["content_types"][:2] == ["application/json", "application/x-npy"]
    assert "multipart/form-data" in info["request"]["content_types"]
    assert info["request"]["max_body_bytes"] == 20_000_000
    assert info["request"]["images"]["max_images"] == 64
    assert "resize to 8×8 (box)" in info["request"]["images"]["pipeline"]
    assert "top_k" in info["response"]
    assert info["input"]["shape"] == [1, 8, 8]
    assert info["output"]["labels"] == list(range(10))
    assert info["request"]["max_batch_rows"] == 1024
    assert "64 numbers" in info["request"]["row"]


def test_unsupported_methods_get_405(make_client, azure_model_dir: Path) -> None:
    client = make_client(azure_model_dir)

    assert client.put("/score", json={"data": [ROW]}).status_code == 405
    assert client.get("/").status_code == 200


def test_init_failure_exits_the_worker_with_code_3(make_client, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        make_client(tmp_path)

    assert caught.value.code == 3


def test_a_booby_trapped_pickle_never_runs_when_init_refuses_it(
    make_client, trained_folder: Path, tmp_path: Path
) -> None:
    case = next(c for c in REFUSED if c.name == "booby-trapped-pickle")
    model_dir, _ = build_case(case, DigitsCNN(), tmp_path)

    with pytest.raises(SystemExit) as caught:
        make_client(model_dir)

    assert caught.value.code == 3
    assert not (model_dir.parent / PAYLOAD_MARKER).exists()


def test_accept_npy_gets_the_probabilities_as_npy(make_client, azure_model_dir: Path) -> None:
    client = make_client(azure_model_dir)
    sample = SAMPLE_REQUEST.read_bytes()

    binary = client.post(
        "/score", data=sample, content_type="application/json", headers={"Accept": "application/x-npy"}
    )
    as_json = client.post("/score", data=sample, content_type="application/json").get_json()

    assert binary.status_code == 200
    assert binary.headers["Content-Type"] == "application/x-npy"
    probabilities = np.load(io.BytesIO(binary.get_data()), allow_pickle=False)
    assert probabilities.dtype == np.float32 and probabilities.shape == (2, 10)
    assert probabilities.argmax(axis=1).tolist() == as_json["predictions"] == SAMPLE_LABELS
    np.testing.assert_allclose(probabilities, as_json["probabilities"], atol=1e-7)
