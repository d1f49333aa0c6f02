"""Text as a model input: how a batch of strings becomes the model's named integer inputs.

A text model's manifest carries a ``TextSpec`` (its ``"tokenizer"`` entry): the tokenizer file in the model folder
(Hugging Face ``tokenizers``' ``tokenizer.json``), the most tokens a text keeps (``max_length``) and which end is cut
beyond it, how a batch is padded, and which model inputs the tokenizer fills (``input_ids``, ``attention_mask``,
``token_type_ids``). ``TextEncoder`` loads the file and applies the spec *whatever the file itself says*: a
``tokenizer.json`` can carry its own truncation and padding settings (or none, and then a long text becomes as many
tokens as it has words); both are replaced here by the spec's. ``TextEncoder.encode`` is the one function training
and serving both call, so a text gives the same ids in both.

Needs ``tokenizers`` only (Rust, no torch, no network). ``serving`` bounds what reaches it (characters per text,
texts per request); the token count is then bounded by ``max_length``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

TOKENIZER_NAME = "tokenizer.json"
FEEDS = ("input_ids", "attention_mask", "token_type_ids")  # what a tokenizer can fill, by the model's input names
TRUNCATIONS = ("right", "left")  # which end of a long text is cut
PADDINGS = ("longest", "max_length")  # to the longest text of the batch, or every text to max_length
MAX_LENGTH = 8192  # the most tokens a spec may keep per text
HEX = "0123456789abcdef"

# Hugging Face encoders this template rebuilds from a config.json (model_arch.hf_text, model_folder.hf_folder).
HF_ARCHITECTURE = "transformers"  # the architecture a save_pretrained folder is served as (model_arch.hf_text)
# model_type -> the inputs its forward takes first, in order (what the tokenizer fills).
HF_MODEL_TYPES: dict[str, tuple[str, ...]] = {
    "bert": ("input_ids", "attention_mask", "token_type_ids"),
    "electra": ("input_ids", "attention_mask", "token_type_ids"),
    "distilbert": ("input_ids", "attention_mask"),
    "roberta": ("input_ids", "attention_mask"),
    "xlm-roberta": ("input_ids", "attention_mask"),
}
# task -> (the transformers Auto class, the output that holds the answer)
HF_TASKS = {
    "sequence-classification": ("AutoModelForSequenceClassification", "logits"),
    "feature-extraction": ("AutoModel", "last_hidden_state"),
}


@dataclass(frozen=True)
class TextSpec:
    """How strings become a text model's inputs.

    Attributes:
        file: the tokenizer file (``tokenizer.json``), in the model folder.
        max_length: the most tokens a text keeps, special tokens included; the rest is cut off.
        truncation: which end is cut: ``right`` (the end of the text) or ``left`` (its beginning).
        padding: ``longest`` pads a batch to its longest text (less work for short texts); ``max_length`` pads every
            text to ``max_length`` (one shape for every batch, as some exports need).
        pad_token: the token that pads, which the tokenizer's vocabulary must have.
        feeds: the model inputs the tokenizer fills, in the order the model takes them.
        sha256: the tokenizer file's checksum, checked before it is loaded.
    """

    file: str = TOKENIZER_NAME
    max_length: int = 128
    truncation: str = "right"
    padding: str = "longest"
    pad_token: str = "[PAD]"
    feeds: tuple[str, ...] = ("input_ids", "attention_mask")
    sha256: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "feeds", tuple(self.feeds) if isinstance(self.feeds, (list, tuple)) else self.feeds)
        checks = (
            (isinstance(self.file, str) and bool(self.file), f"tokenizer.file must be a file name, got {self.file!r}"),
            (
                isinstance(self.max_length, int) and not isinstance(self.max_length, bool)
                and 2 <= self.max_length <= MAX_LENGTH,
                f"tokenizer.max_length must be a whole number from 2 to {MAX_LENGTH}, got {self.max_length!r}",
            ),
            (self.truncation in TRUNCATIONS, f"tokenizer.truncation must be one of {list(TRUNCATIONS)}"),
            (self.padding in PADDINGS, f"tokenizer.padding must be one of {list(PADDINGS)}, got {self.padding!r}"),
            (isinstance(self.pad_token, str) and bool(self.pad_token), "tokenizer.pad_token must be a token"),
            (
                isinstance(self.feeds, tuple) and "input_ids" in self.feeds and set(self.feeds) <= set(FEEDS)
                and len(set(self.feeds)) == len(self.feeds),
                f"tokenizer.feeds must list input_ids and any of {list(FEEDS[1:])} once each, got {self.feeds!r}",
            ),
            (
                self.sha256 is None
                or (isinstance(self.sha256, str) and len(self.sha256) == 64 and set(self.sha256) <= set(HEX)),
                f"tokenizer.sha256 must be 64 lowercase hex digits, got {self.sha256!r}",
            ),
        )  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["feeds"] = list(self.feeds)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextSpec:
        if not isinstance(data, dict):
            raise ValueError(f"tokenizer must be a JSON object, got {data!r}")
        return cls(**data)


class TextEncoder:
    """A tokenizer file with a ``TextSpec`` applied: strings in, the model's named int64 arrays out.

    Raises (on construction):
        ValueError: the file is not a tokenizer, or its vocabulary lacks the pad token (the message names both).
    """

    def __init__(self, path: str | Path, spec: TextSpec) -> None:
        from tokenizers import Tokenizer  # only where text is served: image and tabular workers never load it

        self.path, self.spec = Path(path), spec
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as err:  # tokenizers raises its own Exception for a file it cannot read
            raise ValueError(f"{path} is not a tokenizers tokenizer.json ({str(err)[:200]})") from err
        pad_id = tokenizer.token_to_id(spec.pad_token)
        if pad_id is None:
            raise ValueError(
                f"{path} has no token {spec.pad_token!r} (the spec's pad_token) in its vocabulary of "
                f"{tokenizer.get_vocab_size()} tokens: set tokenizer.pad_token to the tokenizer's own padding token"
            )
        # Whatever the file says about truncation and padding is replaced by the spec's, so that no text exceeds
        # max_length and a batch's shape is the spec's choice.
        tokenizer.no_truncation()
        tokenizer.no_padding()
        tokenizer.enable_truncation(spec.max_length, direction=spec.truncation)
        length = spec.max_length if spec.padding == "max_length" else None
        tokenizer.enable_padding(direction="right", pad_id=pad_id, pad_token=spec.pad_token, length=length)
        self.tokenizer = tokenizer
        self.pad_id = pad_id
        self.vocab_size = tokenizer.get_vocab_size()

    def encode(self, texts: list[str]) -> dict[str, np.ndarray]:
        """``texts`` -> ``{feed: (len(texts), tokens) int64}`` for each of the spec's feeds, ``tokens`` the longest
        text's token count (at most ``max_length``), or ``max_length`` with ``padding="max_length"``. Training and
        serving both call this."""
        encodings = self.tokenizer.encode_batch(texts)
        arrays = {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64)}
        if "attention_mask" in self.spec.feeds:
            arrays["attention_mask"] = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        if "token_type_ids" in self.spec.feeds:
            arrays["token_type_ids"] = np.array([e.type_ids for e in encodings], dtype=np.int64)
        return {feed: arrays[feed] for feed in self.spec.feeds}

    def token_counts(self, batch: dict[str, np.ndarray]) -> list[int]:
        """Tokens each text kept (its padding not counted), for the log."""
        if "attention_mask" in batch:
            return batch["attention_mask"].sum(axis=1).tolist()
        return (batch["input_ids"] != self.pad_id).sum(axis=1).tolist()
