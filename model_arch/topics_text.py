"""The text example: a small classifier that tells a short text's topic (sport, weather, food or technology).

Clients send strings; the model folder's own tokenizer (a WordPiece vocabulary that ``training.train`` trains with
Hugging Face ``tokenizers`` on the training texts, saved as ``tokenizer.json``) turns them into ``input_ids`` and an
``attention_mask``, padded to the longest text of the batch and cut at ``max_length`` tokens (``model_arch.text``).
The network averages the embeddings of a text's tokens (the mask leaves the padding out) and a linear layer scores
the topics. The texts are ``training/texts/topics.tsv``: written for the demo, formulaic (see
``training/texts/make_topics.py``), so its held-out accuracy shows the path works, not that it understands English.
"""

from __future__ import annotations

import torch
from torch import nn

from model_arch.architecture import Architecture
from model_arch.spec import DYNAMIC, InputSpec, OutputSpec
from model_arch.text import TextSpec

TOPICS = ("sport", "weather", "food", "technology")
VOCAB_SIZE = 1000  # the most tokens the trained vocabulary may have; training records the real count

INPUTS = (
    InputSpec(
        name="input_ids",
        shape=(DYNAMIC,),
        dtype="int64",
        minimum=0,
        maximum=VOCAB_SIZE - 1,
        description="Token ids from the model folder's tokenizer.json, [CLS] first, padded with [PAD] (id 0).",
    ),
    InputSpec(
        name="attention_mask",
        shape=(DYNAMIC,),
        dtype="int64",
        minimum=0,
        maximum=1,
        description="1 for a text's tokens, 0 for padding.",
    ),
)
TOKENIZER = TextSpec(max_length=64, truncation="right", padding="longest", feeds=("input_ids", "attention_mask"))
OUTPUT_SPEC = OutputSpec(kind="classification", labels=TOPICS)


class TopicsClassifier(nn.Module):
    def __init__(self, vocab_size: int = VOCAB_SIZE, dim: int = 64, classes: int = len(TOPICS)) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.classifier = nn.Linear(dim, classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # input_ids, attention_mask: (batch, tokens) int64 -> logits (batch, classes)
        mask = attention_mask.unsqueeze(-1).to(torch.float32)  # (batch, tokens, 1)
        pooled = (self.embedding(input_ids) * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return self.classifier(pooled)


ARCHITECTURE = Architecture(
    name="topics_text",
    model_class=TopicsClassifier,
    input_spec=INPUTS[0],
    output_spec=OUTPUT_SPEC,
    inputs=INPUTS,
    tokenizer=TOKENIZER,
)
