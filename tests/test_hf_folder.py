"""A Hugging Face save_pretrained folder served as it was written: rebuilt from config.json by transformers' own
classes for allow-listed types and tasks, labels from id2label, safetensors or a pytorch_model.bin through the safe
loader, the ONNX export checked against the weights, and a base encoder answered as normalised embeddings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model_folder.hf_folder import manifest_for_transformers_folder
from model_folder.locate import locate_model
from model_folder.manifest import MANIFEST_NAME, ModelFolderError, read_manifest
from model_folder.onnx_export import TOLERANCE, export_onnx
from serving.settings import Settings
from serving.startup import load_predictor
from tests.helpers import REPO_ROOT
from training.train import train_transformers

pytestmark = pytest.mark.slow  # trains a text model (seconds)

TEXTS = [
    "The striker scored twice in the derby.",
    "Heavy rain flooded the valley tonight, the river banks and the farmland. Nobody saw it coming, honestly.",
    "My laptop crashed right after the software update.",
    "Fresh pasta",
    "The chef seasoned the soup with fresh herbs " * 30,  # beyond max_length: truncated
]
SAVED = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT classifier trained on the topic texts (a few seconds) and saved by save_pretrained: no manifest."""
    folder = tmp_path_factory.mktemp("bert") / "model"
    train_transformers(folder)
    return folder


def saved_copy(bert_folder: Path, tmp_path: Path, name: str = "model") -> Path:
    """The files save_pretrained wrote, and nothing else."""
    folder = tmp_path / name
    folder.mkdir()
    for file_name in SAVED:
        shutil.copyfile(bert_folder / file_name, folder / file_name)
    return folder


def test_a_save_pretrained_folder_is_served_as_written_with_labels_from_id2label(
    bert_folder: Path, tmp_path: Path
) -> None:
    folder = saved_copy(bert_folder, tmp_path)
    torch.save({"learning_rate": 0.003}, folder / "training_args.bin")  # beside the weights, as Trainer leaves it

    source = locate_model(str(tmp_path), None, None)
    predictor = load_predictor(Settings(model_dir=str(tmp_path)))

    assert source.weights == folder / "model.safetensors" and not source.has_manifest
    assert predictor.engine.name == "torch"  # no export yet: PyTorch serves it
    assert predictor.manifest.output.labels == ("sport", "weather", "food", "technology")
    assert [s.name for s in predictor.manifest.inputs] == ["input_ids", "attention_mask", "token_type_ids"]
    assert predictor.manifest.tokenizer.max_length == 64  # tokenizer_config's model_max_length
    assert predictor.predict_texts(TEXTS[:3]).labels() == ["sport", "weather", "technology"]


def test_the_onnx_export_has_dynamic_axes_and_agrees_with_pytorch_on_mixed_lengths(
    bert_folder: Path, tmp_path: Path
) -> None:
    folder = saved_copy(bert_folder, tmp_path)

    manifest = export_onnx(folder)
    onnx = load_predictor(Settings(model_dir=str(folder), runtime="onnx"))
    torch_ = load_predictor(Settings(model_dir=str(folder), runtime="torch"))
    batch = onnx.text.encode(TEXTS)

    assert manifest.onnx.max_abs_diff <= TOLERANCE
    assert read_manifest(folder).weights_sha256 and read_manifest(folder).tokenizer.sha256  # checked at start-up
    assert len(set(batch["attention_mask"].sum(axis=1).tolist())) == len(TEXTS)
    assert np.max(np.abs(onnx.predict(batch).values - torch_.predict(batch).values)) <= TOLERANCE
    for rows in (1, 3):  # other batch sizes and lengths than the export's example (2 rows of 8 tokens)
        assert onnx.predict_texts(TEXTS[-rows:]).values.shape == (rows, 4)
    script = (
        "import sys; from serving.settings import Settings; from serving.startup import load_predictor; "
        f"p = load_predictor(Settings(model_dir={str(folder)!r})); import score; "
        "print(p.engine.name, sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')))"
    )
    worker = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert worker.stdout.split() == ["onnxruntime", "[]"], worker.stderr[-2000:]  # neither torch nor transformers


