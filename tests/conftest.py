"""Shared fixtures: one demo model trained per test session, and model folders laid out as Azure lays them.

Helpers that are not fixtures live in ``tests/helpers.py``."""

from __future__ import annotations

import shutil
from pathlib import Path

import azureml_inference_server_http.server.create_app  # noqa: F401  (imported before the template's modules, below)
import hypothesis
import pytest
import torch

from harness.layout import lay_out_like_azure
from harness.server import InferenceServer
from model_arch.digits_cnn import DigitsCNN
from model_folder.manifest import WEIGHTS_NAME, read_manifest
from model_folder.onnx_export import export_onnx
from model_folder.weights import load_model
from tests.helpers import REPO_ROOT
from training.train import train

# The server's import loads its logging.json, which disables every logger that exists by then: the template's
# loggers (training.train's, ...) must be made after it, as they are in a real worker.

# Property tests check behaviour, not speed: a busy 2-core machine must not turn a slow example into a failure.
hypothesis.settings.register_profile("template", deadline=None)
hypothesis.settings.load_profile("template")


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


@pytest.fixture(scope="session")
def built_model(trained_folder: Path) -> Path:
    """build/model, which the deployment specs (online and batch) register; made as `make model` makes it when it is
    not there yet."""
    folder = REPO_ROOT / "build" / "model"
    if not (folder / "manifest.json").is_file():
        shutil.copytree(trained_folder, folder, dirs_exist_ok=True)
    return folder


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
