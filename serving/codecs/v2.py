"""Open Inference Protocol (V2), as Triton, KServe and MLServer clients send it: ``{"id", "inputs": [{"name",
"shape", "datatype", "data"}]}``, answered ``{"model_name", "model_version", "id", "outputs": [...]}``."""

from __future__ import annotations

from typing import Any

from model_arch.spec import InputSpec
from serving.codecs.json_body import JSON, dumps, number_facts, rounded
from serving.codecs.types import Decoded, ReplyContext
from serving.errors import ClientError
from serving.inputs import array_to_batch, describe_value, numeric_array, shape_size
from serving.predictor import Prediction

# V2 datatypes that carry numbers; BOOL and BYTES are refused like booleans and strings in JSON rows.
V2_NUMERIC = ("FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")


class V2Codec:
    name = "v2"
    key = "inputs"
    media_type = JSON
    form = 'V2 {"inputs": [tensor]}'

    def decode(self, document: dict[str, Any], spec: InputSpec, max_rows: int, body: bytes) -> Decoded:
        """The one tensor in ``document["inputs"]`` (parsed from ``body``) as the model's input batch. Its ``shape``
        is checked (``serving.inputs.shape_size``) before anything counts, multiplies or reshapes with it.

        Raises:
            ClientError: 422 for a request that is not one well-formed numeric tensor fitting the model; 413 for too
                many rows.
        """
        inputs = document["inputs"]
        if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
            raise ClientError(
                422,
                "invalid_v2_request",
                f'"inputs" must be a list holding exactly one tensor object (this model has one input, '
                f"{spec.name!r}); got {describe_value(inputs)}",
            )
        tensor = inputs[0]
        missing = [key for key in ("shape", "datatype", "data") if key not in tensor]
        if missing:
            raise ClientError(
                422, "invalid_v2_request", f"inputs[0] lacks {missing}; a V2 tensor has name, shape, datatype, data"
            )
        shape, datatype, data = tensor["shape"], tensor["datatype"], tensor["data"]
        if not isinstance(shape, list) or not shape:
            raise ClientError(
                422,
                "invalid_v2_request",
                f"inputs[0].shape must be a list of whole numbers; got {describe_value(shape)}",
            )
        size = shape_size(shape, "inputs[0].shape", 422, "invalid_v2_request")
        if datatype not in V2_NUMERIC:
            raise ClientError(
                422,
                "unsupported_datatype",
                f"inputs[0].datatype is {describe_value(datatype)}; expected one of {list(V2_NUMERIC)}",
            )
        if not isinstance(data, list):
            raise ClientError(
                422, "invalid_v2_request", f"inputs[0].data must be a list of numbers; got {describe_value(data)}"
            )
        facts = number_facts(body, document, data)
        values = numeric_array(data, spec, "inputs[0].data", facts.check_types, facts.integers).reshape(-1)
        if values.size != size:
            raise ClientError(
                422,
                "shape_mismatch",
                f"inputs[0].shape {shape} holds {size} values; inputs[0].data has {values.size}",
            )
        batch = array_to_batch(values.reshape(shape), spec, max_rows, "inputs[0]")
        request_id = document.get("id")
        return Decoded(batch, self, request_id if isinstance(request_id, str) else None)

    def encode(self, prediction: Prediction, decoded: Decoded, context: ReplyContext) -> bytes:
        """Classification: a ``predictions`` tensor of labels and a ``probabilities`` tensor (rows, labels).
        Regression: a ``predictions`` tensor (rows, outputs)."""
        output, rows = prediction.output, prediction.rows
        values = rounded(prediction.values.reshape(-1))
        if output.kind in ("regression", "embedding"):
            name = "embeddings" if output.kind == "embedding" else "predictions"
            outputs = [{"name": name, "shape": [rows, output.width], "datatype": "FP32", "data": values}]
        else:
            labels = prediction.labels()
            numeric = all(isinstance(label, int) and not isinstance(label, bool) for label in output.labels)
            outputs = [
                {"name": "predictions", "shape": [rows], "datatype": "INT64" if numeric else "BYTES", "data": labels},
                {"name": "probabilities", "shape": [rows, output.width], "datatype": "FP32", "data": values},
            ]
        return dumps(
            {
                "model_name": context.model_name,
                "model_version": context.model_version,
                "id": decoded.request_id or context.request_id,
                "outputs": outputs,
            }
        )


V2 = V2Codec()
