"""Models written the way other people write them, served by the documented path with no edit in serving/: a
tutorial CNN (no constructor arguments, ``x.view``, a tuple output, per-channel normalisation), a tabular model
standardised per feature, a traced TorchScript file and an ONNX file described by specs alone, and a whole pickled
module from a training script, converted once and then served. Each is served on the real server."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness.client import post_json
from harness.layout import lay_out_like_azure
from harness.server import InferenceServer, model_name_for
from model_arch.architecture import Architecture
from model_arch.tutorial_cnn import Net
from model_arch.wine_mlp import FEATURES
from model_arch.wine_traced import ARCHITECTURE as WINE_TRACED
from model_folder.manifest import ModelFolderError, read_manifest
from model_folder.weights import load_model, write_model_folder
from serving import doctor
from serving.settings import Settings
from serving.startup import load_predictor
from tests.helpers import REPO_ROOT
from training.data import digits_split, wine_split
from training.train import train_tutorial_cnn, train_wine

pytestmark = [pytest.mark.server, pytest.mark.slow]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tutorial_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tutorial CNN trained on the digits (its per-channel mean and std in the manifest), with its ONNX export."""
    from model_folder.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("tutorial") / "model"
    train_tutorial_cnn(folder, epochs=15)
    export_onnx(folder)
    return folder


@pytest.fixture(scope="module")
def wine_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wine classifier, standardised per feature with statistics fitted in training."""
    folder = tmp_path_factory.mktemp("wine") / "model"
    train_wine(folder)
    return folder


def expected_answer(folder: Path, rows: np.ndarray) -> tuple[list, np.ndarray]:
    """(labels, probabilities) computed in process from the folder's own spec and weights."""
    manifest = read_manifest(folder)
    model = load_model(manifest, folder / manifest.weights_file, CPU)
    with torch.inference_mode():
        output = model(torch.from_numpy(manifest.input.preprocess(rows)))
    logits = output[0] if isinstance(output, tuple) else output
    probabilities = torch.softmax(logits, dim=1).numpy()
    return [manifest.output.labels[i] for i in probabilities.argmax(1)], probabilities


def test_a_tutorial_cnn_is_served_as_pasted_by_both_runtimes(tutorial_folder: Path, tmp_path: Path) -> None:
    split = digits_split()
    rows = split.x_test[:100]
    labels, probabilities = expected_answer(tutorial_folder, rows)
    model_dir = lay_out_like_azure(tutorial_folder, tmp_path, "tutorial-cnn")

    for runtime in ("auto", "torch"):
        with InferenceServer(model_dir, workers=1, env={"MODEL_RUNTIME": runtime}) as server:
            answer = post_json(server.url + "/score", {"data": rows.astype(int).tolist()}).json()
            log = server.log()
        assert answer["predictions"] == labels, runtime
        np.testing.assert_allclose(answer["probabilities"], probabilities, atol=1e-5)
        assert np.mean(np.asarray(answer["predictions"]) == split.y_test[:100]) >= 0.9
        if runtime == "torch":  # x.view cannot run channels-last: the check at start-up keeps the default layout
            assert "channels-last off" in log and "view size is not compatible" in log


def test_channels_last_on_names_the_view_and_the_fix(tutorial_folder: Path) -> None:
    env = {"AZUREML_MODEL_DIR": str(tutorial_folder), "MODEL_RUNTIME": "torch", "CHANNELS_LAST": "on"}

    with pytest.raises(ModelFolderError) as caught:
        load_predictor(Settings.from_env(env))

    assert "CHANNELS_LAST=on, but" in str(caught.value) and "x.reshape(...) or x.flatten(1)" in str(caught.value)
    ok, report = doctor.diagnose(str(tutorial_folder), {**env, "CHANNELS_LAST": "auto"})
    assert ok, report


def test_a_tuple_output_without_select_names_the_outputs_and_the_fix(tutorial_folder: Path, tmp_path: Path) -> None:
    manifest = read_manifest(tutorial_folder)
    model = load_model(manifest, tutorial_folder / manifest.weights_file, CPU)
    unselected = dataclasses.replace(manifest.output, select=None)
    write_model_folder(model, tmp_path / "model", architecture="tutorial_cnn", config={}, output_spec=unselected)

    with pytest.raises(ModelFolderError) as caught:
        load_predictor(Settings.from_env({"AZUREML_MODEL_DIR": str(tmp_path), "MODEL_RUNTIME": "torch"}))

    message = str(caught.value)
    assert "forward returned a tuple of 2: (Tensor(1, 10), Tensor(1, 64))" in message
    assert "OutputSpec(..., select=0)" in message


