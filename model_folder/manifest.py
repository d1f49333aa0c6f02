"""The model folder's manifest, and its checksums: what serving reads before it decides how to load a model.

``model_folder.weights`` writes and loads whole model folders (and needs torch); this module only reads and
writes ``manifest.json``, so that a worker serving an ONNX export (``model_folder.engines``) never imports torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_arch.spec import InputSpec, OutputSpec
from model_arch.text import TextSpec

MANIFEST_NAME = "manifest.json"
WEIGHTS_NAME = "model.pt"
FORMAT_VERSION = 1
DEFAULT_ARCHITECTURE = "digits_cnn"  # what a weights file without a manifest is loaded as


class ModelFolderError(RuntimeError):
    """A model folder or weights file that cannot be served; the message says what was found and the fix."""


@dataclass(frozen=True)
class OnnxExport:
    """The manifest's record of an ONNX export of the weights (``model_folder.onnx_export`` writes it).

    Attributes:
        file: the file name, in the model folder.
        sha256: its checksum, checked before ONNX Runtime loads it.
        max_abs_diff: the largest difference from the PyTorch model's output, measured when it was exported.
        weights_sha256: the checksum of the weights file it was exported from; serving checks that it is the
            manifest's own.
    """

    file: str
    sha256: str
    max_abs_diff: float
    weights_sha256: str | None = None  # the weights it was exported from

    def __post_init__(self) -> None:
        if not isinstance(self.file, str) or Path(self.file).name != self.file or self.file in ("", ".", ".."):
            raise ValueError(f"onnx.file must be a file name in the model folder, got {self.file!r}")
        _check_sha256_text("onnx.sha256", self.sha256, optional=False)
        _check_sha256_text("onnx.weights_sha256", self.weights_sha256, optional=True)
        difference = self.max_abs_diff
        if isinstance(difference, bool) or not isinstance(difference, (int, float)) or not 0 <= difference < 1e30:
            raise ValueError(f"onnx.max_abs_diff must be a number of at least 0, got {difference!r}")


@dataclass(frozen=True)
class Manifest:
    """Everything needed to rebuild, check and serve the weights next to it.

    ``input`` is the model's first (for most models, only) input; ``inputs`` lists every input in ``forward``
    order (a text model: ``input_ids``, ``attention_mask``), and is ``(input,)`` when not given. A one-input
    manifest is written with ``"input"``, as it always was; one with several inputs with ``"inputs"``.
    ``tokenizer``: for a text model, how strings become its inputs (``model_arch.text``).
    """

    architecture: str
    config: dict[str, Any]
    input: InputSpec
    output: OutputSpec
    weights_file: str = WEIGHTS_NAME
    weights_sha256: str | None = None
    torch_version: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    created_utc: str | None = None
    format_version: int = FORMAT_VERSION
    onnx: OnnxExport | None = None
    inputs: tuple[InputSpec, ...] = ()
    tokenizer: TextSpec | None = None

    def __post_init__(self) -> None:
        inputs = tuple(self.inputs) or (self.input,)
        object.__setattr__(self, "inputs", inputs)
        if inputs[0] != self.input:
            raise ValueError(f"input must be the first of inputs, {inputs[0].name!r}; got {self.input.name!r}")
        names = [spec.name for spec in inputs]
        if len(set(names)) != len(names):
            raise ValueError(f"inputs have repeated names: {names}")
        if self.tokenizer is not None:
            check_relative_path("tokenizer.file", self.tokenizer.file)
            if list(self.tokenizer.feeds) != names:
                raise ValueError(
                    f"tokenizer.feeds {list(self.tokenizer.feeds)} must be the model's inputs {names}, in that order"
                )
            for spec in inputs:
                if spec.dtype != "int64" or spec.shape != (-1,):
                    raise ValueError(
                        f"input {spec.name!r} is filled by the tokenizer, so it must be int64 shaped [-1] (one token "
                        f"per position); got {spec.dtype} {list(spec.shape)}"
                    )

    @property
    def takes_text(self) -> bool:
        """True for a text model: clients send strings, the tokenizer fills the inputs."""
        return self.tokenizer is not None

    def to_dict(self) -> dict[str, Any]:
        single = len(self.inputs) == 1 and self.tokenizer is None
        declared: dict[str, Any] = (
            {"input": self.input.to_dict()} if single else {"inputs": [spec.to_dict() for spec in self.inputs]}
        )
        if self.tokenizer is not None:
            declared["tokenizer"] = self.tokenizer.to_dict()
        return {
            "format_version": self.format_version,
            "architecture": self.architecture,
            "config": self.config,
            **declared,
            "output": self.output.to_dict(),
            "weights": {"file": self.weights_file, "format": "state_dict", "sha256": self.weights_sha256},
            "torch_version": self.torch_version,
            "metrics": self.metrics,
            "created_utc": self.created_utc,
            "onnx": dataclasses.asdict(self.onnx) if self.onnx else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """The manifest in ``data`` (parsed JSON), every field checked for its type and range.

        Raises:
            ValueError: the first field that is missing, unknown, of the wrong type or out of range, by name.
            KeyError: a required field is missing.
        """
        if not isinstance(data, dict):
            raise ValueError(f"the manifest must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - MANIFEST_FIELDS)
        if unknown:
            raise ValueError(f"unknown field(s) {unknown}; a manifest has {sorted(MANIFEST_FIELDS)}")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"format_version is {version!r}; this code reads version {FORMAT_VERSION}")
        for name, kind in (("architecture", str), ("output", dict), ("weights", dict)):
            if not isinstance(data[name], kind):
                raise ValueError(f"{name} must be a JSON {'string' if kind is str else 'object'}, got {data[name]!r}")
        if ("input" in data) == ("inputs" in data):
            raise ValueError(
                'a manifest has "input" (one model input) or "inputs" (a list, in forward order), not both'
            )
        if "inputs" in data:
            if not isinstance(data["inputs"], list) or not 1 <= len(data["inputs"]) <= MAX_INPUTS:
                raise ValueError(f"inputs must be a list of 1 to {MAX_INPUTS} input objects, got {data['inputs']!r}")
            if not all(isinstance(item, dict) for item in data["inputs"]):
                raise ValueError("every entry of inputs must be a JSON object")
            inputs = tuple(InputSpec.from_dict(item) for item in data["inputs"])
        else:
            if not isinstance(data["input"], dict):
                raise ValueError(f"input must be a JSON object, got {data['input']!r}")
            inputs = (InputSpec.from_dict(data["input"]),)
        for name, kind in (("config", dict), ("metrics", dict), ("onnx", dict)):
            if data.get(name) is not None and not isinstance(data[name], kind):
                raise ValueError(f"{name} must be a JSON object or null, got {data[name]!r}")
        for name in ("torch_version", "created_utc"):
            if data.get(name) is not None and not isinstance(data[name], str):
                raise ValueError(f"{name} must be a string or null, got {data[name]!r}")
        weights = data["weights"]
        check_relative_path("weights.file", weights["file"])
        _check_sha256_text("weights.sha256", weights.get("sha256"), optional=True)
        return cls(
            architecture=data["architecture"],
            config=dict(data.get("config") or {}),
            input=inputs[0],
            inputs=inputs,
            tokenizer=TextSpec.from_dict(data["tokenizer"]) if data.get("tokenizer") is not None else None,
            output=OutputSpec.from_dict(data["output"]),
            weights_file=weights["file"],
            weights_sha256=weights.get("sha256"),
            torch_version=data.get("torch_version"),
            metrics=dict(data.get("metrics") or {}),
            created_utc=data.get("created_utc"),
            onnx=OnnxExport(**data["onnx"]) if data.get("onnx") else None,
        )


MAX_MANIFEST_BYTES = 1024 * 1024
MAX_INPUTS = 64
MANIFEST_FIELDS = frozenset(
    {"format_version", "architecture", "config", "input", "inputs", "tokenizer", "output", "weights"}
    | {"torch_version", "metrics", "created_utc", "onnx"}
)


def check_relative_path(field_name: str, value: Any) -> None:
    """A path inside the model folder, as the manifest may name one: relative, without ``..``.

    Raises:
        ValueError: anything else.
    """
    if not isinstance(value, str) or not value or "\x00" in value:
        raise ValueError(f"{field_name} must be a file name in the model folder, got {value!r}")
    path = Path(value)
    if path.is_absolute() or ".." in path.parts or value.startswith("~"):
        raise ValueError(f"{field_name} must name a file inside the model folder, got {value!r}")


def file_in_folder(folder: Path, name: str, what: str) -> Path:
    """``folder/name``, checked to be a plain file that stays inside ``folder`` once symlinks are followed.

    Raises:
        ModelFolderError: it is missing, not a plain file, or leads outside the folder.
    """
    path = folder / name
    if not path.is_file():
        raise ModelFolderError(
            f"{folder / MANIFEST_NAME} names the {what} {name!r}, which is not a file in {folder}. Register the whole "
            "folder that training wrote."
        )
    if not path.resolve().is_relative_to(folder.resolve()):
        raise ModelFolderError(
            f"{folder / MANIFEST_NAME} names the {what} {name!r}, which leads outside the model folder (to "
            f"{path.resolve()}). A model folder serves only its own files: copy the file into it, not a link."
        )
    return path


def _check_sha256_text(field_name: str, value: Any, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError(f"{field_name} must be a sha256 in 64 lowercase hex digits, got {value!r}")


def read_manifest(folder: str | Path) -> Manifest:
    """The manifest in ``folder``.

    Raises:
        ModelFolderError: missing, not JSON, or missing fields; the message names the file.
    """
    path = Path(folder) / MANIFEST_NAME
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ValueError(
                f"it is {path.stat().st_size:,} bytes; a manifest is a few KB (at most {MAX_MANIFEST_BYTES:,})"
            )
        return Manifest.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise ModelFolderError(f"{path} does not exist") from None
    except (ValueError, KeyError, TypeError, RecursionError) as err:
        detail = f"it lacks the field {err}" if isinstance(err, KeyError) else f"{type(err).__name__}: {err}"
        raise ModelFolderError(
            f"{path} is not a valid model manifest ({detail}). "
            "Write it with model_folder.weights.write_model_folder, or delete it to serve the weights "
            "as the default architecture."
        ) from err


def write_manifest(folder: str | Path, manifest: Manifest) -> None:
    (Path(folder) / MANIFEST_NAME).write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")


def check_sha256(path: Path, expected: str) -> None:
    """Raises ModelFolderError when ``path``'s checksum is not the one its manifest recorded."""
    actual = sha256_of(path)
    if actual != expected:
        raise ModelFolderError(
            f"{path} does not match its manifest: sha256 is {actual}, manifest says {expected}. The file was "
            "replaced or corrupted after the folder was written; register the folder exactly as training wrote it."
        )


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
