"""JSON rows: ``{"data": rows}`` (the classic Azure ML samples) and ``{"input_data": rows}`` or ``{"input_data":
{"columns": [...], "data": rows}}`` (Azure ML's MLflow deployments), answered ``{"predictions", "probabilities"}``.

A row is a list of numbers (flat or nested to the input shape) or, for tabular input with feature names, an object
keyed by name. ``serving.inputs`` validates the rows against the model's input spec. For a model that takes images,
a row may instead be a base64 string of an image file (``{"data": [b64, ...]}``, ``{"input_data": [b64, ...]}``,
``{"input_data": {"columns": ["image"], "data": [[b64], ...]}}``), decoded by ``serving.images``. A ``top_k``
field beside the rows asks for each row's k most probable labels, answered ``{"predictions": [[{"label", "score"},
...], ...]}``.
"""

from __future__ import annotations

from typing import Any

from model_arch.spec import InputSpec
from serving.answer_options import TOP_K, top_k_from_body
from serving.codecs.json_body import JSON, dumps, number_facts, rounded
from serving.codecs.types import Decoded, ReplyContext
from serving.errors import ClientError
from serving.images import base64_images, images_to_batch, takes_images
from serving.inputs import describe_keys, reorder_columns, rows_to_batch
from serving.predictor import Prediction


class RowsCodec:
    """One JSON field holding rows; ``input_data`` also takes pandas' "split" orientation (columns and data)."""

    media_type = JSON

    def __init__(self, key: str, form: str) -> None:
        self.name = key  # as GET /score and the score log line name this format
        self.key = key
        self.form = form

    def decode(
        self, document: dict[str, Any], spec: InputSpec, max_rows: int, body: bytes, max_images: int = 64
    ) -> Decoded:
        """``document[self.key]`` (parsed from ``body``) as the model's input batch.

        Raises:
            ClientError: 413 for too many rows or images, 422 for rows that do not fit the model, 400 for an image
                string that is not base64, the image's own 4xx for an image the model cannot take.
        """
        value = document[self.key]
        top_k = top_k_from_body(document.get(TOP_K), f'"{TOP_K}"')
        split = self.key == "input_data" and isinstance(value, dict)
        if takes_images(spec):
            strings = _image_strings(value.get("data") if split else value)
            if strings is not None:
                where = f'"{self.key}"' + (".data" if split else "")
                batch, facts = images_to_batch(base64_images(strings, where), spec, max_images, where)
                return Decoded(batch, self, item_facts=facts, top_k=top_k)
        facts = number_facts(body, document, value.get("data") if split else value)
        if split:
            value = _split_orientation(value, spec, max_rows)
        batch = rows_to_batch(value, spec, max_rows, self.key, facts.check_types, facts.integers)
        return Decoded(batch, self, top_k=top_k)

    def encode(self, prediction: Prediction, decoded: Decoded, context: ReplyContext) -> bytes:
        """Classification: ``{"predictions": [label, ...], "probabilities": [[p per label], ...]}``; with ``top_k``,
        ``{"predictions": [[{"label", "score"}, ...] per row]}``. Multilabel: each row's labels at or above the
        threshold, as a list. Regression: ``{"predictions": [{output name: value, ...}, ...]}``. Embedding:
        ``{"embeddings": [[...], ...]}``."""
        output = prediction.output
        if decoded.top_k is not None:
            return dumps({"predictions": prediction.top_k(decoded.top_k)})
        values = rounded(prediction.values)
        if output.kind == "embedding":
            return dumps({"embeddings": values})
        if output.kind == "regression":
            return dumps({"predictions": [dict(zip(output.names, row, strict=True)) for row in values]})
        return dumps({"predictions": prediction.labels(), "probabilities": values})


def _image_strings(value: Any) -> list[Any] | None:
    """The items of a list of images: ``[b64, ...]`` or one column ``[[b64], ...]``; None when ``value`` is not
    such a list (rows of numbers, which the row path reads or refuses). Decided by the first item, so that a
    list that mixes the two is refused item by item, naming the first one that is not an image."""
    if not isinstance(value, list) or not value:
        return None
    first = value[0]
    if isinstance(first, str):
        return value
    if isinstance(first, list) and len(first) == 1 and isinstance(first[0], str):
        return [row[0] if isinstance(row, list) and len(row) == 1 else row for row in value]
    return None


def _split_orientation(value: dict[str, Any], spec: InputSpec, max_rows: int) -> Any:
    """pandas' "split" orientation, ``{"columns": [...], "index": [...], "data": rows}`` -> rows in the spec's order.
    More than ``max_rows`` rows are left as they are, for ``rows_to_batch`` to refuse before any per-row work."""
    if "data" not in value:
        raise ClientError(
            422, "invalid_data", f'"input_data" is an object without "data"; got keys {describe_keys(value)}'
        )
    columns = value.get("columns")
    if isinstance(value["data"], list) and len(value["data"]) > max_rows:
        return value["data"]
    if isinstance(columns, list) and columns and spec.names:
        return reorder_columns(value["data"], columns, spec, "input_data")
    if isinstance(columns, list) and columns and len(columns) != spec.size:
        raise ClientError(
            422, "wrong_row_shape", f'"input_data" names {len(columns)} columns; this model takes {spec.size}'
        )
    return value["data"]


DATA = RowsCodec("data", '{"data": rows}')
INPUT_DATA = RowsCodec("input_data", '{"input_data": rows} or {"input_data": {"columns": [...], "data": rows}}')
