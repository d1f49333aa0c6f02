"""Open Inference Protocol (V2), as Triton, KServe and MLServer clients send it: ``{"id", "inputs": [{"name",
"shape", "datatype", "data"}]}``, answered ``{"model_name", "model_version", "id", "outputs": [...]}``.

For a model that takes images, a ``BYTES`` tensor of base64 strings, one per image (shape ``[n]`` or ``[n, 1]``),
as KServe's REST clients send binary data. ``"parameters": {"top_k": k}`` asks for each row's k most probable
labels, answered as ``labels`` and ``scores`` tensors shaped ``[rows, k]``.
"""

from __future__ import annotations

from typing import Any

from model_arch.spec import InputSpec
from serving.answer_options import TOP_K, top_k_from_body
from serving.codecs.json_body import JSON, dumps, number_facts, rounded
from serving.codecs.types import Decoded, ReplyContext
from serving.errors import ClientError
from serving.images import base64_images, images_to_batch, takes_images
from serving.inputs import array_to_batch, describe_value, numeric_array, shape_size
from serving.predictor import Prediction

# V2 datatypes that carry numbers; BOOL and BYTES are refused like booleans and strings in JSON rows.
V2_NUMERIC = ("FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")


def single_tensor(inputs: Any, expected: str) -> dict[str, Any]:
    """The one tensor of a V2 ``inputs`` list, with its ``shape``, ``datatype`` and ``data`` present.

    Raises:
        ClientError: 422 ``invalid_v2_request`` saying ``"inputs" must be a list holding`` ``expected``, or which
            keys the tensor lacks.
    """
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise ClientError(
            422, "invalid_v2_request", f'"inputs" must be a list holding {expected}; got {describe_value(inputs)}'
        )
    missing = [key for key in ("shape", "datatype", "data") if key not in inputs[0]]
    if missing:
        raise ClientError(
            422, "invalid_v2_request", f"inputs[0] lacks {missing}; a V2 tensor has name, shape, datatype, data"
        )
    return inputs[0]


class V2Codec:
    name = "v2"
    key = "inputs"
    media_type = JSON
    form = 'V2 {"inputs": [tensor]}'

    def decode(
        self, document: dict[str, Any], spec: InputSpec, max_rows: int, body: bytes, max_images: int = 64
    ) -> Decoded:
        """The one tensor in ``document["inputs"]`` (parsed from ``body``) as the model's input batch. Its ``shape``
        is checked (``serving.inputs.shape_size``) before anything counts, multiplies or reshapes with it.

        Raises:
            ClientError: 422 for a request that is not one well-formed numeric tensor fitting the model; 413 for too
                many rows.
        """
        tensor = single_tensor(
            document["inputs"], f"exactly one tensor object (this model has one input, {spec.name!r})"
        )
        shape, datatype, data = tensor["shape"], tensor["datatype"], tensor["data"]
        if not isinstance(shape, list) or not shape:
            raise ClientError(
                422,
                "invalid_v2_request",
                f"inputs[0].shape must be a list of whole numbers; got {describe_value(shape)}",
            )
        size = shape_size(shape, "inputs[0].shape", 422, "invalid_v2_request")
        parameters = document.get("parameters")
        top_k = top_k_from_body(parameters.get(TOP_K) if isinstance(parameters, dict) else None, "parameters.top_k")
        request_id = document.get("id")
        request_id = request_id if isinstance(request_id, str) else None
        if datatype == "BYTES" and takes_images(spec):
            return self._images(data, shape, size, spec, max_images, request_id, top_k)
        if datatype not in V2_NUMERIC:
            accepted = [*V2_NUMERIC, "BYTES (base64 images)"] if takes_images(spec) else list(V2_NUMERIC)
            raise ClientError(
                422,
                "unsupported_datatype",
                f"inputs[0].datatype is {describe_value(datatype)}; expected one of {accepted}",
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
        return Decoded(batch, self, request_id, top_k=top_k)

    def _images(
        self,
        data: Any,
        shape: list[int],
        size: int,
        spec: InputSpec,
        max_images: int,
        request_id: str | None,
        top_k: int | None,
    ) -> Decoded:
        """A ``BYTES`` tensor of base64 images, shaped ``[n]`` or ``[n, 1]``."""
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise ClientError(
                422,
                "shape_mismatch",
                f"inputs[0].shape is {shape}; a BYTES tensor of images is shaped [images] or [images, 1]",
            )
        if isinstance(data, list) and all(isinstance(item, list) and len(item) == 1 for item in data):
            data = [item[0] for item in data]  # [[b64], ...], as nested as the shape
        if not isinstance(data, list) or len(data) != size:
            found = f"{len(data)} items" if isinstance(data, list) else describe_value(data)
            raise ClientError(
                422, "shape_mismatch", f"inputs[0].shape {shape} holds {size} images; inputs[0].data has {found}"
            )
        batch, facts = images_to_batch(base64_images(data, "inputs[0].data"), spec, max_images, "inputs[0].data")
        return Decoded(batch, self, request_id, item_facts=facts, top_k=top_k)

    def encode(self, prediction: Prediction, decoded: Decoded, context: ReplyContext) -> bytes:
        """Classification: a ``predictions`` tensor of labels and a ``probabilities`` tensor (rows, labels); with
        ``top_k``, ``labels`` and ``scores`` tensors (rows, k). Multilabel: ``predictions`` is a BOOL tensor (rows,
        labels), true where a label is on. Regression: a ``predictions`` tensor (rows, outputs). Embedding: an
        ``embeddings`` tensor (rows, dimensions)."""
        output, rows = prediction.output, prediction.rows
        values = rounded(prediction.values.reshape(-1))
        numeric = output.labelled and all(
            isinstance(label, int) and not isinstance(label, bool) for label in output.labels
        )
        label_type = "INT64" if numeric else "BYTES"
        probabilities = {"name": "probabilities", "shape": [rows, output.width], "datatype": "FP32", "data": values}
        if output.kind in ("regression", "embedding"):
            name = "embeddings" if output.kind == "embedding" else "predictions"
            outputs = [{"name": name, "shape": [rows, output.width], "datatype": "FP32", "data": values}]
        elif decoded.top_k is not None:
            ranked = prediction.top_k(decoded.top_k)
            k = len(ranked[0]) if ranked else 0
            outputs = [
                {"name": "labels", "shape": [rows, k], "datatype": label_type,
                 "data": [item["label"] for row in ranked for item in row]},
                {"name": "scores", "shape": [rows, k], "datatype": "FP32",
                 "data": [item["score"] for row in ranked for item in row]},
            ]  # fmt: skip
        elif output.kind == "multilabel":  # one flag per label: a tensor cannot hold rows of different lengths
            chosen = (prediction.values >= output.threshold).reshape(-1).tolist()
            outputs = [
                {"name": "predictions", "shape": [rows, output.width], "datatype": "BOOL", "data": chosen},
                probabilities,
            ]
        else:
            labels = prediction.labels()
            outputs = [{"name": "predictions", "shape": [rows], "datatype": label_type, "data": labels}, probabilities]
        return dumps(
            {
                "model_name": context.model_name,
                "model_version": context.model_version,
                "id": decoded.request_id or context.request_id,
                "outputs": outputs,
            }
        )


V2 = V2Codec()
