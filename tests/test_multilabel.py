"""A multi-label model (sigmoid per label, a threshold) answered in every format: the digits CNN trained in seconds to
say which of three properties a digit has (even, five or more, prime), several at once, served by both runtimes."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from model_arch.digits_cnn import DigitsCNN, DigitsCNNConfig
from model_arch.spec import OutputSpec
from model_folder.onnx_export import export_onnx
from model_folder.weights import write_model_folder
from tests.helpers import REPO_ROOT, scoring_app_client
from training.data import digits_split

pytestmark = pytest.mark.slow  # trains
LABELS = ("even", "five_or_more", "prime")
PRIMES = {2, 3, 5, 7}


def properties(digits: np.ndarray) -> np.ndarray:
    return np.stack([digits % 2 == 0, digits >= 5, np.isin(digits, list(PRIMES))], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def multilabel_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    split = digits_split()
    torch.manual_seed(0)
    config = DigitsCNNConfig(num_classes=len(LABELS))
    model = DigitsCNN(config)
    x, y = (
        torch.from_numpy(split.x_train.reshape(-1, 1, 8, 8) / 16.0).float(),
        torch.from_numpy(properties(split.y_train)),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(25):
        for i in range(0, len(x), 64):
            optimizer.zero_grad()
            nn.functional.binary_cross_entropy_with_logits(model(x[i : i + 64]), y[i : i + 64]).backward()
            optimizer.step()
    folder = tmp_path_factory.mktemp("multilabel") / "model"
    output = OutputSpec(kind="multilabel", labels=LABELS, threshold=0.5)
    write_model_folder(model.eval(), folder, architecture="digits_cnn", config={"num_classes": 3}, output_spec=output)
    export_onnx(folder)
    return folder


@pytest.mark.parametrize("runtime", ["auto", "torch"])
def test_a_multilabel_model_answers_several_labels_per_row_in_every_format(
    multilabel_folder: Path, monkeypatch: pytest.MonkeyPatch, runtime: str
) -> None:
    split = digits_split()
    rows, truth = split.x_test[:200], properties(split.y_test[:200]).astype(bool)
    client = scoring_app_client(monkeypatch, multilabel_folder, MODEL_RUNTIME=runtime)

    answer = client.post("/score", json={"data": rows.astype(int).tolist()}).get_json()
    v2 = client.post("/score", json={"inputs": [{"name": "x", "shape": [200, 64], "datatype": "FP32",
                                                 "data": rows.reshape(-1).tolist()}]}).get_json()  # fmt: skip

    predicted = np.array([[label in row for label in LABELS] for row in answer["predictions"]])
    assert (predicted == truth).all(axis=1).mean() >= 0.9  # all three properties right for most digits
    assert any(len(row) >= 2 for row in answer["predictions"]) and any(not row for row in answer["predictions"])
    probabilities = np.asarray(answer["probabilities"])
    np.testing.assert_array_equal(predicted, probabilities >= 0.5)
    flags = next(t for t in v2["outputs"] if t["name"] == "predictions")
    assert (flags["shape"], flags["datatype"]) == ([200, 3], "BOOL")
    np.testing.assert_array_equal(np.asarray(flags["data"]).reshape(200, 3), predicted)


def test_a_multilabel_model_ranks_its_labels_with_top_k_and_reads_a_png(
    multilabel_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = scoring_app_client(monkeypatch, multilabel_folder)
    picture = base64.b64encode((REPO_ROOT / "deploy" / "sample-digit.png").read_bytes()).decode()

    plain = client.post("/score", json={"data": [picture]}).get_json()
    [ranked] = client.post("/score?top_k=2", json={"data": [picture]}).get_json()["predictions"]
    as_npy = client.post("/score", json={"data": [picture]}, headers={"Accept": "application/x-npy"})

    assert set(plain["predictions"][0]) == {"prime"}  # the picture is a 3: odd, under five, prime
    assert ranked[0]["label"] == "prime" and len(ranked) == 2
    np.testing.assert_allclose(np.load(io.BytesIO(as_npy.data)), plain["probabilities"], atol=1e-6)
