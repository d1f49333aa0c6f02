"""Finding the model below AZUREML_MODEL_DIR in every layout Azure ML produces, or explaining why not."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from harness.layout import lay_out_like_azure
from model_arch.digits_cnn import DigitsCNN
from model_folder.locate import LISTING_LIMIT, ModelNotFoundError, is_weights_file, locate_model, model_identity
from model_folder.manifest import WEIGHTS_NAME, ModelFolderError

ARCH = "digits_cnn"


def test_locate_model_finds_a_registered_folder(azure_model_dir: Path) -> None:
    source = locate_model(str(azure_model_dir), None, ARCH)

    assert source.weights == azure_model_dir / "model" / WEIGHTS_NAME
    assert source.has_manifest
    assert source.manifest.weights_sha256 is not None


def test_locate_model_finds_a_single_file_registered_at_the_root(trained_folder: Path, tmp_path: Path) -> None:
    model_dir = lay_out_like_azure(trained_folder / WEIGHTS_NAME, tmp_path)

    source = locate_model(str(model_dir), None, ARCH)

    assert source.weights == model_dir / WEIGHTS_NAME
    assert not source.has_manifest
    assert source.manifest.architecture == ARCH


def test_locate_model_finds_a_jobs_bare_outputs_state_dict(bare_outputs_dir: Path) -> None:
    source = locate_model(str(bare_outputs_dir), None, ARCH)

    assert source.weights == bare_outputs_dir / "outputs" / "model.pt"
    assert not source.has_manifest


def test_locate_model_finds_a_model_folder_inside_outputs(trained_folder: Path, tmp_path: Path) -> None:
    shutil.copytree(trained_folder, tmp_path / "outputs" / "model")

    source = locate_model(str(tmp_path), None, ARCH)

    assert source.weights == tmp_path / "outputs" / "model" / WEIGHTS_NAME
    assert source.has_manifest


def test_locate_model_recognises_torch_files_by_content_not_suffix(trained_folder: Path, tmp_path: Path) -> None:
    shutil.copy(trained_folder / WEIGHTS_NAME, tmp_path / "weights")  # no suffix at all
    (tmp_path / "README.txt").write_text("not a model")

    source = locate_model(str(tmp_path), None, ARCH)

    assert source.weights == tmp_path / "weights"
    assert is_weights_file(tmp_path / "weights")
    assert not is_weights_file(tmp_path / "README.txt")


def test_locate_model_prefers_the_manifest_over_loose_weights(azure_model_dir: Path) -> None:
    torch.save(DigitsCNN().state_dict(), azure_model_dir / "model" / "epoch_3.pt")

    source = locate_model(str(azure_model_dir), None, ARCH)

    assert source.weights.name == WEIGHTS_NAME
    assert source.has_manifest


@pytest.mark.parametrize("relative", ["model/model.pt", "model/manifest.json", "model"])
def test_model_path_names_the_model_explicitly(azure_model_dir: Path, relative: str) -> None:
    shutil.copytree(azure_model_dir / "model", azure_model_dir / "other")  # would be ambiguous otherwise

    source = locate_model(str(azure_model_dir), relative, ARCH)

    assert source.weights == azure_model_dir / "model" / WEIGHTS_NAME
    assert source.has_manifest


def test_model_path_may_name_a_bare_file_beside_others(tmp_path: Path) -> None:
    for name in ("a.pt", "b.pt"):
        torch.save(DigitsCNN().state_dict(), tmp_path / name)

    source = locate_model(str(tmp_path), str(tmp_path / "b.pt"), ARCH)  # absolute paths work too

    assert source.weights == tmp_path / "b.pt"
    assert not source.has_manifest


def test_model_path_that_does_not_exist_lists_the_model_dir(azure_model_dir: Path) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        locate_model(str(azure_model_dir), "outputs/model.pt", ARCH)

    message = str(caught.value)
    assert "MODEL_PATH=outputs/model.pt does not exist" in message
    assert "model/manifest.json" in message


def test_two_model_folders_are_ambiguous(azure_model_dir: Path) -> None:
    shutil.copytree(azure_model_dir / "model", azure_model_dir / "model-v2")

    with pytest.raises(ModelNotFoundError) as caught:
        locate_model(str(azure_model_dir), None, ARCH)

    message = str(caught.value)
    assert "Found 2 model folders" in message
    assert "model/manifest.json" in message and "model-v2/manifest.json" in message
    assert "Set MODEL_PATH" in message


def test_two_weights_files_are_ambiguous(tmp_path: Path) -> None:
    (tmp_path / "outputs").mkdir()
    for name in ("best.pt", "last.pth"):
        torch.save(DigitsCNN().state_dict(), tmp_path / "outputs" / name)

    with pytest.raises(ModelNotFoundError, match=r"Found 2 weights files(.|\n)*outputs/best.pt(.|\n)*MODEL_PATH"):
        locate_model(str(tmp_path), None, ARCH)


def test_an_empty_model_dir_explains_the_fix(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")

    with pytest.raises(ModelNotFoundError) as caught:
        locate_model(str(tmp_path), None, ARCH)

    message = str(caught.value)
    assert f"AZUREML_MODEL_DIR={tmp_path}" in message
    assert "notes.txt (5 bytes)" in message
    assert "MODEL_PATH" in message
    assert "./outputs" in message and "does not exist in a deployment" in message


def test_the_listing_in_errors_is_bounded(tmp_path: Path) -> None:
    for i in range(LISTING_LIMIT + 20):
        (tmp_path / f"file{i:03}.txt").write_text("x")

    with pytest.raises(ModelNotFoundError) as caught:
        locate_model(str(tmp_path), None, ARCH)

    assert f"listing stops after {LISTING_LIMIT} entries" in str(caught.value)
    assert "file044.txt" not in str(caught.value)


@pytest.mark.parametrize(
    ("model_dir", "fragment"),
    [
        (None, "AZUREML_MODEL_DIR is not set"),
        ("/no/such/folder", r"=/no/such/folder is not a folder \(it does not exist\)"),
    ],
    ids=["unset", "missing"],
)
def test_a_missing_model_dir_is_named(model_dir: str | None, fragment: str) -> None:
    with pytest.raises(ModelNotFoundError, match=fragment):
        locate_model(model_dir, None, ARCH)


def test_a_manifest_naming_a_missing_weights_file_is_reported(azure_model_dir: Path) -> None:
    (azure_model_dir / "model" / WEIGHTS_NAME).unlink()

    with pytest.raises(ModelFolderError, match=r"names the weights file 'model.pt', which is not a file in"):
        locate_model(str(azure_model_dir), None, ARCH)


def test_hidden_folders_and_depth_are_not_searched(trained_folder: Path, tmp_path: Path) -> None:
    shutil.copytree(trained_folder, tmp_path / ".cache" / "model")
    shutil.copytree(trained_folder, tmp_path / "a" / "b" / "c" / "d" / "model")

    with pytest.raises(ModelNotFoundError, match="No model found"):
        locate_model(str(tmp_path), None, ARCH)


def test_model_identity_comes_from_the_azure_layout(azure_model_dir: Path) -> None:
    manifest = locate_model(str(azure_model_dir), None, ARCH).manifest

    assert model_identity(str(azure_model_dir), manifest) == ("digits-cnn", "1")
    assert model_identity("/somewhere/else", manifest) == ("digits_cnn", manifest.weights_sha256[:12])
