"""Property-based: whatever JSON value, V2 tensor, .npy header or bytes arrive, the decoder answers a valid batch or
a 4xx, and the server's app never answers 500. The .npy headers and V2 shapes are generated raw (negative, huge and
boolean dimensions, dozens of axes, dtypes of every kind, versions numpy never wrote), not only from valid arrays."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from harness.layout import lay_out_like_azure
from model_arch.digits_cnn import INPUT_SPEC
from serving.codecs import JSON, NPY, V2_NUMERIC, decode
from serving.errors import ClientError
from tests.bad_requests import npy_header
from tests.helpers import scoring_app_client

MAX_ROWS = 16
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=8) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=80,
)
near_valid_rows = st.lists(
    st.lists(st.integers(-2, 18) | st.floats(-1, 17) | st.booleans() | st.none(), min_size=62, max_size=66),
    min_size=1,
    max_size=MAX_ROWS + 2,
)
envelopes = st.sampled_from(["data", "input_data", "inputs", "rows"])
content_types = st.sampled_from([JSON, NPY, None, "text/plain", "application/json; charset=utf-8"])


def assert_valid_batch_or_client_error(raw: bytes, content_type: str | None) -> None:
    try:
        decoded = decode(raw, content_type, INPUT_SPEC, MAX_ROWS)
    except ClientError as err:
        assert 400 <= err.status < 500
        assert err.code and err.message
        return
    batch = decoded.batch
    assert batch.dtype == np.float32
    assert batch.shape[1:] == INPUT_SPEC.shape and 1 <= batch.shape[0] <= MAX_ROWS
    assert np.isfinite(batch).all() and batch.min() >= 0 and batch.max() <= 1


@given(key=envelopes, value=json_values)
def test_any_json_value_gets_a_batch_or_a_client_error(key: str, value: object) -> None:
    assert_valid_batch_or_client_error(json.dumps({key: value}).encode(), JSON)


@given(key=envelopes, rows=near_valid_rows)
def test_nearly_valid_rows_get_a_batch_or_a_client_error(key: str, rows: list) -> None:
    value = [{"name": "x", "shape": [len(rows), 64], "datatype": "FP32", "data": rows}] if key == "inputs" else rows
    assert_valid_batch_or_client_error(json.dumps({key: value}).encode(), JSON)


@given(raw=st.binary(max_size=3000), content_type=content_types)
def test_any_bytes_get_a_batch_or_a_client_error(raw: bytes, content_type: str | None) -> None:
    assert_valid_batch_or_client_error(raw, content_type)


@given(
    array=arrays(
        dtype=st.sampled_from(["float32", "float64", "int64", "uint8", "bool", "complex64", ">f4"]),
        shape=array_shapes(min_dims=1, max_dims=4, max_side=70),
    )
)
def test_any_npy_array_gets_a_batch_or_a_client_error(array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    assert_valid_batch_or_client_error(buffer.getvalue(), NPY)


dimensions = (
    st.integers(-2, 80) | st.integers(-(2**70), 2**70) | st.sampled_from([2**31, 2**63, 2**64, 10**300]) | st.booleans()
)
DTYPE_TEXTS = "<f4 >f4 <f8 <f2 <f16 <i8 |i1 <u8 |u1 |b1 <c8 |V0 |V8 |S0 |S4 <U0 <U2 |O <M8[s] <m8 f4 float32 <f0 <i3 x"
dtype_texts = st.sampled_from([*DTYPE_TEXTS.split(), ""])
descriptors = (
    dtype_texts
    | st.tuples(dtype_texts, st.tuples(st.integers(-2, 70)) | st.tuples(dimensions, dimensions))
    | st.lists(st.tuples(st.text(st.characters(max_codepoint=255), max_size=3), dtype_texts), max_size=3)
    | st.integers()
    | st.none()
)
npy_headers = st.fixed_dictionaries(
    {
        "descr": descriptors,
        "fortran_order": st.booleans() | st.integers(0, 2),
        "shape": st.tuples() | st.lists(dimensions, max_size=70).map(tuple),
    },
    optional={"extra": st.integers()},
)


def payload_for(header: dict) -> bytes:
    """As many bytes as ``header`` declares when that is a small, computable number, else none."""
    try:
        size = np.dtype(header["descr"]).itemsize * int(np.prod(header["shape"], dtype=np.int64))
    except Exception:  # a descriptor numpy refuses, a shape it cannot multiply: the body stays short
        return b""
    return bytes(size) if 0 <= size <= 4096 else b""


@settings(max_examples=300)
@example(header={"descr": "|V0", "fortran_order": False, "shape": (1, 64)}, version=(1, 0), length=0)
@example(header={"descr": "<f4", "fortran_order": False, "shape": (0, -5)}, version=(1, 0), length=0)
@given(
    header=npy_headers,
    version=st.sampled_from([(1, 0), (2, 0), (3, 0)]) | st.tuples(st.integers(0, 255), st.integers(0, 255)),
    length=st.none() | st.integers(0, 600),
)
def test_any_npy_header_gets_a_batch_or_a_client_error(header: dict, version: tuple, length: int | None) -> None:
    payload = payload_for(header) if length is None else bytes(length)
    assert_valid_batch_or_client_error(npy_header(header, payload, version), NPY)


@given(text=st.text(alphabet=st.characters(max_codepoint=255), max_size=300), payload=st.binary(max_size=300))
def test_any_npy_header_text_gets_a_batch_or_a_client_error(text: str, payload: bytes) -> None:
    assert_valid_batch_or_client_error(npy_header(text, payload), NPY)


v2_shapes = (
    st.lists(dimensions | st.floats() | st.text(max_size=3) | st.none(), max_size=70)
    | st.builds(lambda ones, last: [1] * ones + [last], st.integers(0, 80), st.just(1) | dimensions)  # many axes
    | json_values
)
v2_data = json_values | near_valid_rows | st.lists(st.integers(0, 16), max_size=200) | st.just([1])


@settings(max_examples=200)
@example(shape=[1] * 70, datatype="FP32", data=[1], tensors=1)  # more axes than numpy has: was a 500
@example(shape=[10**300] * 15, datatype="FP32", data=[1], tensors=1)  # a product too long to print: was a 500
@given(
    shape=v2_shapes,
    datatype=st.sampled_from(V2_NUMERIC) | st.sampled_from(["BOOL", "BYTES", "fp32", ""]) | json_values,
    data=v2_data,
    tensors=st.integers(0, 2),
)
def test_any_v2_tensor_gets_a_batch_or_a_client_error(
    shape: object, datatype: object, data: object, tensors: int
) -> None:
    tensor = {"name": "pixels", "shape": shape, "datatype": datatype, "data": data}
    assert_valid_batch_or_client_error(json.dumps({"id": "x", "inputs": [tensor] * tensors}).encode(), JSON)


@given(
    rows=st.lists(
        st.lists(st.integers(0, 16) | st.text(max_size=40) | st.booleans(), min_size=64, max_size=64),
        min_size=1,
        max_size=MAX_ROWS,
    ),
    key=envelopes,
)
def test_strings_among_numbers_get_a_client_error(rows: list, key: str) -> None:
    assert_valid_batch_or_client_error(json.dumps({key: rows, "note": "x" * len(rows)}).encode(), JSON)


@pytest.fixture(scope="module")
def app_client(trained_folder: Path, tmp_path_factory: pytest.TempPathFactory):
    """The server's app for score.py, built once for all examples."""
    model_dir = lay_out_like_azure(trained_folder, tmp_path_factory.mktemp("azureml-models"))
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield scoring_app_client(monkeypatch, model_dir, MAX_BATCH_ROWS=str(MAX_ROWS))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw=st.binary(max_size=500)
    | json_values.map(lambda v: json.dumps({"data": v}).encode())
    | near_valid_rows.map(lambda rows: json.dumps({"data": rows}).encode())
    | npy_headers.map(lambda header: npy_header(header, payload_for(header))),
    content_type=content_types,
)
def test_the_app_never_answers_500(app_client, raw: bytes, content_type: str | None) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}

    response = app_client.post("/score", data=raw, headers=headers)

    assert response.status_code in (200, 400, 413, 415, 422), response.get_data()
    assert ("predictions" if response.status_code == 200 else "message") in response.get_json()
