"""The loaded model with what it needs to answer: forward pass, rendering, warm-up and its metadata.

Built once per worker by ``serving.startup.load_predictor``; called by ``serving.http`` for every request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from model_arch.model_folder import Manifest


@dataclass
class Predictor:
    """A model in eval mode on its device, and the manifest that says what goes in and comes out."""

    model: nn.Module
    manifest: Manifest
    device: torch.device
    weights: Path
    threads: int
    name: str = "model"
    version: str = "local"

    def predict(self, batch: np.ndarray) -> dict[str, list[Any]]:
        """Model input ``(batch, *input.shape)`` float32 -> ``{"predictions": [label, ...],
        "probabilities": [[p per label], ...]}``, plain lists ready for JSON."""
        with torch.inference_mode():
            logits = self.model(torch.from_numpy(batch).to(self.device))
            probabilities = torch.softmax(logits.float(), dim=1).cpu().numpy()
        labels = self.manifest.output.labels
        return {
            "predictions": [labels[i] for i in probabilities.argmax(axis=1).tolist()],
            "probabilities": probabilities.tolist(),
        }

    def warm_up(self, batch_sizes: tuple[int, ...] = (1, 2)) -> float:
        """Inference on batches of zeros, so the first client does not pay for lazy initialisation, and a
        model that only takes one batch size (a static export) fails here instead of on a request.

        Returns the seconds it took.
        """
        started = time.perf_counter()
        for rows in batch_sizes:
            self.predict(np.zeros((rows, *self.manifest.input.shape), dtype=np.float32))
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
            "device": str(self.device),
        }
