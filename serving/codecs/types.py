"""The types every codec shares: what a decoded request is, and what an answer needs besides the prediction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from serving.predictor import Prediction


class Codec(Protocol):
    """One wire format, both ways: a request in it becomes a model batch, a prediction becomes its answer."""

    name: str  # as GET /score and the score log line name the format
    media_type: str  # the Content-Type of its answers
    form: str  # what a request looks like, for GET /score

    def encode(self, prediction: Prediction, decoded: Decoded, context: ReplyContext) -> bytes: ...


@dataclass(frozen=True)
class Decoded:
    """A validated model batch, the codec that read it (and answers it), and the request's own id if it sent one.

    Attributes:
        batch: model input, ``(rows, *spec.shape)`` float32.
        codec: the wire format the request came in.
        request_id: an id carried in the body (V2's ``id``), echoed in its answer.
        item_facts: for inputs that are not numbers (an image, a text), one dict per row of what the request held,
            derived from it (an image's format, size and mode), for the log and for data collection; empty for rows
            of numbers, which are their own description.
    """

    batch: np.ndarray
    codec: Codec
    request_id: str | None = None
    item_facts: tuple[dict[str, Any], ...] = ()
    top_k: int | None = None  # answer each row with its k most probable labels (the request's top_k)

    @property
    def protocol(self) -> str:
        return self.codec.name


@dataclass(frozen=True)
class ReplyContext:
    """What an answer may name besides the prediction: the deployed model and the server's request id."""

    model_name: str
    model_version: str
    request_id: str
