"""Request parsing: every accepted row form, and every client mistake with its status, code and message."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model_arch.digits_cnn import INPUT_SPEC
from serving.errors import ClientError
from serving.inputs import parse_request

ROW = list(range(16)) * 4  # 64 valid pixel values 0-15
MAX_ROWS = 4


def body(document: object) -> bytes:
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    "rows",
    [
        [ROW],
        [ROW, ROW],
        [np.reshape(ROW, (8, 8)).tolist()],
        [np.reshape(ROW, (1, 8, 8)).tolist()],
        [[float(v) + 0.5 for v in ROW[:-1]] + [16]],
    ],
    ids=["one-flat-row", "two-flat-rows", "nested-8x8", "nested-1x8x8", "floats-and-max"],
)
def test_parse_request_accepts_flat_and_nested_rows(rows: list) -> None:
    batch = parse_request(body({"data": rows}), INPUT_SPEC, MAX_ROWS)

    assert batch.shape == (len(rows), 1, 8, 8)
    assert batch.dtype == np.float32
    expected = np.asarray(rows, dtype=np.float32).reshape(len(rows), 1, 8, 8) / 16
    np.testing.assert_allclose(batch, expected)


def test_parse_request_ignores_extra_fields() -> None:
    batch = parse_request(body({"data": [ROW], "id": "abc"}), INPUT_SPEC, MAX_ROWS)

    assert batch.shape == (1, 1, 8, 8)


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
    ("no-data-key", body({"inputs": [ROW]}), 400, "missing_data", "keys ['inputs']"),
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
]


@pytest.mark.parametrize(
    ("raw", "status", "code", "fragment"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_parse_request_rejects_client_mistakes(raw: bytes, status: int, code: str, fragment: str) -> None:
    with pytest.raises(ClientError) as caught:
        parse_request(raw, INPUT_SPEC, MAX_ROWS)

    assert (caught.value.status, caught.value.code) == (status, code)
    assert fragment in caught.value.message
    assert caught.value.to_body() == {"code": code, "message": caught.value.message}
