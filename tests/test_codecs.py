"""Request decoding: every accepted format and row form, and every client mistake with its status, code and message."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from model_arch.digits_cnn import INPUT_SPEC, OUTPUT_SPEC
from serving.codecs import JSON, NPY, ReplyContext, decode, encode
from serving.errors import ClientError
from serving.predictor import Prediction
from tests.bad_requests import MAX_ROWS, ROW, body, cases, npy, v2


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
def test_decode_accepts_flat_and_nested_rows(rows: list) -> None:
    batch = decode(body({"data": rows}), JSON, INPUT_SPEC, MAX_ROWS).batch

    assert batch.shape == (len(rows), 1, 8, 8)
    assert batch.dtype == np.float32
    expected = np.asarray(rows, dtype=np.float32).reshape(len(rows), 1, 8, 8) / 16
    np.testing.assert_allclose(batch, expected)


def test_decode_ignores_extra_fields() -> None:
    batch = decode(body({"data": [ROW], "id": "abc"}), JSON, INPUT_SPEC, MAX_ROWS).batch

    assert batch.shape == (1, 1, 8, 8)


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "code", "fragment"),
    [case[1:] for case in cases()],
    ids=[case[0] for case in cases()],
)
def test_decode_rejects_client_mistakes(raw: bytes, content_type: str, status: int, code: str, fragment: str) -> None:
    with pytest.raises(ClientError) as caught:
        decode(raw, content_type, INPUT_SPEC, MAX_ROWS)

    assert (caught.value.status, caught.value.code) == (status, code)
    assert fragment in caught.value.message
    assert caught.value.to_body() == {"code": code, "message": caught.value.message}


EXPECTED = np.asarray([ROW, ROW[::-1]], dtype=np.float32).reshape(2, 1, 8, 8) / 16


@pytest.mark.parametrize(
    ("raw", "content_type", "protocol"),
    [
        (body({"data": [ROW, ROW[::-1]]}), JSON, "data"),
        (body({"data": [ROW, ROW[::-1]]}), "application/json; charset=utf-8", "data"),
        (body({"data": [ROW, ROW[::-1]]}), None, "data"),
        (body({"input_data": [ROW, ROW[::-1]]}), JSON, "input_data"),
        (
            body({"input_data": {"columns": [f"p{i}" for i in range(64)], "index": [0, 1], "data": [ROW, ROW[::-1]]}}),
            JSON,
            "input_data",
        ),
        (body({"inputs": [v2(ROW + ROW[::-1], shape=[2, 64])]}), JSON, "v2"),
        (body({"inputs": [v2([ROW, ROW[::-1]], shape=[2, 8, 8], datatype="INT32")]}), JSON, "v2"),
        (npy(np.asarray([ROW, ROW[::-1]], dtype=np.float32)), NPY, "npy"),
        (npy(np.asarray([ROW, ROW[::-1]], dtype=np.uint8).reshape(2, 8, 8)), NPY, "npy"),
        (npy(np.asfortranarray(np.asarray([ROW, ROW[::-1]], dtype=np.float64))), NPY, "npy"),
    ],
    ids=[
        "data",
        "json-charset",
        "no-content-type",
        "input-data",
        "input-data-split",
        "v2-flat",
        "v2-nested-int",
        "npy-float32",
        "npy-uint8-8x8",
        "npy-fortran-float64",
    ],
)
def test_every_format_decodes_to_the_same_batch(raw: bytes, content_type: str | None, protocol: str) -> None:
    decoded = decode(raw, content_type, INPUT_SPEC, MAX_ROWS)

    assert decoded.protocol == protocol
    np.testing.assert_allclose(decoded.batch, EXPECTED)
    assert decoded.batch.dtype == np.float32


def prediction_of_three() -> Prediction:
    values = np.full((1, 10), 0.05, dtype=np.float32)
    values[0, 3] = 0.55
    return Prediction(values, OUTPUT_SPEC)


def test_v2_answers_in_v2_shape_and_echoes_the_id() -> None:
    decoded = decode(body({"id": "req-7", "inputs": [v2(ROW)]}), JSON, INPUT_SPEC, MAX_ROWS)

    encoded, media_type = encode(prediction_of_three(), decoded, ReplyContext("digits-cnn", "4", "server-id"))

    assert media_type == JSON
    assert json.loads(encoded) == {
        "model_name": "digits-cnn",
        "model_version": "4",
        "id": "req-7",
        "outputs": [
            {"name": "predictions", "shape": [1], "datatype": "INT64", "data": [3]},
            {"name": "probabilities", "shape": [1, 10], "datatype": "FP32", "data": [0.05] * 3 + [0.55] + [0.05] * 6},
        ],
    }


def test_row_formats_and_npy_answer_labels_and_probabilities_in_json() -> None:
    expected = {"predictions": [3], "probabilities": [[0.05] * 3 + [0.55] + [0.05] * 6]}

    for raw, content_type in [
        (body({"data": [ROW]}), JSON),
        (body({"input_data": [ROW]}), JSON),
        (npy(np.asarray([ROW])), NPY),
    ]:
        decoded = decode(raw, content_type, INPUT_SPEC, MAX_ROWS)
        encoded, media_type = encode(prediction_of_three(), decoded, ReplyContext("m", "1", "id"))
        assert (json.loads(encoded), media_type) == (expected, JSON)


@pytest.mark.parametrize("accept", ["application/x-npy", "application/json, application/x-npy;q=0.9"])
def test_a_client_accepting_npy_gets_the_values_as_npy_whatever_it_sent(accept: str) -> None:
    for raw, content_type in [(body({"data": [ROW]}), JSON), (npy(np.zeros((1, 64))), NPY)]:
        decoded = decode(raw, content_type, INPUT_SPEC, MAX_ROWS)
        encoded, media_type = encode(prediction_of_three(), decoded, ReplyContext("m", "1", "id"), accept)
        assert media_type == NPY
        np.testing.assert_array_equal(np.load(io.BytesIO(encoded)), prediction_of_three().values)