def test_per_feature_standardisation_from_training_is_applied_in_serving(wine_folder: Path, tmp_path: Path) -> None:
    split = wine_split()
    manifest = read_manifest(wine_folder)
    labels, probabilities = expected_answer(wine_folder, split.x_test)
    named_rows = [dict(zip(FEATURES, row.tolist(), strict=True)) for row in split.x_test]

    with InferenceServer(lay_out_like_azure(wine_folder, tmp_path, "wine"), workers=1) as server:
        by_position = post_json(server.url + "/score", {"data": split.x_test.tolist()}).json()
        by_name = post_json(server.url + "/score", {"data": named_rows}).json()

    np.testing.assert_allclose(manifest.input.subtract, split.x_train.mean(0), rtol=1e-5)
    assert len(manifest.input.divide) == len(FEATURES)
    assert by_position["predictions"] == by_name["predictions"] == labels
    np.testing.assert_allclose(by_position["probabilities"], probabilities, atol=1e-5)
    assert np.mean(np.asarray([int(p[-1]) for p in labels]) == split.y_test) >= 0.9


class Standardised(nn.Module):
    """A traced file carries its own preprocessing: what people export when they ship one file."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


@pytest.fixture(scope="module")
def wine_program(wine_folder: Path) -> Standardised:
    manifest = read_manifest(wine_folder)
    model = load_model(manifest, wine_folder / manifest.weights_file, CPU)
    return Standardised(model, list(manifest.input.subtract), list(manifest.input.divide)).eval()


def program_answer(program: nn.Module, rows: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return torch.softmax(program(torch.from_numpy(rows)), dim=1).numpy()


def test_a_traced_torchscript_file_is_served_with_a_spec_only_architecture(
    wine_program: Standardised, tmp_path: Path
) -> None:
    rows = wine_split().x_test
    model_dir = tmp_path / "azureml-models" / "wine" / "1"
    (model_dir / "outputs").mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's own deprecation notices
        torch.jit.save(
            torch.jit.trace(wine_program, torch.zeros(2, len(FEATURES))), str(model_dir / "outputs" / "x.pt")
        )
    env = {"ALLOW_CODE_FORMATS": "torchscript", "MODEL_ARCHITECTURE": WINE_TRACED.name}

    with pytest.raises(ModelFolderError, match="spec-only architecture"):  # without the specs: refused, with the fix
        load_predictor(Settings.from_env({"AZUREML_MODEL_DIR": str(model_dir), "ALLOW_CODE_FORMATS": "torchscript"}))
    with InferenceServer(model_dir, workers=1, env=env) as server:
        answer = post_json(server.url + "/score", {"data": rows.tolist()}).json()

    np.testing.assert_allclose(answer["probabilities"], program_answer(wine_program, rows), atol=1e-5)


def test_an_onnx_file_is_served_with_a_spec_only_architecture(wine_program: Standardised, tmp_path: Path) -> None:
    rows = wine_split().x_test
    model_dir = tmp_path / "azureml-models" / "wine-onnx" / "1"
    model_dir.mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wine_program,
            (torch.zeros(2, len(FEATURES)),),
            str(model_dir / "wine.onnx"),
            dynamo=True,
            dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
            external_data=False,
        )

    with InferenceServer(model_dir, workers=1, env={"MODEL_ARCHITECTURE": WINE_TRACED.name}) as server:
        answer = post_json(server.url + "/score", {"data": rows.tolist()}).json()

    np.testing.assert_allclose(answer["probabilities"], program_answer(wine_program, rows), atol=1e-5)


WHOLE_PICKLE_SCRIPT = """
import sys, torch
import torch.nn.functional as F
from torch import nn

class Net(nn.Module):  # defined in the training script itself, as tutorials do
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(32 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 32 * 4 * 4)
        features = F.relu(self.fc1(x))
        return self.fc2(features), features

torch.manual_seed(0)
model = Net().eval()
torch.save(model, sys.argv[1], _use_new_zipfile_serialization=False)  # the format torch wrote before 1.6
with torch.inference_mode():  # what this model answers, for the rows the test will send
    rows = torch.load(sys.argv[2])
    torch.save(torch.softmax(model(rows)[0], dim=1), sys.argv[3])
