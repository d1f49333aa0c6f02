"""A Hugging Face ``save_pretrained`` folder, served as it was written: its manifest made from its own files.

A folder with ``config.json``, ``model.safetensors`` (or ``pytorch_model.bin``) and the tokenizer's files, as
``model.save_pretrained(folder)`` and ``tokenizer.save_pretrained(folder)`` write them, needs no ``manifest.json``:
``manifest_for_transformers_folder`` reads

* ``config.json``: the model type and task (allow-listed, ``model_arch.hf_text``), the labels
  (``id2label``; ``problem_type: multi_label_classification`` makes it multilabel), the vocabulary size and the most
  positions the model takes;
* ``tokenizer.json`` (a fast tokenizer; the slow ``vocab.txt`` alone is refused with the fix);
* ``tokenizer_config.json``: the pad token, ``model_max_length`` and ``truncation_side``.

A base encoder (``BertModel``: the task ``feature-extraction``) answers embeddings: mean pooling over the attention
mask and L2 normalisation, as KServe's Hugging Face server does. ``python -m model_folder.onnx_export FOLDER`` writes
the manifest (with every checksum) beside the files and the ONNX export; the folder is then served like any other.
Called by ``model_folder.locate``; reads JSON only (no torch, no transformers).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from model_arch.spec import DYNAMIC, InputSpec, OutputSpec
from model_arch.text import HF_ARCHITECTURE as NAME
from model_arch.text import HF_MODEL_TYPES as MODEL_TYPES
from model_arch.text import HF_TASKS as TASKS
from model_arch.text import MAX_LENGTH, TextSpec
from model_folder.manifest import MAX_MANIFEST_BYTES, Manifest, ModelFolderError, sha256_of

CONFIG_NAME = "config.json"
WEIGHTS_NAMES = ("model.safetensors", "pytorch_model.bin")  # in the order preferred
TOKENIZER_CONFIG = "tokenizer_config.json"
DEFAULT_MAX_LENGTH = 512  # when neither the tokenizer nor the config bounds it
HOW_TO_SAVE = "model.save_pretrained(folder) and tokenizer.save_pretrained(folder), with a fast tokenizer"


def is_transformers_folder(folder: Path) -> bool:
    """A folder with a ``config.json`` naming a ``model_type``, and weights ``save_pretrained`` names."""
    return (folder / CONFIG_NAME).is_file() and any((folder / name).is_file() for name in WEIGHTS_NAMES)


def transformers_weights(folder: Path) -> Path:
    """The folder's weights: ``model.safetensors``, else ``pytorch_model.bin``."""
    return next(folder / name for name in WEIGHTS_NAMES if (folder / name).is_file())


def manifest_for_transformers_folder(folder: Path, checksums: bool = False) -> Manifest:
    """The manifest of a ``save_pretrained`` folder, from its own files; ``checksums``: record every file's sha256
    (when the manifest is written into the folder, so later start-ups check them).

    Raises:
        ModelFolderError: a model type, task or file this template does not serve, naming the folder, what was found
            and the fix.
    """
    config = _read_json(folder / CONFIG_NAME)
    model_type = config.get("model_type")
    if model_type not in MODEL_TYPES:
        raise ModelFolderError(
            f"{folder / CONFIG_NAME} has model_type {model_type!r}; this template serves {sorted(MODEL_TYPES)} "
            "(model_arch.hf_text.py allow-lists them; add a type there once it is checked to export and "
            "serve)."
        )
    if "auto_map" in config:
        raise ModelFolderError(
            f"{folder / CONFIG_NAME} asks for custom code (auto_map: {sorted(config['auto_map'])}), which this "
            "template never runs (no trust_remote_code). Save the model with a class transformers ships."
        )
    task, output = _task_and_output(folder, config)
    tokenizer_file = folder / "tokenizer.json"
    if not tokenizer_file.is_file():
        found = [p.name for p in folder.iterdir() if "vocab" in p.name or "tokenizer" in p.name or "merges" in p.name]
        raise ModelFolderError(
            f"{folder} has no tokenizer.json (found {found or 'no tokenizer files'}): the template reads the fast "
            f"tokenizer's file only. Save it with {HOW_TO_SAVE}: AutoTokenizer.from_pretrained(..., use_fast=True)."
        )
    tokenizer_config = _read_json(folder / TOKENIZER_CONFIG) if (folder / TOKENIZER_CONFIG).is_file() else {}
    feeds = MODEL_TYPES[model_type]
    tokenizer = TextSpec(
        file="tokenizer.json",
        max_length=_max_length(config, tokenizer_config),
        truncation=tokenizer_config.get("truncation_side", "right"),
        pad_token=_token_text(tokenizer_config.get("pad_token")) or ("<pad>" if "roberta" in model_type else "[PAD]"),
        feeds=feeds,
        sha256=sha256_of(tokenizer_file) if checksums else None,
    )
    ranges = {
        "input_ids": (0, int(config["vocab_size"]) - 1),
        "attention_mask": (0, 1),
        "token_type_ids": (0, max(int(config.get("type_vocab_size", 2)) - 1, 0)),
    }
    inputs = tuple(
        InputSpec(name=name, shape=(DYNAMIC,), dtype="int64", minimum=ranges[name][0], maximum=ranges[name][1])
        for name in feeds
    )
    weights = transformers_weights(folder)
    return Manifest(
        architecture=NAME,
        config={"task": task, "hf_config": config},
        input=inputs[0],
        inputs=inputs,
        tokenizer=tokenizer,
        output=output,
        weights_file=weights.name,
        weights_sha256=sha256_of(weights) if checksums else None,
        metrics={"source": f"save_pretrained folder, transformers {config.get('transformers_version', '?')}"},
    )


