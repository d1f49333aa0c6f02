"""The model folder's tokenizer: found, checked against its manifest and loaded, or a start-up failure that says why.

``serving.startup`` calls ``load_text_encoder`` for a text model (its manifest has a ``tokenizer`` entry); the
doctor calls it too. The file must be inside the folder and match the checksum training recorded; its vocabulary
must have the spec's pad token, and fit the model's ``input_ids`` range (a tokenizer with more tokens than the
model's embedding has rows would make ids the model cannot look up). Imports ``tokenizers``, never torch.
"""

from __future__ import annotations

from pathlib import Path

from model_arch.text import TextEncoder
from model_folder.manifest import Manifest, ModelFolderError, check_sha256, file_in_folder


def load_text_encoder(folder: Path, manifest: Manifest) -> TextEncoder:
    """The ``TextEncoder`` for the text model whose manifest is in ``folder``.

    Raises:
        ModelFolderError: no tokenizer entry, the file is missing, outside the folder, changed since training, not
            a tokenizer, lacks the pad token, or has more tokens than the model takes.
    """
    spec = manifest.tokenizer
    if spec is None:
        raise ModelFolderError(f"{folder} holds a model that takes no text (its manifest has no tokenizer entry)")
    path = file_in_folder(folder, spec.file, "tokenizer")
    if spec.sha256 is not None:
        check_sha256(path, spec.sha256)
    try:
        encoder = TextEncoder(path, spec)
    except ValueError as err:
        raise ModelFolderError(
            f"{err}. Register the tokenizer the model was trained with (training writes it into the model folder)."
        ) from err
    ids = next(s for s in manifest.inputs if s.name == "input_ids")
    if ids.maximum is not None and encoder.vocab_size > ids.maximum + 1:
        raise ModelFolderError(
            f"{path} has {encoder.vocab_size} tokens, but the model's input_ids go up to {ids.maximum:g} (its "
            f"embedding has {ids.maximum + 1:g} rows): this tokenizer is not the one the model was trained with. "
            "Register the folder exactly as training wrote it."
        )
    return encoder