"""


def test_a_whole_pickle_from_a_training_script_is_refused_with_the_converter_then_served(tmp_path: Path) -> None:
    model_dir = tmp_path / "azureml-models" / "old" / "1"
    (model_dir / "outputs").mkdir(parents=True)
    whole = model_dir / "outputs" / "model.pth"
    rows = digits_split().x_test[:20]
    torch.save(torch.from_numpy(rows.reshape(-1, 1, 8, 8)), tmp_path / "rows.pt")  # the spec's default: no scaling
    script = [sys.executable, "-c", WHOLE_PICKLE_SCRIPT, str(whole), str(tmp_path / "rows.pt"), str(tmp_path / "p.pt")]
    saved = subprocess.run(script, capture_output=True, text=True)
    assert saved.returncode == 0, saved.stderr

    with pytest.raises(ModelFolderError) as caught:
        load_predictor(Settings.from_env({"AZUREML_MODEL_DIR": str(model_dir), "MODEL_ARCHITECTURE": "tutorial_cnn"}))
    message = str(caught.value)
    assert (
        "whole pickled nn.Module" in message and "__main__.Net" in message and "torch.nn.modules.conv.Conv2d" in message
    )
    assert "python -m model_folder.convert" in message and "TRUSTED_PICKLE_GLOBALS cannot help" in message
    assert "truncated" not in message and "\x1b[" not in message
    report = subprocess.run(
        [sys.executable, "-m", "serving.doctor", str(model_dir)], cwd=REPO_ROOT, capture_output=True, text=True
    ).stdout
    assert "safe: no, unpickling it runs code (a whole pickled nn.Module)" in report
    assert "safe: tensors" not in report and "\x1b[" not in report

    converted = tmp_path / "converted"
    command = [sys.executable, "-m", "model_folder.convert", str(whole), "--architecture", "tutorial_cnn"]
    result = subprocess.run(
        [*command, "--output-dir", str(converted), "--trusted"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert (converted / "model.onnx").is_file() and f"make serve MODEL_DIR={converted}" in result.stdout

    with InferenceServer(lay_out_like_azure(converted, tmp_path / "served", "converted"), workers=1) as server:
        answer = post_json(server.url + "/score", {"data": rows.astype(int).tolist()}).json()
    expected = torch.load(tmp_path / "p.pt", weights_only=True).numpy()  # what the original module answered
    np.testing.assert_allclose(answer["probabilities"], expected, atol=1e-5)


def test_the_converter_refuses_to_run_without_the_word_trusted(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "model_folder.convert", "x.pt", "--architecture", "tutorial_cnn", "--output-dir", "o"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )

    assert result.returncode == 2 and "--trusted" in result.stderr and not (tmp_path / "o").exists()


class NeedsArguments(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width, 2)


def test_a_pasted_class_is_built_from_its_own_constructor_arguments() -> None:
    from model_arch.registry import get_architecture

    assert isinstance(get_architecture("tutorial_cnn").build({}), Net)  # no arguments at all
    assert get_architecture("wine_mlp").build({"hidden": 8}).net[0].out_features == 8
    needs = Architecture("needs", NeedsArguments, WINE_TRACED.input_spec, WINE_TRACED.output_spec)
    with pytest.raises(ValueError, match=r"lacks required \['width'\]"):
        needs.build({})
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['depth'\]"):
        needs.build({"width": 3, "depth": 2})
    assert needs.build({"width": 3}).linear.in_features == 3


def test_the_doctor_reports_a_class_it_cannot_build_instead_of_crashing(
    tutorial_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "outputs").mkdir()
    torch.save(torch.load(tutorial_folder / "model.pt", weights_only=True), tmp_path / "outputs" / "model.pt")
    needs = Architecture("needs", NeedsArguments, WINE_TRACED.input_spec, WINE_TRACED.output_spec)
    monkeypatch.setitem(doctor.ARCHITECTURES, "needs", needs)

    ok, report = doctor.diagnose(str(tmp_path), {"MODEL_ARCHITECTURE": "tutorial_cnn"})

    assert ok, report
    assert "it fits ['tutorial_cnn']" in report and "cannot be built at their default config" in report


def test_serving_your_own_folder_never_trains_into_it() -> None:
    def make(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["make", "-n", *args], cwd=REPO_ROOT, capture_output=True, text=True)

    yours = make("serve", "MODEL_DIR=/data/my-model")
    demo = make("serve")

    assert yours.returncode == 0 and "training.train" not in yours.stdout
    assert "harness.server --model /data/my-model" in yours.stdout and "--name" not in yours.stdout
    assert "--name digits-cnn" in demo.stdout
    assert "MODEL is not a setting" in make("serve", "MODEL=/data/my-model").stderr
    assert model_name_for(Path("/data/my-model")) == "my-model" and model_name_for(Path("/x/net v2.pt")) == "net-v2"
