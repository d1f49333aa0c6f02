"""The two runtimes: the ONNX export answers like the PyTorch weights, MODEL_RUNTIME picks between them, and an
export that is missing, altered or of other weights fails start-up with the fix."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.client import post_json, request
from harness.layout import lay_out_like_azure
from harness.server import InferenceServer
from model_arch.digits_cnn import INPUT_SPEC
from model_folder import onnx_export
from model_folder.engines import choose_runtime
from model_folder.manifest import (
    MANIFEST_NAME,
    WEIGHTS_NAME,
    ModelFolderError,
    read_manifest,
    sha256_of,
    write_manifest,
)
from model_folder.onnx_engine import OnnxEngine
from model_folder.onnx_export import ONNX_NAME, export_onnx
from model_folder.torch_engine import TorchEngine
from serving import doctor
from serving.settings import Settings
from serving.startup import load_predictor
from tests.helpers import REPO_ROOT
from training import train
from training.data import digits_split


def predictor_for(model_dir: Path, runtime: str = "auto"):
    env = {"AZUREML_MODEL_DIR": str(model_dir), "TORCH_NUM_THREADS": "1", "MODEL_RUNTIME": runtime}
    return load_predictor(Settings.from_env(env))


def held_out_batch() -> np.ndarray:
    return INPUT_SPEC.preprocess(digits_split().x_test)


def test_training_writes_an_export_the_manifest_records(trained_folder: Path) -> None:
    manifest = read_manifest(trained_folder)

    assert manifest.onnx is not None and manifest.onnx.file == ONNX_NAME
    assert manifest.onnx.sha256 == sha256_of(trained_folder / ONNX_NAME)
    assert 0 <= manifest.onnx.max_abs_diff <= 1e-4


def test_auto_serves_the_export_with_onnx_runtime_and_answers_like_torch(azure_model_dir: Path) -> None:
    fast, reference = predictor_for(azure_model_dir), predictor_for(azure_model_dir, "torch")
    batch = held_out_batch()

    assert isinstance(fast.engine, OnnxEngine) and isinstance(reference.engine, TorchEngine)
    assert fast.metadata()["runtime"] == "onnxruntime"
    answer, expected = fast.predict(batch), reference.predict(batch)
    assert answer.labels() == expected.labels()
    np.testing.assert_allclose(answer.values, expected.values, atol=1e-5)


def test_read_only_and_chunked_batches_go_through_onnx_runtime(azure_model_dir: Path) -> None:
    whole = predictor_for(azure_model_dir)
    batch = held_out_batch()[:100]
    view = batch.copy()
    view.flags.writeable = False  # as a view of an .npy request body is

    chunked = dataclasses.replace(whole, chunk_rows=7)

    np.testing.assert_array_equal(chunked.predict(view).values, whole.predict(batch).values)


def test_auto_serves_a_folder_without_an_export_with_torch(bare_outputs_dir: Path) -> None:
    assert isinstance(predictor_for(bare_outputs_dir).engine, TorchEngine)


def test_onnx_runtime_is_refused_with_the_reason_when_there_is_no_export(bare_outputs_dir: Path) -> None:
    with pytest.raises(ModelFolderError, match="MODEL_RUNTIME=onnx, but the model folder has no ONNX export") as err:
        predictor_for(bare_outputs_dir, "onnx")

    assert "python -m model_folder.onnx_export" in str(err.value)


def test_an_altered_export_fails_start_up(model_folder: Path, tmp_path: Path) -> None:
    data = bytearray((model_folder / ONNX_NAME).read_bytes())
    data[-20] ^= 0xFF
    (model_folder / ONNX_NAME).write_bytes(bytes(data))

    with pytest.raises(ModelFolderError, match="does not match its manifest"):
        predictor_for(lay_out_like_azure(model_folder, tmp_path / "azureml-models"))


def test_a_missing_export_fails_start_up_naming_it(model_folder: Path, tmp_path: Path) -> None:
    (model_folder / ONNX_NAME).unlink()

    with pytest.raises(ModelFolderError, match=r"names the ONNX export 'model\.onnx', which is not a file in") as err:
        predictor_for(lay_out_like_azure(model_folder, tmp_path / "azureml-models"))

    assert "MODEL_RUNTIME=torch" in str(err.value)


def test_an_export_of_other_weights_fails_start_up_or_the_doctor(model_folder: Path, tmp_path: Path) -> None:
    # Export a perturbed copy of the weights, then put that export (with its correct checksum) into the folder.
    other = Path(tmp_path / "other")
    other.mkdir()
    state_dict = torch.load(model_folder / WEIGHTS_NAME, weights_only=True)
    torch.save({k: v + 0.05 for k, v in state_dict.items()}, other / WEIGHTS_NAME)
    manifest = read_manifest(model_folder)
    write_manifest(other, dataclasses.replace(manifest, weights_sha256=sha256_of(other / WEIGHTS_NAME), onnx=None))
    exported = export_onnx(other)
    (model_folder / ONNX_NAME).write_bytes((other / ONNX_NAME).read_bytes())
    write_manifest(model_folder, dataclasses.replace(manifest, onnx=exported.onnx))

    model_dir = lay_out_like_azure(model_folder, tmp_path / "azureml-models")
    with pytest.raises(ModelFolderError, match="was exported from weights with sha256") as err:
        predictor_for(model_dir)
    assert "the export is not of these weights" in str(err.value) and "python -m model_folder.onnx_export" in str(
        err.value
    )

    # A manifest edited to claim otherwise passes the checksums at start-up; the doctor compares the answers.
    document = json.loads((model_folder / MANIFEST_NAME).read_text())
    document["onnx"]["weights_sha256"] = document["weights"]["sha256"]
    (model_folder / MANIFEST_NAME).write_text(json.dumps(document))
    model_dir = lay_out_like_azure(model_folder, tmp_path / "azureml-models-2")
    assert isinstance(predictor_for(model_dir).engine, OnnxEngine)
    ok, report = doctor.diagnose(str(model_dir), {})
    assert not ok and "model.onnx answers differently from model.pt" in report


@pytest.mark.parametrize("name", ["../model.onnx", "sub/model.onnx", ""])
def test_the_manifest_may_only_name_an_export_inside_the_folder(model_folder: Path, name: str) -> None:
    document = json.loads((model_folder / MANIFEST_NAME).read_text())
    document["onnx"]["file"] = name
    (model_folder / MANIFEST_NAME).write_text(json.dumps(document))

    with pytest.raises(ModelFolderError, match=r"onnx\.file must be a file name in the model folder"):
        read_manifest(model_folder)


def test_the_export_command_reports_a_folder_it_cannot_read(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "model_folder.onnx_export", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1
    assert f"error: {tmp_path / MANIFEST_NAME} does not exist" in result.stderr


def test_the_doctor_compares_the_export_with_the_weights(azure_model_dir: Path) -> None:
    ok, report = doctor.diagnose(str(azure_model_dir), {})

    assert ok and "with onnxruntime on cpu, from its ONNX export model.onnx." in report
    assert "onnx export: model.onnx (sha256 matches), exported from these weights" in report
    assert "The ONNX export answers like the weights: largest difference" in report


def test_a_gpu_instance_keeps_pytorch_unless_the_device_is_cpu(trained_folder: Path, tmp_path: Path) -> None:
    marker = tmp_path / "nvidiactl"
    marker.touch()
    manifest = read_manifest(trained_folder)

    def choice(**env: str):
        return choose_runtime(Settings.from_env(env).engine_options(threads=1), manifest, gpu_marker=marker)

    assert choice(SERVING_DEVICE="auto").runtime == "torch"
    assert "this instance has a GPU" in choice(SERVING_DEVICE="auto").reason
    assert choice(SERVING_DEVICE="cpu").runtime == "onnxruntime"
    assert "CPU only" in choice(SERVING_DEVICE="cuda").reason
    assert choice(SERVING_DEVICE="cpu", MODEL_RUNTIME="torch").reason == "MODEL_RUNTIME=torch"


def test_a_worker_serving_the_export_never_imports_torch(azure_model_dir: Path) -> None:
    script = (
        "import sys; from serving.settings import Settings; from serving.startup import load_predictor; "
        f"p = load_predictor(Settings.from_env({{'AZUREML_MODEL_DIR': {str(azure_model_dir)!r}}})); "
        "import score; "
        "print(p.engine.name, sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["onnxruntime", "[]"]


@pytest.mark.server
def test_both_runtimes_give_the_same_answers_over_http(served: InferenceServer, azure_model_dir: Path) -> None:
    rows = digits_split().x_test[:50].astype(int).tolist()
    with InferenceServer(azure_model_dir, workers=1, env={"MODEL_RUNTIME": "torch"}) as torch_server:
        expected = post_json(torch_server.url + "/score", {"data": rows}).json()
        assert request(torch_server.url + "/score").json()["runtime"] == "torch"

    answer = post_json(served.url + "/score", {"data": rows}).json()

    assert request(served.url + "/score").json()["runtime"] == "onnxruntime"
    assert answer["predictions"] == expected["predictions"]
    np.testing.assert_allclose(answer["probabilities"], expected["probabilities"], atol=1e-5)


def test_training_can_skip_the_export(tmp_path: Path) -> None:
    train.main(["--output-dir", str(tmp_path / "model"), "--epochs", "1", "--no-onnx"])

    assert read_manifest(tmp_path / "model").onnx is None
    assert not (tmp_path / "model" / ONNX_NAME).exists()


def test_a_failed_export_leaves_training_successful_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(folder):
        raise ModelFolderError("the export differs from the PyTorch model by 3.00e-01")

    monkeypatch.setattr(onnx_export, "export_onnx", refuse)

    onnx_export.add_onnx_export(tmp_path)

    assert "no ONNX export, the folder serves with PyTorch: the export differs" in caplog.text
