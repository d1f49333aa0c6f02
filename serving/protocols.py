"""The request formats clients really send, and the answer each one expects back.

* ``application/json`` ``{"data": rows}``: the classic Azure ML samples.
* ``application/json`` ``{"input_data": rows}`` or ``{"input_data": {"columns": [...], "data": rows}}``: the
  MLflow-style body of Azure ML's MLflow deployments.
* ``application/json`` ``{"inputs": [{"name", "shape", "datatype", "data"}]}``: Open Inference Protocol (V2,
  as sent by Triton, KServe and MLServer tooling), answered in V2 shape.
* ``application/x-npy``: ``numpy.save`` of one array shaped ``(rows, ...)``, loaded with ``allow_pickle=False``;
  the fast path for large batches.

``decode`` turns a body into a validated batch (``serving.inputs`` does the checking), ``encode`` renders the
prediction in the shape the request's format expects. Called by ``serving.http``.
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from model_arch.spec import InputSpec, OutputSpec
from serving.errors import ClientError
from serving.inputs import array_to_batch, json_type, numeric_array, parse_json, reorder_columns, rows_to_batch

JSON = "application/json"
NPY = "application/x-npy"
CONTENT_TYPES = (JSON, NPY)
# V2 datatypes that carry numbers; BOOL and BYTES are refused like booleans and strings in JSON rows.
V2_NUMERIC = ("FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")


@dataclass(frozen=True)
class Decoded:
    """A validated model batch and how the client asked for it.

    Attributes:
        batch: model input, ``(rows, *spec.shape)`` float32.
        protocol: ``data``, ``input_data``, ``v2`` or ``npy``.
        v2_id: the V2 request's own ``id``, echoed in its answer.
    """

    batch: np.ndarray
    protocol: str
    v2_id: str | None = None


@functools.cache  # every JSON request passes it to parse_json for a possible error message
def example_body(spec: InputSpec) -> str:
    """A short valid JSON body, for error messages."""
    return '{"data": [[' + ", ".join(["0"] * min(spec.size, 3)) + (", ..." if spec.size > 3 else "") + "]]}"


def decode(body: bytes, content_type: str | None, spec: InputSpec, max_rows: int) -> Decoded:
    """Validate a request body of any accepted format against ``spec``.

    Raises:
        ClientError: 415 for a content type other than JSON or .npy, 400 for a body that is not the format it
            claims, 413 for too many rows, 422 for data that does not fit the model.
    """
    media_type = (content_type or JSON).split(";")[0].strip().lower()
    if media_type == NPY:
        return Decoded(_npy_batch(body, spec, max_rows), "npy")
    if media_type != JSON and not media_type.endswith("+json"):
        hint = (
            " (curl -d sends that unless you add -H 'Content-Type: application/json')"
            if media_type == "application/x-www-form-urlencoded"
            else ""
        )
        raise ClientError(
            415,
            "unsupported_content_type",
            f"Content-Type {media_type!r} is not accepted{hint}; send {JSON} (like {example_body(spec)}) or {NPY} "
            "(numpy.save of one array shaped (rows, ...))",
        )
    document = parse_json(body, example_body(spec))
    if isinstance(document, dict):
        if "data" in document:
            return Decoded(rows_to_batch(document["data"], body, spec, max_rows, "data"), "data")
        if "input_data" in document:
            return Decoded(_input_data_batch(document["input_data"], body, spec, max_rows), "input_data")
        if "inputs" in document:
            return _v2_decode(document, body, spec, max_rows)
    found = (
        f"an object with keys {sorted(document)[:10]}"
        if isinstance(document, dict)
        else f"a JSON {json_type(document)}"
    )
    raise ClientError(
        400,
        "missing_data",
        f'expected a JSON object with a "data" field holding a list of rows, like {example_body(spec)} '
        '(or "input_data", or V2 "inputs"); got ' + found,
    )


def encode(answer: dict[str, list[Any]], decoded: Decoded, output: OutputSpec, model: tuple[str, str], request_id: str):
    """The response body for ``answer`` (``predictor.predict``'s output) in the request's own format.

    ``model`` is the deployed model's (name, version), which a V2 answer names.
    """
    if decoded.protocol != "v2":
        return answer
    predictions = answer["predictions"]
    rows = len(predictions)
    if output.kind == "regression":
        values = [row[name] for row in predictions for name in output.names]
        outputs = [{"name": "predictions", "shape": [rows, len(output.names)], "datatype": "FP32", "data": values}]
    else:
        numeric = all(isinstance(p, int) and not isinstance(p, bool) for p in predictions)
        outputs = [
            {"name": "predictions", "shape": [rows], "datatype": "INT64" if numeric else "BYTES", "data": predictions},
            {
                "name": "probabilities",
                "shape": [rows, output.width],
                "datatype": "FP32",
                "data": [p for row in answer["probabilities"] for p in row],
            },
        ]
    return {"model_name": model[0], "model_version": model[1], "id": decoded.v2_id or request_id, "outputs": outputs}


def _input_data_batch(value: Any, body: bytes, spec: InputSpec, max_rows: int) -> np.ndarray:
    if isinstance(value, dict):  # pandas "split" orientation: {"columns": [...], "index": [...], "data": rows}
        if "data" not in value:
            raise ClientError(
                422, "invalid_data", f'"input_data" is an object without "data"; got keys {sorted(value)[:10]}'
            )
        columns = value.get("columns")
        if isinstance(columns, list) and columns and spec.names:
            value = {**value, "data": reorder_columns(value["data"], columns, spec, "input_data")}
        elif isinstance(columns, list) and columns and len(columns) != spec.size:
            raise ClientError(
                422, "wrong_row_shape", f'"input_data" names {len(columns)} columns; this model takes {spec.size}'
            )
        value = value["data"]
    return rows_to_batch(value, body, spec, max_rows, "input_data")


def _v2_decode(document: dict[str, Any], body: bytes, spec: InputSpec, max_rows: int) -> Decoded:
    inputs = document["inputs"]
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise ClientError(
            422,
            "invalid_v2_request",
            f'"inputs" must be a list holding exactly one tensor object (this model has one input, {spec.name!r}); '
            f"got {_describe(inputs)}",
        )
    tensor = inputs[0]
    missing = [key for key in ("shape", "datatype", "data") if key not in tensor]
    if missing:
        raise ClientError(
            422, "invalid_v2_request", f"inputs[0] lacks {missing}; a V2 tensor has name, shape, datatype, data"
        )
    shape, datatype, data = tensor["shape"], tensor["datatype"], tensor["data"]
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise ClientError(
            422, "invalid_v2_request", f"inputs[0].shape must be a list of whole numbers; got {_describe(shape)}"
        )
    if datatype not in V2_NUMERIC:
        raise ClientError(
            422,
            "unsupported_datatype",
            f"inputs[0].datatype is {_describe(datatype)}; expected one of {list(V2_NUMERIC)}",
        )
    if not isinstance(data, list):
        raise ClientError(422, "invalid_v2_request", f"inputs[0].data must be a list of numbers; got {_describe(data)}")
    values = numeric_array(data, body, spec, "inputs[0].data").reshape(-1)
    if values.size != math.prod(shape):
        raise ClientError(
            422,
            "shape_mismatch",
            f"inputs[0].shape {shape} holds {math.prod(shape)} values; inputs[0].data has {values.size}",
        )
    batch = array_to_batch(values.reshape(shape), spec, max_rows, "inputs[0]")
    request_id = document.get("id")
    return Decoded(batch, "v2", request_id if isinstance(request_id, str) else None)


def _npy_batch(body: bytes, spec: InputSpec, max_rows: int) -> np.ndarray:
    """Read a .npy body without pickle and without copying: the header is checked against the body's length
    before anything is allocated, then the array is a view of the body's bytes."""
    stream = io.BytesIO(body)
    try:
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(stream)
    except (ValueError, OSError, EOFError) as err:
        raise ClientError(
            400, "invalid_npy", f"the body is not a .npy array ({err}); send the bytes numpy.save writes"
        ) from err
    if dtype.hasobject:
        raise ClientError(400, "invalid_npy", "the .npy array holds Python objects, which need pickle (refused)")
    needed = math.prod(shape) * dtype.itemsize
    offset = stream.tell()
    if len(body) - offset != needed:
        raise ClientError(
            400,
            "invalid_npy",
            f"the .npy header declares shape {list(shape)} of {dtype} ({needed} bytes) but the body carries "
            f"{len(body) - offset} bytes after it",
        )
    array = np.frombuffer(body, dtype=dtype, count=math.prod(shape), offset=offset)
    return array_to_batch(array.reshape(shape, order="F" if fortran_order else "C"), spec, max_rows, "array")


def _describe(value: Any) -> str:
    text = repr(value)
    return f"a JSON {json_type(value)} {text if len(text) <= 40 else text[:37] + '...'}"
