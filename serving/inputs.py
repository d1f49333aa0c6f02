"""Turn a request body into the model's input array, or a ``ClientError`` that says exactly what is wrong.

Accepted: JSON ``{"data": rows}``, where each row is what the model's ``InputSpec`` describes (for the demo:
64 pixel values 0-16, flat or nested 8×8). The whole batch becomes one numpy array in C, without a Python
loop per value; the slow, precise walks below run only to word an error message.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from model_arch.spec import InputSpec
from serving.errors import ClientError

FLOAT32_MAX = float(np.finfo(np.float32).max)


def parse_request(body: bytes, spec: InputSpec, max_rows: int) -> np.ndarray:
    """Validate a JSON body against ``spec`` and return the model input, shaped ``(batch, *spec.shape)``.

    Raises:
        ClientError: 400 when the body is not the JSON envelope, 413 when the batch is larger than
            ``max_rows``, 422 when the rows do not fit the model.
    """
    rows = _data_field(_parse_json(body, spec), spec)
    if len(rows) > max_rows:
        raise ClientError(
            413,
            "batch_too_large",
            f"data has {len(rows)} rows; this endpoint accepts at most {max_rows} per request "
            "(MAX_BATCH_ROWS). Split the batch into several requests.",
        )
    array = _numeric_array(rows, body, spec)
    _check_shape(array, rows, spec)
    _check_values(array, spec)
    return spec.preprocess(array)


def example_body(spec: InputSpec) -> str:
    """A short example of a valid body, for error messages."""
    return '{"data": [[' + ", ".join(["0"] * min(spec.size, 3)) + (", ..." if spec.size > 3 else "") + "]]}"


def _parse_json(body: bytes, spec: InputSpec) -> Any:
    if not body.strip():
        raise ClientError(400, "empty_body", f"the request body is empty; expected JSON like {example_body(spec)}")
    try:
        return json.loads(body)
    except UnicodeDecodeError as err:
        raise ClientError(
            400, "invalid_json", f"the request body is not UTF-8 text ({err.reason} at byte {err.start})"
        ) from err
    except json.JSONDecodeError as err:
        raise ClientError(
            400,
            "invalid_json",
            f"the request body is not valid JSON ({err.msg} at line {err.lineno} column {err.colno}); "
            f"expected JSON like {example_body(spec)}",
        ) from err
    except (ValueError, RecursionError) as err:  # a 4300+ digit integer; nesting deeper than Python's stack
        raise ClientError(400, "invalid_json", f"the request body could not be parsed as JSON: {err}") from err


def _data_field(document: Any, spec: InputSpec) -> list[Any]:
    if not isinstance(document, dict) or "data" not in document:
        found = (
            f"an object with keys {sorted(document)[:10]}"
            if isinstance(document, dict)
            else f"a JSON {_json_type(document)}"
        )
        raise ClientError(
            400,
            "missing_data",
            f'expected a JSON object with a "data" field holding a list of rows, like {example_body(spec)}; '
            f"got {found}",
        )
    rows = document["data"]
    if not isinstance(rows, list):
        raise ClientError(
            422,
            "invalid_data",
            f'"data" must be a list of rows, each {spec.describe_row()}; got a JSON {_json_type(rows)}',
        )
    if not rows:
        raise ClientError(
            422, "empty_batch", f'"data" is an empty list; send at least one row of {spec.describe_row()}'
        )
    if not isinstance(rows[0], list):
        hint = " It looks like one row: wrap it in a list, [[...]]." if len(rows) == spec.size else ""
        raise ClientError(
            422,
            "wrong_row_shape",
            f'"data" must be a list of rows, each {spec.describe_row()}; its first item is a JSON '
            f"{_json_type(rows[0])}, not a row.{hint}",
        )
    return rows


def _numeric_array(rows: list[Any], body: bytes, spec: InputSpec) -> np.ndarray:
    try:
        array = np.asarray(rows)
    except (ValueError, OverflowError):  # ragged nesting (numpy 2 refuses inhomogeneous shapes)
        array = None
    # Strings and booleans are refused, not converted; a true/false can hide among numbers (it becomes 1/0).
    if array is None or array.dtype.kind not in "iuf" or b"true" in body or b"false" in body:
        _raise_if_non_number(rows, spec)
    if array is None or array.dtype.kind not in "iuf":
        _raise_ragged(rows, spec)
    return array


def _check_shape(array: np.ndarray, rows: list[Any], spec: InputSpec) -> None:
    row_shape = array.shape[1:]
    if row_shape not in spec.accepted_row_shapes:
        raise ClientError(
            422,
            "wrong_row_shape",
            f"each row must be {spec.describe_row()}; got {len(rows)} row(s) of shape "
            f"{_shape_text(row_shape)} ({math.prod(row_shape)} values)",
        )


def _check_values(array: np.ndarray, spec: InputSpec) -> None:
    if array.dtype.kind == "f":
        _raise_at_first(
            ~np.isfinite(array) | (np.abs(array) > FLOAT32_MAX),
            array,
            "non_finite",
            f"NaN, infinity and values beyond float32 are not valid inputs (each row is {spec.describe_row()})",
        )
    if spec.minimum is not None or spec.maximum is not None:
        low = -math.inf if spec.minimum is None else spec.minimum
        high = math.inf if spec.maximum is None else spec.maximum
        _raise_at_first(
            (array < low) | (array > high),
            array,
            "out_of_range",
            f"{spec.name!r} accepts values from {low:g} to {high:g}",
        )


def _raise_at_first(bad: np.ndarray, array: np.ndarray, code: str, expected: str) -> None:
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ClientError(422, code, f"{_path(index)} is {array[index].item():g}; {expected}")


def _raise_if_non_number(rows: list[Any], spec: InputSpec) -> None:
    path, value = _first_non_number(rows)
    if isinstance(value, int) and not isinstance(value, bool):
        raise ClientError(422, "out_of_range", f"{path} is {_short(value)}, too large for float32")
    if path is not None:
        raise ClientError(
            422,
            "non_numeric",
            f"{path} is {_short(value)}, a JSON {_json_type(value)}; every value must be a number "
            f"(each row is {spec.describe_row()})",
        )


def _raise_ragged(rows: list[Any], spec: InputSpec) -> None:
    """Word the error for a batch of numbers that numpy could not make into one regular array."""
    first_shape = _regular_shape(rows[0])
    for i, row in enumerate(rows):
        shape = _regular_shape(row)
        if shape is None or shape != first_shape:
            raise ClientError(
                422,
                "ragged_rows",
                f"row {i} has shape {_shape_text(shape)} but row 0 has shape {_shape_text(first_shape)}; "
                f"every row must be {spec.describe_row()}",
            )
    raise ClientError(422, "invalid_data", f'"data" could not be read as numbers; each row is {spec.describe_row()}')


def _first_non_number(rows: list[Any]) -> tuple[str | None, Any]:
    """The path and value of the first leaf that is not a JSON number (booleans and huge integers count).

    Iterative, so that deeply nested input cannot exhaust the stack.
    """
    stack: list[tuple[str, Any]] = [("data", rows)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, list):
            stack.extend((f"{path}[{i}]", item) for i, item in reversed(list(enumerate(value))))
        elif (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (isinstance(value, int) and abs(value) > FLOAT32_MAX)
        ):
            return path, value
    return None, None


def _regular_shape(row: Any) -> tuple[int, ...] | None:
    """The shape of a row that is a regular nesting of numbers, else None."""
    try:
        array = np.asarray(row)
    except (ValueError, OverflowError):
        return None
    return array.shape if array.dtype.kind in "iuf" else None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if value is None:
        return "null"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def _path(index: tuple[int, ...]) -> str:
    return "data" + "".join(f"[{i}]" for i in index)


def _shape_text(shape: tuple[int, ...] | None) -> str:
    if shape is None:
        return "irregular"
    return "×".join(map(str, shape)) if shape else "scalar"


def _short(value: Any, limit: int = 60) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > FLOAT32_MAX:
        return f"an integer of {len(str(abs(value)))} digits"
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