def test_a_pytorch_model_bin_is_read_by_the_safe_loader(bert_folder: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    folder = saved_copy(bert_folder, tmp_path)
    expected = load_predictor(Settings(model_dir=str(folder))).predict_texts(TEXTS).values
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()

    predictor = load_predictor(Settings(model_dir=str(folder)))

    assert predictor.weights.name == "pytorch_model.bin"
    np.testing.assert_allclose(predictor.predict_texts(TEXTS).values, expected, atol=1e-6)


def test_a_base_encoder_answers_normalised_mean_pooled_embeddings(bert_folder: Path, tmp_path: Path) -> None:
    from transformers import BertForSequenceClassification

    folder = tmp_path / "encoder"
    BertForSequenceClassification.from_pretrained(bert_folder).bert.save_pretrained(folder)
    for file_name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(bert_folder / file_name, folder / file_name)
    export_onnx(folder)

    onnx = load_predictor(Settings(model_dir=str(folder), runtime="onnx"))
    torch_ = load_predictor(Settings(model_dir=str(folder), runtime="torch"))
    vectors = onnx.predict_texts(TEXTS).values

    assert onnx.manifest.output.kind == "embedding" and onnx.manifest.output.pooling == "mean"
    assert vectors.shape == (len(TEXTS), 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.max(np.abs(vectors - torch_.predict_texts(TEXTS).values)) <= TOLERANCE
    same_topic = vectors[0] @ onnx.predict_texts(["The goalkeeper lost badly in the cup match."]).values[0]
    assert same_topic > vectors[0] @ vectors[3]  # sport is nearer sport than food


def edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


REFUSED_FOLDERS = [
    ("model type not allowed", lambda f: edit_config(f, model_type="gpt2"), "has model_type 'gpt2'; this template"),
    ("custom code", lambda f: edit_config(f, auto_map={"AutoModel": "modeling_x.X"}), "never runs (no trust_remote"),
    ("task not served", lambda f: edit_config(f, architectures=["BertForMaskedLM"]), "serves a sequence classifier"),
    ("labels not 0..n", lambda f: edit_config(f, id2label={"1": "a", "2": "b"}), "keyed 0, 1"),
    ("no fast tokenizer", lambda f: (f / "tokenizer.json").unlink(), "has no tokenizer.json"),
    ("config does not match weights", lambda f: edit_config(f, hidden_size=48, num_attention_heads=2),
     "size mismatch for bert.embeddings.word_embeddings.weight"),
    ("vocabulary larger than the model", lambda f: edit_config(f, vocab_size=100),
     "size mismatch for bert.embeddings.word_embeddings.weight"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "fragment"), [c[1:] for c in REFUSED_FOLDERS], ids=[c[0] for c in REFUSED_FOLDERS])
def test_a_folder_the_template_cannot_serve_fails_at_start_up_naming_it(
    bert_folder: Path, tmp_path: Path, change, fragment: str
) -> None:
    folder = saved_copy(bert_folder, tmp_path)
    change(folder)

    with pytest.raises(ModelFolderError) as caught:
        load_predictor(Settings(model_dir=str(tmp_path)))

    assert fragment in str(caught.value)
    assert str(folder) in str(caught.value)


def test_a_manifest_is_made_from_the_folder_without_torch_or_transformers(bert_folder: Path, tmp_path: Path) -> None:
    folder = saved_copy(bert_folder, tmp_path)

    manifest = manifest_for_transformers_folder(folder, checksums=True)

    assert manifest.architecture == "transformers" and manifest.config["task"] == "sequence-classification"
    assert manifest.inputs[0].maximum == json.loads((folder / "config.json").read_text())["vocab_size"] - 1
    assert not (folder / MANIFEST_NAME).exists()  # reading never writes into the folder


def test_the_doctor_says_whether_the_model_type_is_allowed_and_whether_config_fits_weights(
    bert_folder: Path, tmp_path: Path
) -> None:
    from serving.doctor import diagnose

    good = saved_copy(bert_folder, tmp_path, "good")
    wrong = saved_copy(bert_folder, tmp_path, "wrong")
    edit_config(wrong, hidden_size=48)
    foreign = saved_copy(bert_folder, tmp_path, "foreign")
    edit_config(foreign, model_type="gpt2")

    ok, report = diagnose(str(good), environ={})
    wrong_ok, wrong_report = diagnose(str(wrong), environ={})
    foreign_ok, foreign_report = diagnose(str(foreign), environ={})

    assert ok and "model_type 'bert' (allowed)" in report and "tokenizer: tokenizer.json" in report
    assert not wrong_ok and "size mismatch for bert.embeddings.word_embeddings.weight" in wrong_report
    assert not foreign_ok and "model_type 'gpt2' (NOT served; allowed:" in foreign_report
