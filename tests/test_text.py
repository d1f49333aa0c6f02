"""Text models, the model side: several named int64 inputs with a dynamic axis in the spec and the manifest (old
manifests unchanged), the tokenizer from the model folder (parity with transformers' own tokenizer, truncation at
max_length whatever tokenizer.json says), the topics example trained for real, and both runtimes agreeing on texts
of different lengths in one batch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from model_arch.spec import InputSpec, OutputSpec
from model_arch.text import TextEncoder, TextSpec
from model_folder.manifest import MANIFEST_NAME, Manifest, ModelFolderError, read_manifest
from model_folder.onnx_export import TOLERANCE
from serving.settings import Settings
from serving.startup import load_predictor
from training.data import TOPICS_FILE
from training.train import train_topics

pytestmark = pytest.mark.slow  # trains a text model (seconds)

TEXTS = [
    "The striker scored twice in the derby.",
    "Heavy rain flooded the valley tonight, the river banks and the farmland. Nobody saw it coming, honestly.",
    "My laptop crashed right after the software update.",
    "Fresh pasta",
    "ünïcödé 😀 and 中文 text about the new processor " * 20,  # far beyond max_length: truncated
]


@pytest.fixture(scope="module")
def topics_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The text example, really trained (a few seconds) and exported: tokenizer.json, model.pt, model.onnx."""
    from model_folder.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("topics") / "model"
    train_topics(folder, epochs=20)
    export_onnx(folder)
    return folder


def old_manifest(tmp_path: Path) -> dict:
    """A manifest as the template wrote it before models had several inputs: one "input" object."""
    return {
        "format_version": 1,
        "architecture": "digits_cnn",
        "config": {"channels": 16, "hidden": 64, "classes": 10},
        "input": {
            "name": "pixels", "shape": [1, 8, 8], "dtype": "float32", "minimum": 0.0, "maximum": 16.0,
            "subtract": 0.0, "divide": 16.0, "description": "digits", "names": [],
        },
        "output": {"kind": "classification", "labels": list(range(10))},
        "weights": {"file": "model.pt", "format": "state_dict", "sha256": None},
        "torch_version": "2.13.0", "metrics": {}, "created_utc": None, "onnx": None,
    }  # fmt: skip


def test_an_old_manifest_loads_unchanged_and_is_written_back_the_same(tmp_path: Path) -> None:
    data = old_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(data))

    manifest = read_manifest(tmp_path)

    assert manifest.inputs == (manifest.input,)
    assert manifest.tokenizer is None and not manifest.takes_text
    assert manifest.to_dict() == data


def test_a_text_manifest_round_trips_with_named_int64_inputs_and_a_dynamic_axis(topics_folder: Path) -> None:
    data = json.loads((topics_folder / MANIFEST_NAME).read_text())

    manifest = Manifest.from_dict(data)

    assert [(s.name, s.dtype, s.shape) for s in manifest.inputs] == [
        ("input_ids", "int64", (-1,)),
        ("attention_mask", "int64", (-1,)),
    ]
    assert manifest.tokenizer.max_length == 64 and manifest.tokenizer.sha256 is not None
    assert "input" not in data and manifest.to_dict() == data


def test_an_integer_categorical_input_is_a_tensor_input_too() -> None:
    category = InputSpec(name="store", shape=(1,), dtype="int64", minimum=0, maximum=49)

    assert category.preprocess(np.array([[3], [49]])).dtype == np.int64
    assert category.describe_row().startswith("1 numbers")


def with_input(data: dict, **changes) -> dict:
    data = json.loads(json.dumps(data))
    data["inputs"][0].update(changes)
    return data


LYING_TEXT_MANIFESTS = [
    ("both input and inputs", lambda d: {**d, "input": d["inputs"][0]}, 'has "input" (one model input) or "inputs"'),
    ("int64 with subtract", lambda d: with_input(d, subtract=1.0), "takes no subtract"),
    ("dtype unknown", lambda d: with_input(d, dtype="string"), "expected one of ['float32', 'int64']"),
    ("shape -2", lambda d: with_input(d, shape=[-2]), "or -1 for a dynamic axis"),
    ("ids not dynamic", lambda d: with_input(d, shape=[64]), "must be int64 shaped [-1]"),
    ("repeated input", lambda d: {**d, "inputs": [d["inputs"][0], d["inputs"][0]]}, "repeated names"),
    ("feeds out of order", lambda d: {**d, "tokenizer": {**d["tokenizer"], "feeds": ["attention_mask", "input_ids"]}},
     "must be the model's inputs"),
    ("max_length zero", lambda d: {**d, "tokenizer": {**d["tokenizer"], "max_length": 0}}, "max_length must be"),
    ("truncation unknown", lambda d: {**d, "tokenizer": {**d["tokenizer"], "truncation": "middle"}}, "truncation"),
    ("tokenizer outside", lambda d: {**d, "tokenizer": {**d["tokenizer"], "file": "../tokenizer.json"}},
     "inside the model folder"),
    ("embedding without dimensions", lambda d: {**d, "output": {"kind": "embedding", "pooling": "mean"}},
     "dimensions must be"),
    ("pooling on a classifier", lambda d: {**d, "output": {**d["output"], "pooling": "mean"}}, "are for kind"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "fragment"), [c[1:] for c in LYING_TEXT_MANIFESTS], ids=[c[0] for c in LYING_TEXT_MANIFESTS]
)
def test_a_lying_text_manifest_is_refused_when_read(topics_folder: Path, tmp_path: Path, change, fragment: str) -> None:
    data = change(json.loads((topics_folder / MANIFEST_NAME).read_text()))
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(data))

    with pytest.raises(ModelFolderError, match="is not a valid model manifest") as caught:
        read_manifest(tmp_path)

    assert fragment in str(caught.value)


