"""The model folder format: what training writes is what serving reads. Every other way of saving a model is
in the format matrix (tests/model_files.py, tests/test_formats.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from model_arch.digits_cnn import INPUT_SPEC, DigitsCNN, DigitsCNNConfig
from model_folder.formats import TrustPolicy
from model_folder.manifest import MANIFEST_NAME, WEIGHTS_NAME, Manifest, ModelFolderError, read_manifest, sha256_of
from model_folder.weights import load_model, manifest_for_bare_weights, write_model_folder
from training.data import digits_split

CPU = torch.device("cpu")


def predictions(model: nn.Module, rows: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(INPUT_SPEC.preprocess(rows))).argmax(dim=1).numpy()


def test_trained_folder_holds_manifest_state_dict_and_export(trained_folder: Path) -> None:
    manifest = json.loads((trained_folder / MANIFEST_NAME).read_text())

    assert sorted(p.name for p in trained_folder.iterdir()) == [MANIFEST_NAME, "model.onnx", WEIGHTS_NAME]
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
        ('{"format_version": 1}', "it lacks the field 'architecture'"),
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


def test_trusted_globals_are_named_exactly_and_only_the_missing_ones_are_reported(tmp_path: Path) -> None:
    weights = tmp_path / "model.pt"
    torch.save(DigitsCNN(), weights)
    needs = torch.serialization.get_unsafe_globals_in_checkpoint(str(weights))
    partial = TrustPolicy(pickle_globals=("model_arch.digits_cnn.DigitsCNN",))

    with pytest.raises(ModelFolderError) as caught:
        load_model(manifest_for_bare_weights(weights, "digits_cnn"), weights, CPU, partial)

    message = str(caught.value)
    assert "model_arch.digits_cnn.DigitsCNN" not in message.split("to load")[0]  # already trusted
    assert "torch.nn.modules.conv.Conv2d" in message.split("to load")[0]
    assert f"TRUSTED_PICKLE_GLOBALS={','.join(sorted(needs))}" in message
    loaded = load_model(
        manifest_for_bare_weights(weights, "digits_cnn"), weights, CPU, TrustPolicy(pickle_globals=tuple(needs))
    )
    assert isinstance(loaded, DigitsCNN) and not loaded.training
