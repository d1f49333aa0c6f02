"""Recognise a PyTorch model file by its content, never by its name.

``torch.save`` output is a zip with ``data.pkl`` (or, before PyTorch 1.6, a bare pickle that starts with a
magic number); TorchScript is a zip with ``code/`` and ``constants.pkl``; ``torch.export`` writes a zip whose
``archive_format`` entry reads ``pt2``; safetensors starts with an 8-byte header length and then ``{``.
``model_folder.weights`` chooses how to load a file from this, and ``serving.doctor`` reports it.

Detection runs in every worker at start-up, on files a stranger may have made, so its cost is bounded whatever the
file holds: a zip's directory is sized from its end record before it is read (at most ``MAX_ZIP_ENTRIES`` entries,
``MAX_ZIP_DIRECTORY`` bytes), one entry is opened and at most ``FORMAT_ENTRY_BYTES`` of it inflated, and a
safetensors header is parsed only up to ``MAX_DETECTED_HEADER`` bytes (docs/reliability.md).
"""

from __future__ import annotations

import json
import struct
import zipfile
import zlib
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
MAX_DETECTED_HEADER = 1024 * 1024  # a longer header (tens of thousands of tensors) is recognised by its start alone
MAX_ZIP_ENTRIES = 100_000  # a torch.save archive has one entry per storage; beyond this a zip is not inspected
MAX_ZIP_DIRECTORY = 32 * 1024 * 1024  # bytes of central directory, read whole by zipfile
FORMAT_ENTRY_BYTES = 64  # torch.export's archive_format entry holds "pt2"; no more of it is inflated than this
_END_OF_DIRECTORY = struct.Struct("<4s4H2LH")  # zip's end record: signature, disks, entries, size, offset, comment
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_END = struct.Struct("<4sQ2H2L4Q")


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
    if _is_safetensors(path):
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


def _is_safetensors(path: Path) -> bool:
    """A header length in range, a file long enough to hold it, and a JSON object there: parsed whole up to
    ``MAX_DETECTED_HEADER`` bytes, recognised by its first byte beyond (the safetensors library checks it at load)."""
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if not 2 <= length <= MAX_SAFETENSORS_HEADER or f.seek(0, 2) < 8 + length:
                return False
            if length > MAX_DETECTED_HEADER:
                f.seek(8)
                return f.read(1) == b"{"
    except (OSError, struct.error):
        return False
    return safetensors_header(path) is not None


def _zip_format(path: Path) -> str:
    size = _zip_directory_size(path)
    if size is None or size[0] > MAX_ZIP_ENTRIES or size[1] > MAX_ZIP_DIRECTORY:
        return UNKNOWN  # not inspected: zipfile would read and parse all of it
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        format_entry = next((i for i in infos if i.filename.rsplit("/", 1)[-1] == "archive_format"), None)
        if format_entry is not None and _start_of(archive, format_entry).strip() == b"pt2":
            return TORCH_EXPORT
    leaves = {info.filename.split("/", 1)[-1] for info in infos}
    if "constants.pkl" in leaves or any(leaf.startswith("code/") for leaf in leaves):
        return TORCHSCRIPT
    if "data.pkl" in leaves:
        return TORCH_SAVE
    return UNKNOWN


def _start_of(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """The first ``FORMAT_ENTRY_BYTES`` of an entry, inflating no more than zipfile's 4 KiB step. torch writes its
    entries stored; bzip2 and LZMA entries are skipped, since zipfile inflates their first read whole."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.file_size > FORMAT_ENTRY_BYTES:
        return b""
    try:
        with archive.open(info) as entry:
            return entry.read(FORMAT_ENTRY_BYTES)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error):  # damaged, or not the size it says: not "pt2"
        return b""


def _zip_directory_size(path: Path) -> tuple[int, int] | None:
    """(entries, bytes) of a zip's central directory, from its end record (zip64's when present), or None when it
    has none: read from the last 64 KiB of the file, before zipfile reads the directory itself."""
    with open(path, "rb") as f:
        file_size = f.seek(0, 2)
        tail_start = max(0, file_size - (_END_OF_DIRECTORY.size + 0xFFFF))
        f.seek(tail_start)
        tail = f.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < _END_OF_DIRECTORY.size:
            return None
        *_, entries, directory_bytes, _, _ = _END_OF_DIRECTORY.unpack_from(tail, at)
        locator_at = at - _ZIP64_LOCATOR.size
        if locator_at >= 0 and tail[locator_at : locator_at + 4] == b"PK\x06\x07":
            _, _, end_offset, _ = _ZIP64_LOCATOR.unpack_from(tail, locator_at)
            f.seek(end_offset)
            record = f.read(_ZIP64_END.size)
            if len(record) == _ZIP64_END.size and record.startswith(b"PK\x06\x06"):
                *_, entries, directory_bytes, _ = _ZIP64_END.unpack(record)
    return entries, directory_bytes


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
