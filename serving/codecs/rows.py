"""JSON rows: ``{"data": rows}`` (the classic Azure ML samples) and ``{"input_data": rows}`` or ``{"input_data":
{"columns": [...], "data": rows}}`` (Azure ML's MLflow deployments), answered ``{"predictions", "probabilities"}``.

A row is a list of numbers (flat or nested to the input shape) or, for tabular input with feature names, an object
keyed by name. ``serving.inputs`` validates the rows against the model's input spec.
"""

from __future__ import annotations

from typing import Any

from model_arch.spec import InputSpec
from serving.codecs.json_body import JSON, dumps, number_facts, rounded
from serving.codecs.types import Decoded, ReplyContext
from serving.errors import ClientError
from serving.inputs import describe_keys, reorder_columns, rows_to_batch
from serving.predictor import Prediction


class RowsCodec:
    """One JSON field holding rows; ``input_data`` also takes pandas' "split" orientation (columns and data)."""

    media_type = JSON

    def __init__(self, key: str, form: str) -> None:
        self.name = key  # as GET /score and the score log line name this format
        self.key = key
        self.form = form

    def decode(self, document: dict[str, Any], spec: InputSpec, max_rows: int, body: bytes) -> Decoded:
        """``document[self.key]`` (parsed from ``body``) as the model's input batch.

        Raises:
            ClientError: 413 for too many rows, 422 for rows that do not fit the model.
        """
        value = document[self.key]
        split = self.key == "input_data" and isinstance(value, dict)
        facts = number_facts(body, document, value.get("data") if split else value)
        if split:
            value = _split_orientation(value, spec, max_rows)
        return Decoded(rows_to_batch(value, spec, max_rows, self.key, facts.check_types, facts.integers), self)

    def encode(self, prediction: Prediction, decoded: Decoded, context: ReplyContext) -> bytes:
        """Classification: ``{"predictions": [label, ...], "probabilities": [[p per label], ...]}``.
        Regression: ``{"predictions": [{output name: value, ...}, ...]}``.
        Embedding: ``{"embeddings": [[...], ...]}``."""
        output = prediction.output
        values = rounded(prediction.values)
        if output.kind == "embedding":
            return dumps({"embeddings": values})
        if output.kind == "regression":
            return dumps({"predictions": [dict(zip(output.names, row, strict=True)) for row in values]})
        return dumps({"predictions": prediction.labels(), "probabilities": values})


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
