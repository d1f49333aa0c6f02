"""Malformed requests, each with the status, code and message fragment it must get: one table, run against the
decoders (tests/test_codecs.py) and against a real server process (tests/test_server.py,
tests/test_hostile_requests.py). Besides one case per row of docs/api.md's error table, it holds the hostile
classes: .npy headers and V2 shapes that numpy or Python arithmetic cannot take, and bodies built to cost more
than their size."""

from __future__ import annotations

import io
import json
import struct

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


def npy_header(header: dict | str, payload: bytes = b"", version: tuple[int, int] = (1, 0)) -> bytes:
    """A .npy body with this header (a dict, written as numpy writes it, or raw text) and these bytes after it:
    what numpy.save would never write, but a client can send."""
    text = (repr(header) if isinstance(header, dict) else header).encode("latin1")
    length_format = "<H" if version == (1, 0) else "<I"
    prefix = 6 + 2 + struct.calcsize(length_format)
    text += b" " * ((64 - (prefix + len(text) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY" + bytes(version) + struct.pack(length_format, len(text)) + text + payload


def header(shape: tuple, descr: object = "<f4") -> dict:
    return {"descr": descr, "fortran_order": False, "shape": shape}


def v2(data: list, shape: object = None, datatype: str = "FP32") -> dict:
    return {"name": "pixels", "shape": [1, 64] if shape is None else shape, "datatype": datatype, "data": data}


BAD_REQUESTS = [
    # (id, raw body, status, code, message fragment)
    ("empty-body", b"", 400, "empty_body", "body is empty"),
    ("whitespace-body", b"  \n", 400, "empty_body", "body is empty"),
    ("not-json", b"hello", 400, "invalid_json", "not valid JSON"),
    ("truncated-json", b'{"data": [[1, 2', 400, "invalid_json", "not valid JSON"),
    ("not-utf8", b'{"data": "\xff\xfe"}', 400, "invalid_json", "not UTF-8"),
    ("huge-int-literal", b'{"data": [[' + b"9" * 5000 + b"]]}", 400, "invalid_json", "more than 1000 digits long"),
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
    ("v2-bool", body({"inputs": [v2(ROW, datatype="BOOL")]}), 422, "unsupported_datatype", "'BOOL'"),
    # BYTES is for images (the digits model takes them): numbers shaped like a row are not a tensor of images
    ("v2-bytes-numbers", body({"inputs": [v2(ROW, datatype="BYTES")]}), 422, "shape_mismatch", "tensor of images"),
    ("v2-shape-mismatch", body({"inputs": [v2(ROW, shape=[2, 64])]}), 422, "shape_mismatch", "holds 128 values"),
    # an empty data list in a body whose other numbers are floats (found by schemathesis: a 500 once)
    ("v2-empty-data", body({"inputs": [v2([], shape=[64])], "x": 1.5}), 422, "shape_mismatch", "has 0"),
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
    # Hostile .npy headers: each reached numpy or Python before it was checked, and was a 500.
    ("npy-negative-dim", npy_header(header((-1, 64))), NPY, 400, "invalid_npy", "shape[0] is -1"),
    ("npy-huge-dim", npy_header(header((2**62, 64))), NPY, 400, "invalid_npy", "from 0 to 2147483647"),
    ("npy-unprintable-size", npy_header(header((10**300,) * 15)), NPY, 400, "invalid_npy", "integer of 301 digits"),
    ("npy-size-overflow", npy_header(header((2**20, 2**20))), NPY, 400, "invalid_npy", "holds more than"),
    ("npy-empty-huge-dim", npy_header(header((0, 2**63))), NPY, 400, "invalid_npy", "shape[1] is"),
    ("npy-bool-dim", npy_header(header((True, 64)), bytes(256)), NPY, 400, "invalid_npy", "shape[0] is true"),
    ("npy-100-dims", npy_header(header((1,) * 100), bytes(4)), NPY, 400, "invalid_npy", "100 dimensions"),
    ("npy-itemsize-zero", npy_header(header((1, 64), "|V0")), NPY, 422, "non_numeric", "dtype |V0"),
    ("npy-bytes-size-zero", npy_header(header((1, 64), "|S0")), NPY, 422, "non_numeric", "dtype |S0"),
    ("npy-subarray", npy_header(header((1,), ("<f4", (64,))), bytes(256)), NPY, 422, "non_numeric", "(64,)"),
    (
        "npy-structured",
        npy_header(header((1, 32), [("a", "<f4"), ("b", "<f4")]), bytes(256)),
        NPY,
        422,
        "non_numeric",
        "('a', '<f4')",
    ),
    ("npy-complex", npy(np.zeros((1, 64), dtype=np.complex64)), NPY, 422, "non_numeric", "complex64"),
    ("npy-version-9", npy_header(header((1, 64)), bytes(256), version=(9, 9)), NPY, 400, "invalid_npy", "9.9"),
    ("npy-header-not-literal", npy_header("{'descr': '<f4', 'shape': (1, 64"), NPY, 400, "invalid_npy", "not a .npy"),
    # Hostile V2 shapes, checked before anything multiplies or reshapes with them.
    ("v2-negative-dim", body({"inputs": [v2(ROW, shape=[-1, 64])]}), 422, "invalid_v2_request", "shape[0] is -1"),
    ("v2-huge-dim", body({"inputs": [v2(ROW, shape=[2**63, 1])]}), 422, "invalid_v2_request", "from 0 to"),
    (
        "v2-unprintable-size",
        body({"inputs": [v2(ROW, shape=[10**300] * 15)]}),
        422,
        "invalid_v2_request",
        "integer of 301 digits",
    ),
    ("v2-size-overflow", body({"inputs": [v2(ROW, shape=[2**20] * 3)]}), 422, "invalid_v2_request", "more than"),
    ("v2-70-dims", body({"inputs": [v2(ROW, shape=[1] * 70)]}), 422, "invalid_v2_request", "70 dimensions"),
    ("v2-bool-dim", body({"inputs": [v2(ROW, shape=[True, 64])]}), 422, "invalid_v2_request", "shape[0] is true"),
    # Bodies built to cost more than their size (tests/test_request_cost.py measures them).
    (
        "long-string-among-numbers",  # numpy would copy all 256 values as 300,000-character text: 300 MB
        body({"data": [["x" * 300_000, *ROW[1:]]] + [ROW] * 3}),
        422,
        "non_numeric",
        'data[0][0] is "xxxx',
    ),
    ("nested-300-deep", b'{"data": ' + b"[" * 300 + b"]" * 300 + b"}", 400, "invalid_json", "recursion limit"),
    ("row-70-deep", body({"data": [json.loads("[" * 70 + "1" + "]" * 70)]}), 422, "ragged_rows", "deeper than 32"),
    ("int-beyond-int64", body({"data": [[10**20, *ROW[1:]]]}), 422, "out_of_range", "data[0][0] is 1e+20"),
    ("many-keys", body({f"key{i}": i for i in range(50_000)}), 400, "missing_data", "'key0', 'key1', 'key10'"),
    ("long-key", body({"k" * 100_000: 1}), 400, "missing_data", "keys ['kkkkkkkkkkkkkkkkk...kkk"),
]


def cases() -> list[tuple[str, bytes, str, int, str, str]]:
    """(id, body, content type, status, code, message fragment) for every malformed request."""
    return [case if len(case) == 6 else (case[0], case[1], JSON, *case[2:]) for case in BAD_REQUESTS]
