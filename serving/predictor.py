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
from model_folder.engines import Engine
from model_folder.manifest import Manifest, ModelFolderError


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one batch.

    Attributes:
        values: ``(rows, output width)`` float32: probabilities in label order (classification), or one value per
            output name (regression).
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

    ``chunk_rows`` bounds the rows of one forward pass (memory stays flat for large requests).
    """

    engine: Engine
    manifest: Manifest
    weights: Path
    threads: int
    name: str = "model"
    version: str = "local"
    chunk_rows: int = 256

    def predict(self, batch: np.ndarray) -> Prediction:
        """Model input ``(rows, *input.shape)`` float32 -> its ``Prediction``, computed in chunks of ``chunk_rows``."""
        step = self.chunk_rows
        if len(batch) <= step:
            values = self.engine(batch)
        else:
            values = np.concatenate([self.engine(batch[i : i + step]) for i in range(0, len(batch), step)])
        return Prediction(values, self.manifest.output)

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
            values = self.predict(np.zeros((rows, *self.manifest.input.shape), dtype=np.float32)).values
            if values.shape != (rows, output.width):
                described = f"{len(output.labels)} labels" if output.labelled else f"{output.width} names"
                raise ModelFolderError(
                    f"the model answers shape {list(values.shape)} for {rows} row(s), but its output spec has "
                    f"{described} ({list(output.labels or output.names)[:10]}): make the spec match the model's "
                    "outputs (the manifest's output, or the architecture's OUTPUT_SPEC)"
                )
        return time.perf_counter() - started

    def metadata(self) -> dict[str, Any]:
        """What a client may discover about the model (answered on ``GET /score``)."""
        return {
            "name": self.name,
            "version": self.version,
            "architecture": self.manifest.architecture,
            "input": self.manifest.input.to_dict(),
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