def _task_and_output(folder: Path, config: dict[str, Any]) -> tuple[str, OutputSpec]:
    architectures = config.get("architectures") or []
    name = architectures[0] if architectures and isinstance(architectures[0], str) else ""
    if name.endswith("ForSequenceClassification"):
        id2label = config.get("id2label") or {}
        try:
            labels = tuple(str(id2label[key]) for key in sorted(id2label, key=int))
        except (ValueError, TypeError) as err:
            raise ModelFolderError(f"{folder / CONFIG_NAME} has id2label keys that are not 0, 1, ...: {err}") from err
        if not labels or [int(k) for k in sorted(id2label, key=int)] != list(range(len(labels))):
            raise ModelFolderError(
                f"{folder / CONFIG_NAME} has id2label {id2label!r}; a classifier needs one label per class, keyed "
                "0, 1, ...: set model.config.id2label before save_pretrained"
            )
        multilabel = config.get("problem_type") == "multi_label_classification"
        kind = "multilabel" if multilabel else "classification"
        output = OutputSpec(kind=kind, labels=labels, select=TASKS["sequence-classification"][1])
        return "sequence-classification", output
    if name.endswith("Model") and not name.endswith("PreTrainedModel"):
        dimensions = int(config.get("hidden_size") or config.get("dim") or 0)
        output = OutputSpec(
            kind="embedding",
            select=TASKS["feature-extraction"][1],
            pooling="mean",
            normalize=True,
            dimensions=dimensions,
        )
        return "feature-extraction", output
    raise ModelFolderError(
        f"{folder / CONFIG_NAME} has architectures {architectures!r}; this template serves a sequence classifier "
        "(*ForSequenceClassification) or a base encoder (*Model, answered as embeddings). Save one of those."
    )


def _max_length(config: dict[str, Any], tokenizer_config: dict[str, Any]) -> int:
    """The tokens a text keeps: the tokenizer's ``model_max_length`` (a huge placeholder when unset), bounded by the
    positions the model has (RoBERTa keeps 2 of them for its padding offset)."""
    bounds = [DEFAULT_MAX_LENGTH, MAX_LENGTH]
    declared = tokenizer_config.get("model_max_length")
    if isinstance(declared, int) and 2 <= declared < 1_000_000:
        bounds[0] = declared
    positions = config.get("max_position_embeddings")
    if isinstance(positions, int) and positions > 2:
        bounds.append(positions - 2 if "roberta" in str(config.get("model_type")) else positions)
    return min(bounds)


def _token_text(token: Any) -> str | None:
    """A special token as tokenizer_config.json writes it: a string, or an object with its ``content``."""
    if isinstance(token, dict):
        token = token.get("content")
    return token if isinstance(token, str) and token else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ValueError(f"{path.stat().st_size:,} bytes; at most {MAX_MANIFEST_BYTES:,}")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise ModelFolderError(f"{path} cannot be read as JSON ({err}). Save the folder with {HOW_TO_SAVE}.") from err
    if not isinstance(data, dict):
        raise ModelFolderError(f"{path} is not a JSON object. Save the folder with {HOW_TO_SAVE}.")
    return data
