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
        if Path(self.file).name != self.file or self.file in ("", ".", ".."):
            raise ValueError(f"onnx.file must be a file name in the model folder, got {self.file!r}")


@dataclass(frozen=True)
class Manifest:
    """Everything needed to rebuild, check and serve the weights next to it."""

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "architecture": self.architecture,
            "config": self.config,
            "input": self.input.to_dict(),
            "output": self.output.to_dict(),
            "weights": {"file": self.weights_file, "format": "state_dict", "sha256": self.weights_sha256},
            "torch_version": self.torch_version,
            "metrics": self.metrics,
            "created_utc": self.created_utc,
            "onnx": dataclasses.asdict(self.onnx) if self.onnx else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"format_version is {version!r}; this code reads version {FORMAT_VERSION}")
        weights = data["weights"]
        return cls(
            architecture=data["architecture"],
            config=dict(data.get("config") or {}),
            input=InputSpec.from_dict(data["input"]),
            output=OutputSpec.from_dict(data["output"]),
            weights_file=weights["file"],
            weights_sha256=weights.get("sha256"),
            torch_version=data.get("torch_version"),
            metrics=dict(data.get("metrics") or {}),
            created_utc=data.get("created_utc"),
            onnx=OnnxExport(**data["onnx"]) if data.get("onnx") else None,
        )


def read_manifest(folder: str | Path) -> Manifest:
    """The manifest in ``folder``.

    Raises:
        ModelFolderError: missing, not JSON, or missing fields; the message names the file.
    """
    path = Path(folder) / MANIFEST_NAME
    try:
        return Manifest.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise ModelFolderError(f"{path} does not exist") from None
    except (ValueError, KeyError, TypeError) as err:
        raise ModelFolderError(
            f"{path} is not a valid model manifest ({type(err).__name__}: {err}). "
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
