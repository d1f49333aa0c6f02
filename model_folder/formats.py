"""Recognise a PyTorch model file by its content, never by its name.

``torch.save`` output is a zip with ``data.pkl`` (or, before PyTorch 1.6, a bare pickle that starts with a
magic number); TorchScript is a zip with ``code/`` and ``constants.pkl``; ``torch.export`` writes a zip whose
``archive_format`` entry reads ``pt2``; safetensors starts with an 8-byte header length and then ``{``.
``model_folder.weights`` chooses how to load a file from this, and ``serving.doctor`` reports it.
"""

from __future__ import annotations

import json
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

TORCH_SAVE = "torch.save"
LEGACY_TORCH_SAVE = "torch.save (legacy)"
SAFETENSORS = "safetensors"
TORCHSCRIPT = "torchscript"
TORCH_EXPORT = "torch_export"
ONNX = "onnx"
UNKNOWN = "unknown"

# Formats that carry code by design: loading them runs it. Served only when the operator opts in by name.
CODE_FORMATS = (TORCHSCRIPT, TORCH_EXPORT)
DESCRIPTIONS = {
    TORCH_SAVE: "torch.save archive (zip with data.pkl)",
    LEGACY_TORCH_SAVE: "torch.save file in the pre-1.6 pickle format",
    SAFETENSORS: "safetensors file",
    TORCHSCRIPT: "TorchScript archive (torch.jit.save: carries code)",
    TORCH_EXPORT: "torch.export program (torch.export.save, .pt2: carries code)",
    ONNX: "ONNX model (by suffix)",
    UNKNOWN: "not a recognised PyTorch file",
}
# What every pre-1.6 torch.save file starts with: pickle protocol 2, then the long magic number 0x1950a86a20f9469cfc6c.
LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024  # the safetensors library's own bound


def detect_format(path: str | Path) -> str:
    """One of the format names above, from the file's first bytes and, for zips, its directory."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
        if zipfile.is_zipfile(path):
            return _zip_format(path)
    except (OSError, zipfile.BadZipFile):
        return UNKNOWN
    if head.startswith(LEGACY_MAGIC):
        return LEGACY_TORCH_SAVE
    if safetensors_header(path) is not None:
        return SAFETENSORS
    if path.suffix.lower() == ".onnx":
        return ONNX
    return UNKNOWN


def safetensors_header(path: str | Path) -> dict | None:
    """The JSON header of a safetensors file (tensor names to dtype, shape, offsets), or None if it is not one."""
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if not 2 <= length <= MAX_SAFETENSORS_HEADER:
                return None
            header = f.read(length)
        if not header.startswith(b"{"):
            return None
        parsed = json.loads(header)
    except (OSError, struct.error, ValueError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _zip_format(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        format_entries = [n for n in names if n.rsplit("/", 1)[-1] == "archive_format"]
        if format_entries and archive.read(format_entries[0]).strip() == b"pt2":
            return TORCH_EXPORT
    leaves = {name.split("/", 1)[-1] for name in names}
    if "constants.pkl" in leaves or any(leaf.startswith("code/") for leaf in leaves):
        return TORCHSCRIPT
    if "data.pkl" in leaves:
        return TORCH_SAVE
    return UNKNOWN


@dataclass(frozen=True)
class TrustPolicy:
    """What the operator opted into, by name. The default trusts nothing that can run code.

    Attributes:
        code_formats: formats that carry code (``torchscript``, ``torch_export``) allowed to load.
        pickle_globals: dotted names (``mypkg.models.MLP``) the safe unpickler may use besides tensors.
    """

    code_formats: frozenset[str] = frozenset()
    pickle_globals: tuple[str, ...] = ()


TRUST_NOTHING = TrustPolicy()
