"""Malformed requests, each with the status, code and message fragment it must get: one table, run against the
decoders (tests/test_codecs.py) and against a real server process (tests/test_server.py)."""

from __future__ import annotations

import io
import json

import numpy as np

from serving.codecs import JSON, NPY

ROW = list(range(16)) * 4  # 64 valid pixel values 0-15
MAX_ROWS = 4  # the batch limit the decoder tests use; the server tests skip the case that depends on it


def body(document: object) -> bytes:
    return json.dumps(document).encode()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=array.dtype.hasobject)
    return buffer.getvalue()


def v2(data: list, shape: object = None, datatype: str = "FP32") -> dict:
    return {"name": "pixels", "shape": [1, 64] if shape is None else shape, "datatype": datatype, "data": data}


BAD_REQUESTS = [
    # (id, raw body, status, code, message fragment)
    ("empty-body", b"", 400, "empty_body", "body is empty"),
    ("whitespace-body", b"  \n", 400, "empty_body", "body is empty"),
    ("not-json", b"hello", 400, "invalid_json", "not valid JSON"),
    ("truncated-json", b'{"data": [[1, 2', 400, "invalid_json", "not valid JSON"),
    ("not-utf8", b'{"data": "\xff\xfe"}', 400, "invalid_json", "not UTF-8"),
    ("huge-int-literal", b'{"data": [[' + b"9" * 5000 + b"]]}", 400, "invalid_json", "could not be parsed"),
    ("deep-nesting", b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "invalid_json", "JSON"),
    ("json-array", body([ROW]), 400, "missing_data", 'with a "data" field'),
    ("json-string", body("data"), 400, "missing_data", "got a JSON string"),
    ("no-data-key", body({"rows": [ROW]}), 400, "missing_data", "keys ['rows']"),
    ("data-not-list", body({"data": "0,1,2"}), 422, "invalid_data", "got a JSON string"),
    ("data-object", body({"data": {"a": 1}}), 422, "invalid_data", "list of rows"),
    ("empty-batch", body({"data": []}), 422, "empty_batch", "at least one row"),
    ("too-many-rows", body({"data": [ROW] * (MAX_ROWS + 1)}), 413, "batch_too_large", "at most 4"),
    ("row-too-short", body({"data": [ROW[:63]]}), 422, "wrong_row_shape", "shape 63 (63 values)"),
    ("row-too-long", body({"data": [[*ROW, 0]]}), 422, "wrong_row_shape", "64 numbers"),
    ("nested-7x8", body({"data": [[ROW[:8]] * 7]}), 422, "wrong_row_shape", "7×8"),
    ("single-flat-row", body({"data": ROW}), 422, "wrong_row_shape", "wrap it in a list"),
    ("ragged-rows", body({"data": [ROW, ROW[:10]]}), 422, "ragged_rows", "row 1 has shape 10"),
    ("string-value", body({"data": [[*ROW[:5], "7", *ROW[6:]]]}), 422, "non_numeric", 'data[0][5] is "7"'),
    ("null-value", body({"data": [[None, *ROW[1:]]]}), 422, "non_numeric", "data[0][0] is null"),
    ("bool-among-ints", body({"data": [[True, *ROW[1:]]]}), 422, "non_numeric", "a JSON boolean"),
    (
        "bool-among-floats",
        body({"data": [[0.5, False, *ROW[2:]]]}),
        422,
        "non_numeric",
        "data[0][1] is false",
    ),
    ("all-bools", body({"data": [[True] * 64]}), 422, "non_numeric", "boolean"),
    ("object-in-row", body({"data": [[{"v": 1}, *ROW[1:]]]}), 422, "non_numeric", "a JSON object"),
    ("nan", b'{"data": [[NaN' + b", 1" * 63 + b"]]}", 422, "non_finite", "data[0][0] is nan"),
    ("infinity", b'{"data": [[1' + b", 1" * 62 + b", -Infinity]]}", 422, "non_finite", "data[0][63] is -inf"),
    ("beyond-float32", body({"data": [[1e39, *ROW[1:]]]}), 422, "non_finite", "beyond float32"),
    ("huge-int", body({"data": [[10**40, *ROW[1:]]]}), 422, "out_of_range", "too large for float32"),
    ("above-range", body({"data": [[*ROW[:63], 17]]}), 422, "out_of_range", "data[0][63] is 17"),
    ("below-range", body({"data": [ROW, [-1, *ROW[1:]]]}), 422, "out_of_range", "from 0 to 16"),
    ("input-data-not-rows", body({"input_data": {"columns": ["a"]}}), 422, "invalid_data", 'without "data"'),
    (
        "input-data-columns",
        body({"input_data": {"columns": ["a", "b"], "data": [ROW]}}),
        422,
        "wrong_row_shape",
        "2 columns",
    ),
    ("input-data-short-row", body({"input_data": [ROW[:8]]}), 422, "wrong_row_shape", "64 numbers"),
    ("v2-inputs-not-list", body({"inputs": {"data": ROW}}), 422, "invalid_v2_request", "exactly one tensor"),
    ("v2-two-inputs", body({"inputs": [v2(ROW), v2(ROW)]}), 422, "invalid_v2_request", "exactly one tensor"),
    (
        "v2-no-shape",
        body({"inputs": [{"datatype": "FP32", "data": ROW}]}),
        422,
        "invalid_v2_request",
        "lacks ['shape']",
    ),
    ("v2-bad-shape", body({"inputs": [v2(ROW, shape="1x64")]}), 422, "invalid_v2_request", "list of whole numbers"),
    ("v2-bytes", body({"inputs": [v2(ROW, datatype="BYTES")]}), 422, "unsupported_datatype", "'BYTES'"),
    ("v2-shape-mismatch", body({"inputs": [v2(ROW, shape=[2, 64])]}), 422, "shape_mismatch", "holds 128 values"),
    ("v2-string-value", body({"inputs": [v2(["x", *ROW[1:]])]}), 422, "non_numeric", "inputs[0].data[0]"),
    ("v2-wrong-row", body({"inputs": [v2(ROW[:60], shape=[1, 60])]}), 422, "wrong_row_shape", "shape 60"),
    ("v2-out-of-range", body({"inputs": [v2([99, *ROW[1:]])]}), 422, "out_of_range", "inputs[0][0][0] is 99"),
    ("form-encoded", b"data=1", "application/x-www-form-urlencoded", 415, "unsupported_content_type", "curl -d"),
    ("text-plain", body({"data": [ROW]}), "text/plain", 415, "unsupported_content_type", "'text/plain'"),
    ("npy-garbage", b"not an array", NPY, 400, "invalid_npy", "not a .npy array"),
    ("npy-objects", npy(np.array([[1, "a"]], dtype=object)), NPY, 400, "invalid_npy", "need pickle"),
    ("npy-truncated", npy(np.zeros((2, 64)))[:-8], NPY, 400, "invalid_npy", "declares shape [2, 64]"),
    ("npy-bool", npy(np.ones((1, 64), dtype=bool)), NPY, 422, "non_numeric", "dtype bool"),
    ("npy-1d", npy(np.zeros(64)), NPY, 422, "wrong_row_shape", "shape [64]"),
    ("npy-empty", npy(np.zeros((0, 64))), NPY, 422, "empty_batch", "no rows"),
    ("npy-wrong-row", npy(np.zeros((1, 63))), NPY, 422, "wrong_row_shape", "shape 63"),
    ("npy-nan", npy(np.full((1, 64), np.nan)), NPY, 422, "non_finite", "array[0][0] is nan"),
    ("npy-too-many", npy(np.zeros((MAX_ROWS + 1, 64))), NPY, 413, "batch_too_large", "at most 4"),
]


def cases() -> list[tuple[str, bytes, str, int, str, str]]:
    """(id, body, content type, status, code, message fragment) for every malformed request."""
    return [case if len(case) == 6 else (case[0], case[1], JSON, *case[2:]) for case in BAD_REQUESTS]
