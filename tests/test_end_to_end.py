"""From the training command to HTTP answers: train, package, lay out as Azure does, serve, score held-out data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.client import post_json
from harness.layout import lay_out_like_azure
from harness.server import InferenceServer
from model_folder.manifest import read_manifest
from model_folder.weights import load_model
from tests.helpers import REPO_ROOT
from training.data import digits_split

pytestmark = [pytest.mark.slow, pytest.mark.server]
BATCH = 100


def test_trained_model_scores_the_held_out_split_over_http(tmp_path: Path) -> None:
    model_folder = tmp_path / "outputs"
    subprocess.run(
        [sys.executable, "-m", "training.train", "--output-dir", str(model_folder)],
        cwd=REPO_ROOT,
        check=True,
        timeout=300,
    )
    model_dir = lay_out_like_azure(model_folder, tmp_path / "azureml-models")
    split = digits_split()  # the same seed as training: these rows were held out

    with InferenceServer(model_dir, workers=2) as server:
        predicted: list[int] = []
        for start in range(0, len(split.x_test), BATCH):
            rows = split.x_test[start : start + BATCH].astype(int).tolist()  # what a client sends: ints 0-16
            reply = post_json(server.url + "/score", {"data": rows})
            assert reply.status == 200, reply.body
            predicted += reply.json()["predictions"]

    accuracy = float(np.mean(np.asarray(predicted) == split.y_test))
    assert len(predicted) == len(split.y_test) == 360
    assert accuracy >= 0.95, f"held-out accuracy over HTTP was {accuracy:.4f}"

    # The server answers exactly what the model answers in process.
    manifest = read_manifest(model_folder)
    model = load_model(manifest, model_folder / manifest.weights_file, torch.device("cpu"))
    with torch.inference_mode():
        in_process = model(torch.from_numpy(manifest.input.preprocess(split.x_test))).argmax(dim=1).numpy()
    np.testing.assert_array_equal(np.asarray(predicted), in_process)
    assert accuracy == pytest.approx(manifest.metrics["test_accuracy"], abs=1e-4)
