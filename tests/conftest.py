"""Shared fixtures: one demo model trained per test session, and model folders laid out as Azure lays them."""

from __future__ import annotations

import builtins
import shutil
from pathlib import Path

import hypothesis
import pytest
import torch
from azureml_inference_server_http.server import config as server_config
from azureml_inference_server_http.server.create_app import create

from harness.layout import lay_out_like_azure
from harness.server import InferenceServer
from model_arch.digits_cnn import DigitsCNN
from model_arch.manifest import WEIGHTS_NAME, read_manifest
from model_arch.model_folder import load_model
from model_arch.onnx_export import export_onnx
from model_arch.train import train

# Property tests check behaviour, not speed: a busy 2-core machine must not turn a slow example into a failure.
hypothesis.settings.register_profile("template", deadline=None)
hypothesis.settings.load_profile("template")

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_REQUEST = REPO_ROOT / "deploy" / "sample-request.json"
SAMPLE_LABELS = [3, 7]  # the true digits of the two images in deploy/sample-request.json


@pytest.fixture(scope="session")
def trained_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model, really trained (a few seconds), as training writes it: manifest.json, model.pt and the
    ONNX export (model.onnx), so the default runtime (MODEL_RUNTIME=auto) serves it with ONNX Runtime."""
    folder = tmp_path_factory.mktemp("trained") / "model"
    train(folder)
    export_onnx(folder)
    return folder


@pytest.fixture(scope="session")
def trained_model(trained_folder: Path) -> torch.nn.Module:
    """The trained demo model, loaded from its folder, in eval mode on the CPU."""
    manifest = read_manifest(trained_folder)
    return load_model(manifest, trained_folder / manifest.weights_file, torch.device("cpu"))


@pytest.fixture
def model_folder(trained_folder: Path, tmp_path: Path) -> Path:
    """A private copy of the trained model folder that a test may modify."""
    return Path(shutil.copytree(trained_folder, tmp_path / "model"))


@pytest.fixture
def azure_model_dir(trained_folder: Path, tmp_path: Path) -> Path:
    """AZUREML_MODEL_DIR for the trained folder registered as a folder: <dir>/model/{manifest.json,model.pt}."""
    return lay_out_like_azure(trained_folder, tmp_path / "azureml-models")


@pytest.fixture
def bare_outputs_dir(trained_folder: Path, tmp_path: Path) -> Path:
    """AZUREML_MODEL_DIR for a job that only did torch.save(model.state_dict(), "outputs/model.pt")."""
    model_dir = tmp_path / "azureml-models" / "digits-cnn" / "1"
    (model_dir / "outputs").mkdir(parents=True)
    state_dict = torch.load(trained_folder / WEIGHTS_NAME, weights_only=True)
    model = DigitsCNN()
    model.load_state_dict(state_dict)
    torch.save(model.state_dict(), model_dir / "outputs" / "model.pt")
    return model_dir


@pytest.fixture(scope="session")
def served(trained_folder: Path, tmp_path_factory: pytest.TempPathFactory):
    """The demo model laid out as Azure does, served by a real azmlinfsrv with 2 workers, shared by the session."""
    model_dir = lay_out_like_azure(trained_folder, tmp_path_factory.mktemp("azureml-models"))
    with InferenceServer(model_dir, workers=2) as server:
        yield server


def scoring_app_client(monkeypatch: pytest.MonkeyPatch, model_dir: Path, **env: str):
    """The inference server's own Flask app for score.py on ``model_dir`` (runs init()), as in a worker."""
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = server_config.config
    monkeypatch.setattr(config, "app_root", str(REPO_ROOT))
    monkeypatch.setattr(config, "entry_script", "score.py")
    monkeypatch.setattr(config, "azureml_model_dir", str(model_dir))
    monkeypatch.setattr(builtins, "print", builtins.print)  # the server redirects print(); undo afterwards
    return create().test_client()
