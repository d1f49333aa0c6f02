"""The loaded model with what it needs to answer: the forward pass in chunks, warm-up and metadata.

Built once per worker by ``serving.startup.load_predictor``; ``serving.http`` calls ``predict`` for every request
and hands the ``Prediction`` (arrays, not JSON) to the request's codec (``serving.codecs``), which renders it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model_arch.spec import OutputSpec
from model_arch.text import TextEncoder
from model_folder.engines import MASK_INPUT, Batch, Engine, batch_rows, batch_slice
from model_folder.manifest import Manifest, ModelFolderError


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one batch.

    Attributes:
        values: ``(rows, output width)`` float32: probabilities in label order (classification), one value per
            output name (regression), or one vector per row (embedding).
        output: what the values mean.
    """

    values: np.ndarray
    output: OutputSpec

    @property
    def rows(self) -> int:
        return len(self.values)

    def labels(self) -> list[Any]:
        """Classification: the most probable label of each row. Multilabel: each row's list of the labels whose
        probability reaches the threshold."""
        labels = self.output.labels
        if self.output.kind == "multilabel":
            chosen = self.values >= self.output.threshold
            return [[label for label, on in zip(labels, row, strict=True) if on] for row in chosen.tolist()]
        return [labels[i] for i in self.values.argmax(axis=1).tolist()]

    def top_k(self, k: int) -> list[list[dict[str, Any]]]:
        """Per row, the ``k`` most probable labels (at most all of them), ``[{"label", "score"}]``, best first."""
        labels, k = self.output.labels, min(k, self.values.shape[1])
        order = np.argsort(-self.values, axis=1, kind="stable")[:, :k]
        scores = np.take_along_axis(self.values, order, axis=1).astype(np.float64).round(7)
        return [
            [{"label": labels[i], "score": s} for i, s in zip(row, row_scores, strict=True)]
            for row, row_scores in zip(order.tolist(), scores.tolist(), strict=True)
        ]


@dataclass
class Predictor:
    """The model's forward pass (``model_folder.engines``: ONNX Runtime or PyTorch) and the manifest that says what
    goes in and comes out.

    ``chunk_rows`` bounds the rows of one forward pass (memory stays flat for large requests). ``text``: for a
    text model, the tokenizer that turns strings into its inputs (``model_folder.tokenizer``).
    """

    engine: Engine
    manifest: Manifest
    weights: Path
    threads: int
    name: str = "model"
    version: str = "local"
    chunk_rows: int = 256
    text: TextEncoder | None = None

    def predict(self, batch: Batch) -> Prediction:
        """Model input ``(rows, *input.shape)`` float32 (or each input's array by name) -> its ``Prediction``,
        computed in chunks of ``chunk_rows``."""
        step, rows = self.chunk_rows, batch_rows(batch)
        if rows <= step:
            values = self.engine(batch)
        else:
            values = np.concatenate([self.engine(batch_slice(batch, i, i + step)) for i in range(0, rows, step)])
        return Prediction(values, self.manifest.output)

    def predict_texts(self, texts: list[str]) -> Prediction:
        """Strings -> their ``Prediction``, tokenized as training tokenized them. In process, as a server would."""
        if self.text is None:
            raise ValueError(f"{self.weights} is not a text model")
        return self.predict(self.text.encode(texts))

    def warm_up_batch(self, rows: int) -> Batch:
        """A batch of ``rows`` the model takes: texts through the tokenizer; zeros otherwise (a dynamic axis 8 long,
        an attention mask of ones)."""
        if self.text is not None:
            return self.text.encode(["warm up"] * rows)
        inputs = self.manifest.inputs
        if len(inputs) == 1 and not inputs[0].dynamic:
            return np.zeros((rows, *inputs[0].shape), dtype=np.float32)
        return {
            spec.name: (np.ones if spec.name == MASK_INPUT else np.zeros)(
                (rows, *spec.example_shape(8)), dtype=spec.numpy_dtype
            )
            for spec in inputs
        }

    def warm_up(self) -> float:
        """Inference on batches of zeros at every power of two up to ``chunk_rows`` (and 2, always), so no
        client pays for a first-time shape, and a model that only takes one batch size (a static export)
        fails here instead of on a request. Returns the seconds it took.

        Raises:
            ModelFolderError: the model answers another shape than its output spec describes (a label list that
                does not match its classes would fail every request that predicts a missing label).
        """
        started = time.perf_counter()
        output = self.manifest.output
        for rows in warm_up_sizes(self.chunk_rows):
            values = self.predict(self.warm_up_batch(rows)).values
            if values.shape != (rows, output.width):
                described = (
                    f"{len(output.labels)} labels"
                    if output.labelled
                    else f"{output.width} dimensions"
                    if output.kind == "embedding"
                    else f"{output.width} names"
                )
                raise ModelFolderError(
                    f"the model answers shape {list(values.shape)} for {rows} row(s), but its output spec has "
                    f"{described} ({list(output.labels or output.names)[:10]}): make the spec match the model's "
                    "outputs (the manifest's output, or the architecture's OUTPUT_SPEC)"
                )
        return time.perf_counter() - started

    def metadata(self) -> dict[str, Any]:
        """What a client may discover about the model (answered on ``GET /score``)."""
        described: dict[str, Any] = {"input": self.manifest.input.to_dict()}
        if len(self.manifest.inputs) > 1 or self.text is not None:
            described = {"inputs": [spec.to_dict() for spec in self.manifest.inputs]}
        if self.text is not None:
            tokenizer = self.manifest.tokenizer
            described["tokenizer"] = {**tokenizer.to_dict(), "vocab_size": self.text.vocab_size}
        return {
            "name": self.name,
            "version": self.version,
            "architecture": self.manifest.architecture,
            **described,
            "output": self.manifest.output.to_dict(),
            "weights": self.weights.name,
            "weights_sha256": self.manifest.weights_sha256,
            "torch_version": self.manifest.torch_version,
            "device": str(self.engine.device),
            "runtime": self.engine.name,
        }


def warm_up_sizes(chunk_rows: int) -> list[int]:
    """1, 2, 4, ... up to ``chunk_rows``, and ``chunk_rows`` itself: the batch shapes a forward pass sees."""
    sizes = [1, 2]
    while sizes[-1] * 2 < chunk_rows:
        sizes.append(sizes[-1] * 2)
    return sorted({*sizes, chunk_rows})
