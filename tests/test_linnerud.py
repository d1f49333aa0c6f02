"""The second example, a tabular regression model with named features and three outputs, served end to end by the
same, unchanged score.py as the digits CNN."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.client import post_json, request
from harness.layout import lay_out_like_azure
from harness.server import InferenceServer
from model_arch.linnerud_mlp import FEATURES, TARGETS
from model_folder.manifest import read_manifest
from model_folder.weights import load_model
from serving import doctor
from serving.settings import Settings
from serving.startup import load_predictor
from tests.helpers import REPO_ROOT
from training.data import linnerud_split

pytestmark = [pytest.mark.server, pytest.mark.slow]


@pytest.fixture(scope="module")
def linnerud_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Linnerud MLP trained by the training command, as a job would: written to an outputs folder."""
    folder = tmp_path_factory.mktemp("linnerud") / "outputs"
    command = [sys.executable, "-m", "training.train", "--architecture", "linnerud_mlp", "--output-dir", str(folder)]
    subprocess.run(command, cwd=REPO_ROOT, check=True, timeout=300)
    return folder


@pytest.fixture(scope="module")
def expected(linnerud_folder: Path) -> np.ndarray:
    """The held-out rows' predictions, computed in process: (4, 3) Weight, Waist, Pulse."""
    manifest = read_manifest(linnerud_folder)
    model = load_model(manifest, linnerud_folder / manifest.weights_file, torch.device("cpu"))
    with torch.inference_mode():
        return model(torch.from_numpy(linnerud_split().x_test)).numpy()


def as_array(predictions: list[dict]) -> np.ndarray:
    return np.asarray([[row[name] for name in TARGETS] for row in predictions])


def test_every_request_form_is_answered_with_named_outputs(
    linnerud_folder: Path, expected: np.ndarray, tmp_path: Path
) -> None:
    rows = linnerud_split().x_test.astype(int).tolist()
    named = [dict(zip(FEATURES, row, strict=True)) for row in rows]
    shuffled = ["Jumps", "Chins", "Situps"]
    split_orient = {"columns": shuffled, "data": [[r["Jumps"], r["Chins"], r["Situps"]] for r in named]}
    v2 = {"inputs": [{"name": "exercises", "shape": [4, 3], "datatype": "INT32", "data": rows}]}
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(rows, dtype=np.float32))

    with InferenceServer(lay_out_like_azure(linnerud_folder, tmp_path)) as server:
        url = server.url + "/score"
        answers = [post_json(url, body).json()["predictions"] for body in
                   ({"data": rows}, {"data": named}, {"input_data": split_orient})]  # fmt: skip
        v2_answer = post_json(url, v2).json()
        binary = request(url, buffer.getvalue(), method="POST", content_type="application/x-npy",
                         headers={"Accept": "application/x-npy"})  # fmt: skip
        missing = post_json(url, {"data": [{"Chins": 1, "Situps": 2}]})
        info = request(url).json()

    for predictions in answers:
        assert list(predictions[0]) == list(TARGETS)
        np.testing.assert_allclose(as_array(predictions), expected, atol=1e-4)
    (v2_output,) = v2_answer["outputs"]
    assert v2_output["shape"] == [4, 3] and v2_output["name"] == "predictions"
    np.testing.assert_allclose(np.reshape(v2_output["data"], (4, 3)), expected, atol=1e-4)
    np.testing.assert_allclose(np.load(io.BytesIO(binary.body)), expected, atol=1e-5)
    assert (missing.status, missing.json()["code"]) == (422, "wrong_features")
    assert "lacks ['Jumps']" in missing.json()["message"]
    assert info["output"] == {"kind": "regression", "names": list(TARGETS)}
    assert info["input"]["names"] == list(FEATURES)


def test_a_bare_state_dict_serves_with_model_architecture_set(
    linnerud_folder: Path, expected: np.ndarray, tmp_path: Path
) -> None:
    model_dir = tmp_path / "azureml-models" / "linnerud" / "1"
    (model_dir / "outputs").mkdir(parents=True)
    state_dict = torch.load(linnerud_folder / "model.pt", weights_only=True)
    torch.save(state_dict, model_dir / "outputs" / "model.pt")  # what a training script without the manifest writes
    env = {"AZUREML_MODEL_DIR": str(model_dir), "MODEL_ARCHITECTURE": "linnerud_mlp"}

    predictor = load_predictor(Settings.from_env(env))
    ok, report = doctor.diagnose(str(model_dir), env)
    wrong, wrong_report = doctor.diagnose(str(model_dir), {"AZUREML_MODEL_DIR": str(model_dir)})

    batch = predictor.manifest.input.preprocess(linnerud_split().x_test)
    np.testing.assert_allclose(predictor.predict(batch).values, expected, atol=1e-4)
    assert ok, report
    assert "it fits ['linnerud_mlp'] at the default config (MODEL_ARCHITECTURE=linnerud_mlp)" in wrong_report
    assert (
        not wrong and "does not fit architecture 'digits_cnn'" in wrong_report and "MODEL_ARCHITECTURE" in wrong_report
    )
