"""Model folders that lie: each one fails start-up with a message that names the folder, what was found and the
fix, whichever runtime would serve it; a folder never starts and then fails on requests. The whole table runs
through the scoring script's start-up in process, and one case of each kind stops a real server."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from harness.layout import lay_out_like_azure
from harness.server import InferenceServer, ServerExitedError
from model_arch.digits_cnn import DigitsCNN
from model_folder.manifest import MANIFEST_NAME, WEIGHTS_NAME, ModelFolderError
from serving.settings import Settings
from serving.startup import load_predictor


def edit_manifest(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def build(folder: Path) -> None:
        document = json.loads((folder / MANIFEST_NAME).read_text())
        change(document)
        (folder / MANIFEST_NAME).write_text(json.dumps(document))

    return build


def weights_beside_the_folder(folder: Path) -> None:
    shutil.copy(folder / WEIGHTS_NAME, folder.parent / "stolen.pt")
    edit_manifest(lambda d: d["weights"].update(file="../stolen.pt"))(folder)


def linked_out(name: str) -> Callable[[Path], None]:
    def build(folder: Path) -> None:
        outside = folder.parent.parent / f"outside-{name}"
        shutil.move(folder / name, outside)
        (folder / name).symlink_to(outside)

    return build


def swapped_weights(folder: Path) -> None:  # same shapes, other values; the manifest and ONNX export kept
    torch.save(DigitsCNN().state_dict(), folder / WEIGHTS_NAME)


def oversized_manifest(folder: Path) -> None:
    (folder / MANIFEST_NAME).write_text((folder / MANIFEST_NAME).read_text() + " " * 2_000_000)


LYING = [
    ("weights-outside-with-dotdot", weights_beside_the_folder, "must name a file inside the model folder"),
    ("weights-absolute-path", edit_manifest(lambda d: d["weights"].update(file="/etc/hostname")), "inside the model"),
    ("weights-linked-outside", linked_out(WEIGHTS_NAME), "leads outside the model folder"),
    ("onnx-linked-outside", linked_out("model.onnx"), "leads outside the model folder"),
    ("weights-swapped-export-kept", swapped_weights, "does not match its manifest: sha256 is"),
    (
        "fewer-labels-than-outputs",
        edit_manifest(lambda d: d["output"].update(labels=list(range(9)))),
        "but its output spec has 9 labels",
    ),
    ("string-minimum", edit_manifest(lambda d: d["input"].update(minimum="0")), "minimum must be a number or null"),
    ("negative-dimension", edit_manifest(lambda d: d["input"].update(shape=[1, -8, 8])), "positive dimensions"),
    ("enormous-row", edit_manifest(lambda d: d["input"].update(shape=[1, 100000, 100000])), "values per row"),
    ("unknown-field", edit_manifest(lambda d: d.update(weight={})), "unknown field(s) ['weight']"),
    ("checksum-not-hex", edit_manifest(lambda d: d["weights"].update(sha256="abc")), "64 lowercase hex digits"),
    ("labels-not-a-list", edit_manifest(lambda d: d["output"].update(labels="0123456789")), "labels must be a list"),
    ("manifest-of-megabytes", oversized_manifest, "a manifest is a few KB"),
]


ON_THE_REAL_SERVER = {"weights-outside-with-dotdot", "onnx-linked-outside", "weights-swapped-export-kept"}
ON_THE_REAL_SERVER |= {"fewer-labels-than-outputs", "string-minimum"}


@pytest.mark.parametrize(("build", "fragment"), [case[1:] for case in LYING], ids=[case[0] for case in LYING])
def test_a_lying_folder_fails_start_up_with_the_cause(
    trained_folder: Path, tmp_path: Path, build: Callable[[Path], None], fragment: str
) -> None:
    model_dir = lay_out_like_azure(trained_folder, tmp_path / "azureml-models")
    build(model_dir / "model")

    with pytest.raises(ModelFolderError) as caught:
        load_predictor(Settings.from_env({"AZUREML_MODEL_DIR": str(model_dir)}))

    assert fragment in str(caught.value)
    assert f"make doctor MODEL_DIR={model_dir}" in str(caught.value)  # the line every start-up failure ends with


@pytest.mark.parametrize(
    ("build", "fragment"),
    [case[1:] for case in LYING if case[0] in ON_THE_REAL_SERVER],
    ids=[case[0] for case in LYING if case[0] in ON_THE_REAL_SERVER],
)
@pytest.mark.server
def test_a_lying_folder_stops_the_real_server_at_start_up(
    trained_folder: Path, tmp_path: Path, build: Callable[[Path], None], fragment: str
) -> None:
    model_dir = lay_out_like_azure(trained_folder, tmp_path / "azureml-models")
    build(model_dir / "model")

    with pytest.raises(ServerExitedError) as caught, InferenceServer(model_dir, workers=1):
        pass

    assert caught.value.returncode != 0 and fragment in caught.value.log