def test_the_tokenizer_matches_transformers_own_including_truncation_at_max_length(topics_folder: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    spec = read_manifest(topics_folder).tokenizer
    ours = TextEncoder(topics_folder / spec.file, spec).encode(TEXTS)
    reference = PreTrainedTokenizerFast(tokenizer_file=str(topics_folder / spec.file), pad_token="[PAD]")
    theirs = reference(TEXTS, padding=True, truncation=True, max_length=spec.max_length, return_tensors="np")

    assert ours["input_ids"].shape == (len(TEXTS), spec.max_length)  # the long text was cut, the batch padded to it
    np.testing.assert_array_equal(ours["input_ids"], theirs["input_ids"])
    np.testing.assert_array_equal(ours["attention_mask"], theirs["attention_mask"])
    assert ours["input_ids"][4, -1] == reference.convert_tokens_to_ids("[SEP]")  # cut, and still closed


def test_a_batch_is_padded_to_its_longest_text_not_to_max_length(topics_folder: Path) -> None:
    spec = read_manifest(topics_folder).tokenizer
    encoder = TextEncoder(topics_folder / spec.file, spec)

    short = encoder.encode(["Fresh pasta", "The storm"])
    fixed = TextEncoder(topics_folder / spec.file, TextSpec(**{**spec.to_dict(), "padding": "max_length"}))

    assert short["input_ids"].shape == (2, 4)  # [CLS] fresh pasta [SEP]
    assert short["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 1]]
    assert fixed.encode(["Fresh pasta"])["input_ids"].shape == (1, spec.max_length)


def test_the_spec_wins_over_truncation_and_padding_saved_in_tokenizer_json(topics_folder: Path, tmp_path: Path) -> None:
    data = json.loads((topics_folder / "tokenizer.json").read_text())
    data["truncation"] = {"direction": "Right", "max_length": 3, "strategy": "LongestFirst", "stride": 0}
    data["padding"] = {
        "strategy": {"Fixed": 500}, "direction": "Left", "pad_to_multiple_of": None,
        "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]",
    }  # fmt: skip
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    spec = read_manifest(topics_folder).tokenizer

    ids = TextEncoder(tmp_path / "tokenizer.json", spec).encode(TEXTS)["input_ids"]

    assert ids.shape == (len(TEXTS), spec.max_length)
    np.testing.assert_array_equal(ids, TextEncoder(topics_folder / "tokenizer.json", spec).encode(TEXTS)["input_ids"])


def test_the_topics_example_learns_its_held_out_texts(topics_folder: Path) -> None:
    metrics = read_manifest(topics_folder).metrics

    assert metrics["test_accuracy"] >= 0.9  # formulaic texts (training/texts/make_topics.py): an easy task
    assert metrics["test_texts"] == 110 and TOPICS_FILE.is_file()


def test_both_runtimes_agree_on_texts_of_different_lengths_in_one_batch(topics_folder: Path) -> None:
    onnx = load_predictor(Settings(model_dir=str(topics_folder), runtime="onnx"))
    torch_ = load_predictor(Settings(model_dir=str(topics_folder), runtime="torch"))

    batch = onnx.text.encode(TEXTS)
    first, second = onnx.predict(batch), torch_.predict(batch)

    assert onnx.engine.name == "onnxruntime" and torch_.engine.name == "torch"
    assert len(set(batch["attention_mask"].sum(axis=1).tolist())) == len(TEXTS)  # every length differs
    assert np.max(np.abs(first.values - second.values)) <= TOLERANCE
    assert first.labels()[:3] == ["sport", "weather", "technology"]


def test_a_text_is_answered_alike_alone_and_padded_in_a_batch(topics_folder: Path) -> None:
    predictor = load_predictor(Settings(model_dir=str(topics_folder)))

    together = predictor.predict_texts(TEXTS).values
    alone = np.concatenate([predictor.predict_texts([text]).values for text in TEXTS])

    assert np.max(np.abs(together - alone)) <= TOLERANCE


def copy_of(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "model"))


def test_a_swapped_tokenizer_fails_at_start_up_naming_the_file(topics_folder: Path, tmp_path: Path) -> None:
    folder = copy_of(topics_folder, tmp_path)
    data = json.loads((folder / "tokenizer.json").read_text())
    data["model"]["vocab"]["zzz"] = len(data["model"]["vocab"])
    (folder / "tokenizer.json").write_text(json.dumps(data))

    with pytest.raises(ModelFolderError, match="does not match its manifest") as caught:
        load_predictor(Settings(model_dir=str(folder)))

    assert str(folder / "tokenizer.json") in str(caught.value)


def test_a_missing_tokenizer_fails_at_start_up_naming_it(topics_folder: Path, tmp_path: Path) -> None:
    folder = copy_of(topics_folder, tmp_path)
    (folder / "tokenizer.json").unlink()

    with pytest.raises(ModelFolderError, match=r"names the tokenizer 'tokenizer\.json', which is not a file"):
        load_predictor(Settings(model_dir=str(folder)))


def test_a_tokenizer_larger_than_the_model_fails_at_start_up(topics_folder: Path, tmp_path: Path) -> None:
    folder = copy_of(topics_folder, tmp_path)
    data = json.loads((folder / MANIFEST_NAME).read_text())
    data["inputs"][0]["maximum"] = 10
    data["tokenizer"]["sha256"] = None
    (folder / MANIFEST_NAME).write_text(json.dumps(data))

    with pytest.raises(ModelFolderError, match=r"tokens, but the model's input_ids go up to 10"):
        load_predictor(Settings(model_dir=str(folder), runtime="torch"))


def test_a_pad_token_the_vocabulary_lacks_fails_at_start_up(topics_folder: Path, tmp_path: Path) -> None:
    folder = copy_of(topics_folder, tmp_path)
    data = json.loads((folder / MANIFEST_NAME).read_text())
    data["tokenizer"]["pad_token"] = "<pad>"
    (folder / MANIFEST_NAME).write_text(json.dumps(data))

    with pytest.raises(ModelFolderError, match="has no token '<pad>'"):
        load_predictor(Settings(model_dir=str(folder), runtime="torch"))


def test_an_embedding_output_pools_over_the_mask_and_normalises() -> None:
    import torch

    from model_folder.torch_engine import embedding_head

    hidden = torch.tensor([[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]]])  # the third token is padding
    mask = torch.tensor([[1, 1, 0]])
    mean = OutputSpec(kind="embedding", pooling="mean", normalize=False, dimensions=2)
    cls = OutputSpec(kind="embedding", pooling="cls", normalize=True, dimensions=2)

    assert embedding_head(hidden, mean, mask).tolist() == [[2.0, 2.0]]
    assert embedding_head(hidden, cls, mask).tolist() == [[1.0, 0.0]]


