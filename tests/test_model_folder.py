"""The model folder format: what training writes is what serving reads, safely, or a clear error."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from model_arch.data import digits_split
from model_arch.digits_cnn import INPUT_SPEC, DigitsCNN, DigitsCNNConfig
from model_arch.model_folder import (
    MANIFEST_NAME,
    WEIGHTS_NAME,
    Manifest,
    ModelFolderError,
    load_model,
    manifest_for_bare_weights,
    read_manifest,
    sha256_of,
    write_model_folder,
)

CPU = torch.device("cpu")


def predictions(model: nn.Module, rows: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(INPUT_SPEC.preprocess(rows))).argmax(dim=1).numpy()


def test_trained_folder_holds_manifest_and_state_dict(trained_folder: Path) -> None:
    manifest = json.loads((trained_folder / MANIFEST_NAME).read_text())

    assert sorted(p.name for p in trained_folder.iterdir()) == [MANIFEST_NAME, WEIGHTS_NAME]
    assert manifest["architecture"] == "digits_cnn"
    assert manifest["weights"] == {
        "file": WEIGHTS_NAME,
        "format": "state_dict",
        "sha256": sha256_of(trained_folder / WEIGHTS_NAME),
    }
    assert manifest["torch_version"] == torch.__version__.split("+")[0]
    assert manifest["input"]["shape"] == [1, 8, 8]
    assert (manifest["input"]["minimum"], manifest["input"]["maximum"], manifest["input"]["divide"]) == (
        0,
        16,
        16,
    )
    assert manifest["output"]["labels"] == list(range(10))
    assert manifest["metrics"]["test_accuracy"] >= 0.95


def test_load_model_rebuilds_the_trained_model(trained_folder: Path) -> None:
    manifest = read_manifest(trained_folder)
    model = load_model(manifest, trained_folder / manifest.weights_file, CPU)
    split = digits_split()

    accuracy = float(np.mean(predictions(model, split.x_test) == split.y_test))

    assert not model.training
    assert accuracy == pytest.approx(manifest.metrics["test_accuracy"], abs=1e-4)


def test_write_model_folder_round_trips_a_non_default_config(tmp_path: Path) -> None:
    config = DigitsCNNConfig(channels=(4, 8), hidden=16)
    model = DigitsCNN(config).eval()

    manifest = write_model_folder(model, tmp_path, architecture="digits_cnn", config=config.__dict__)
    loaded = load_model(read_manifest(tmp_path), tmp_path / WEIGHTS_NAME, CPU)

    assert read_manifest(tmp_path) == manifest
    for key, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor)


def test_bare_weights_load_as_the_default_architecture(trained_folder: Path, tmp_path: Path) -> None:
    weights = tmp_path / "model.pth"
    weights.write_bytes((trained_folder / WEIGHTS_NAME).read_bytes())

    manifest = manifest_for_bare_weights(weights, "digits_cnn")
    model = load_model(manifest, weights, CPU)

    assert manifest.weights_sha256 is None
    assert manifest.input == INPUT_SPEC
    assert isinstance(model, DigitsCNN)


def test_load_model_refuses_weights_whose_checksum_differs(model_folder: Path) -> None:
    model = DigitsCNN()
    torch.save(model.state_dict(), model_folder / WEIGHTS_NAME)  # same shapes, different weights

    with pytest.raises(ModelFolderError, match="does not match its manifest: sha256 is"):
        load_model(read_manifest(model_folder), model_folder / WEIGHTS_NAME, CPU)


def test_load_model_reports_truncated_files(model_folder: Path) -> None:
    weights = model_folder / WEIGHTS_NAME
    weights.write_bytes(weights.read_bytes()[:5000])
    manifest = manifest_for_bare_weights(weights, "digits_cnn")

    with pytest.raises(ModelFolderError, match=r"could not be read as a torch\.save file.*truncated"):
        load_model(manifest, weights, CPU)


def test_load_model_refuses_a_pickled_module_without_running_it(tmp_path: Path) -> None:
    weights = tmp_path / "model.pt"
    marker = tmp_path / "payload-ran"
    torch.save(Payload(str(marker)), weights)

    with pytest.raises(ModelFolderError) as caught:
        load_model(manifest_for_bare_weights(weights, "digits_cnn"), weights, CPU)

    assert not marker.exists()
    assert re.search(r"needs \['(posix|os)\.system'\]", str(caught.value))
    assert "torch.save(model.state_dict()" in str(caught.value)


def test_load_model_reports_files_that_are_not_pytorch(tmp_path: Path) -> None:
    weights = tmp_path / "model.pt"
    weights.write_bytes(bytes(range(256)) * 8)

    with pytest.raises(ModelFolderError, match=r"could not be read as a torch\.save file"):
        load_model(manifest_for_bare_weights(weights, "digits_cnn"), weights, CPU)


def test_load_model_refuses_a_whole_pickled_module(tmp_path: Path) -> None:
    weights = tmp_path / "model.pt"
    torch.save(DigitsCNN(), weights)

    with pytest.raises(ModelFolderError, match=r"needs \[.*model_arch.digits_cnn.DigitsCNN.*whole pickled nn.Module"):
        load_model(manifest_for_bare_weights(weights, "digits_cnn"), weights, CPU)


@pytest.mark.parametrize("key", ["model_state_dict", "state_dict", "model"])
def test_load_model_unwraps_training_checkpoints(tmp_path: Path, key: str) -> None:
    model = DigitsCNN()
    weights = tmp_path / "checkpoint.pt"
    torch.save({key: model.state_dict(), "epoch": 3, "loss": 0.1, "optimizer_state_dict": {}}, weights)

    loaded = load_model(manifest_for_bare_weights(weights, "digits_cnn"), weights, CPU)

    assert torch.equal(loaded.state_dict()["features.0.weight"], model.state_dict()["features.0.weight"])


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod."])
def test_load_model_strips_wrapper_prefixes(tmp_path: Path, prefix: str) -> None:
    model = DigitsCNN()
    weights = tmp_path / "model.pt"
    torch.save({prefix + key: value for key, value in model.state_dict().items()}, weights)

    loaded = load_model(manifest_for_bare_weights(weights, "digits_cnn"), weights, CPU)

    assert torch.equal(loaded.state_dict()["classifier.4.bias"], model.state_dict()["classifier.4.bias"])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_load_model_serves_half_precision_weights_as_float32(tmp_path: Path, dtype: torch.dtype) -> None:
    model = DigitsCNN()
    weights = tmp_path / "model.pt"
    torch.save({key: value.to(dtype) for key, value in model.state_dict().items()}, weights)

    loaded = load_model(manifest_for_bare_weights(weights, "digits_cnn"), weights, CPU)

    assert {p.dtype for p in loaded.parameters()} == {torch.float32}


def test_load_model_lists_mismatched_keys_and_shapes(tmp_path: Path) -> None:
    state_dict = DigitsCNN(DigitsCNNConfig(hidden=32)).state_dict()
    state_dict["extra.weight"] = torch.zeros(1)
    del state_dict["features.0.bias"]
    weights = tmp_path / "model.pt"
    torch.save(state_dict, weights)

    with pytest.raises(ModelFolderError) as caught:
        load_model(manifest_for_bare_weights(weights, "digits_cnn"), weights, CPU)

    message = str(caught.value)
    assert "missing keys (1): features.0.bias" in message
    assert "unexpected keys (1): extra.weight" in message
    assert "size mismatch for classifier.1.weight: file has (32, 512), model expects (64, 512)" in message
    assert len(message.splitlines()) < 10  # short, unlike torch's own wall of text


def test_load_model_rejects_files_that_hold_no_state_dict(tmp_path: Path) -> None:
    weights = tmp_path / "model.pt"
    torch.save({"epoch": 3, "loss": 0.5}, weights)

    with pytest.raises(ModelFolderError, match=r"holds a dict with keys epoch, loss, not a state_dict"):
        load_model(manifest_for_bare_weights(weights, "digits_cnn"), weights, CPU)


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda m: m.update(architecture="resnet9000"), "unknown architecture 'resnet9000'"),
        (lambda m: m["config"].update(depth=3), "unknown field(s) ['depth']"),
    ],
    ids=["unknown-architecture", "unknown-config-field"],
)
def test_load_model_explains_manifests_it_cannot_rebuild(model_folder: Path, edit, fragment: str) -> None:
    data = json.loads((model_folder / MANIFEST_NAME).read_text())
    edit(data)

    with pytest.raises(ModelFolderError, match="cannot rebuild") as caught:
        load_model(Manifest.from_dict(data), model_folder / WEIGHTS_NAME, CPU)

    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{not json", "JSONDecodeError"),
        ('{"format_version": 1}', "KeyError"),
        ('{"format_version": 7}', "version 1"),
    ],
    ids=["not-json", "missing-fields", "future-version"],
)
def test_read_manifest_names_the_broken_file(model_folder: Path, text: str, fragment: str) -> None:
    (model_folder / MANIFEST_NAME).write_text(text)

    with pytest.raises(ModelFolderError, match="is not a valid model manifest") as caught:
        read_manifest(model_folder)

    assert str(model_folder / MANIFEST_NAME) in str(caught.value)
    assert fragment in str(caught.value)


class Payload:
    """A pickle that would create a file through os.system if it were ever unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_load_model_maps_gpu_saved_tensors_onto_a_cpu_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = DigitsCNN()
    weights = tmp_path / "model.pt"
    with monkeypatch.context() as patch:  # tag every storage as CUDA, exactly as saving on a GPU does
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(model.state_dict(), weights)
    if not torch.cuda.is_available():  # the file really is GPU-tagged: a plain load fails on this host
        with pytest.raises(RuntimeError, match="Attempting to deserialize object on a CUDA device"):
            torch.load(weights, weights_only=True)

    loaded = load_model(manifest_for_bare_weights(weights, "digits_cnn"), weights, CPU)

    assert {p.device for p in loaded.parameters()} == {CPU}
    assert torch.equal(loaded.state_dict()["features.0.weight"], model.state_dict()["features.0.weight"])
