"""Property-based: whatever JSON value or bytes arrive, the parser answers a valid batch or a 4xx, and the
server's app never answers 500."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from harness.layout import lay_out_like_azure
from model_arch.digits_cnn import INPUT_SPEC
from serving.codecs import JSON, NPY, decode
from serving.errors import ClientError
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
    | near_valid_rows.map(lambda rows: json.dumps({"data": rows}).encode()),
    content_type=content_types,
)
def test_the_app_never_answers_500(app_client, raw: bytes, content_type: str | None) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}

    response = app_client.post("/score", data=raw, headers=headers)

    assert response.status_code in (200, 400, 413, 415, 422), response.get_data()
    assert ("predictions" if response.status_code == 200 else "message") in response.get_json()