def test_the_doctor_names_the_tokenizer_and_compares_the_export_on_texts(topics_folder: Path) -> None:
    from serving.doctor import diagnose

    ok, report = diagnose(str(topics_folder), environ={})

    assert ok, report
    assert "tokenizer: tokenizer.json (sha256 matches)" in report and "max_length 64 (cut on the right)" in report
    assert "inputs: input_ids (whole numbers from 0 to" in report
    assert "The ONNX export answers like the weights" in report


def test_data_collection_records_one_row_per_text_with_its_length_and_tokens(topics_folder: Path) -> None:
    from serving.codecs import TextRequest
    from serving.codecs.rows import DATA
    from serving.collection import input_frame, output_frame
    from serving.http import tokenize

    predictor = load_predictor(Settings(model_dir=str(topics_folder)))
    decoded = tokenize(TextRequest(TEXTS, DATA), predictor)

    inputs = input_frame(predictor.manifest.input, decoded)
    outputs = output_frame(predictor.manifest.output, predictor.predict(decoded.batch))
    vectors = output_frame(OutputSpec(kind="embedding", dimensions=4), predictor.predict(decoded.batch))

    assert list(inputs.columns) == ["chars", "tokens"] and len(inputs) == len(TEXTS)
    assert inputs["chars"].tolist() == [len(text) for text in TEXTS] and inputs["tokens"].max() == 64
    assert outputs["label"].tolist()[:3] == ["sport", "weather", "technology"]
    assert list(vectors.columns) == ["norm"] and len(vectors) == len(TEXTS)
