"""Turn rows (from JSON) or an array (from .npy or a V2 tensor) into the model's input batch, or a
``ClientError`` that says exactly what is wrong.

Validation follows the model's ``InputSpec`` (for the demo: 64 values 0-16 per row, flat or nested 8×8):
numbers only (strings, booleans and null refused, never converted), row shape, NaN and infinity, value range,
batch size. The whole batch becomes one numpy array in C, without a Python loop per value; the slow, precise
walks below run only to word an error message. The codecs (``serving.codecs``) call this for every format.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import numpy as np

from model_arch.spec import InputSpec
from serving.errors import ClientError

FLOAT32_MAX = float(np.finfo(np.float32).max)


def rows_to_batch(rows: Any, spec: InputSpec, max_rows: int, field: str = "data", booleans: bool = True) -> np.ndarray:
    """A JSON list of rows -> the model input ``(batch, *spec.shape)`` float32. ``booleans``: whether the body
    may hold a JSON true or false (``serving.codecs.json_body.may_hold_booleans``), which must be refused.

    Raises:
        ClientError: 413 for more than ``max_rows`` rows, 422 when the rows do not fit the model.
    """
    if not isinstance(rows, list):
        raise ClientError(
            422,
            "invalid_data",
            f'"{field}" must be a list of rows, each {spec.describe_row()}; got a JSON {json_type(rows)}',
        )
    if not rows:
        raise ClientError(
            422, "empty_batch", f'"{field}" is an empty list; send at least one row of {spec.describe_row()}'
        )
    if spec.names and isinstance(rows[0], dict):
        rows = _named_rows(rows, spec, field)
    if not isinstance(rows[0], list):
        hint = " It looks like one row: wrap it in a list, [[...]]." if len(rows) == spec.size else ""
        raise ClientError(
            422,
            "wrong_row_shape",
            f'"{field}" must be a list of rows, each {spec.describe_row()}; its first item is a JSON '
            f"{json_type(rows[0])}, not a row.{hint}",
        )
    _check_batch_size(len(rows), max_rows)
    return _validated(numeric_array(rows, spec, field, booleans), spec, field)


def array_to_batch(array: np.ndarray, spec: InputSpec, max_rows: int, what: str) -> np.ndarray:
    """A numeric array shaped ``(rows, *row shape)`` -> the model input; ``what`` names it in messages.

    Raises:
        ClientError: 413 for more than ``max_rows`` rows, 422 when the array does not fit the model.
    """
    if array.dtype.kind not in "iuf":
        raise ClientError(
            422, "non_numeric", f"{what} has dtype {array.dtype}; expected numbers (float32, float64 or integers)"
        )
    if array.ndim < 2:
        raise ClientError(
            422,
            "wrong_row_shape",
            f"{what} has shape {list(array.shape)}; expected (rows, ...) with each row {spec.describe_row()}",
        )
    if array.shape[0] == 0:
        raise ClientError(422, "empty_batch", f"{what} has no rows; send at least one row of {spec.describe_row()}")
    _check_batch_size(array.shape[0], max_rows)
    return _validated(array, spec, what)


def numeric_array(values: list[Any], spec: InputSpec, field: str = "data", booleans: bool = True) -> np.ndarray:
    """A nested JSON list of numbers as one numpy array (int64 or float64), without converting other types.
    ``booleans``: whether the list may hold a boolean, which numpy would silently read as 1 or 0.

    Raises:
        ClientError: 422 for a string, boolean, null or object anywhere, for integers beyond float32, and for
            rows of different shapes.
    """
    try:
        array = np.asarray(values)
    except (ValueError, OverflowError):  # ragged nesting (numpy 2 refuses inhomogeneous shapes)
        array = None
    # Strings and booleans are refused, not converted. A boolean hides among numbers (it becomes 1 or 0).
    if array is None or array.dtype.kind not in "iuf" or booleans:
        _raise_if_non_number(values, spec, field)
    if array is None or array.dtype.kind not in "iuf":
        _raise_ragged(values, spec, field)
    return array


def _named_rows(rows: list[Any], spec: InputSpec, field: str) -> list[Any]:
    """Rows given as objects keyed by feature name -> lists in the spec's order."""
    ordered = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ClientError(422, "wrong_row_shape", f"{field}[{i}] is a JSON {json_type(row)}; row 0 is an object")
        missing = [name for name in spec.names if name not in row]
        unknown = sorted(set(row) - set(spec.names))
        if missing or unknown:
            raise ClientError(
                422,
                "wrong_features",
                f"{field}[{i}] lacks {missing} and has unknown {unknown}; expected exactly {list(spec.names)}",
            )
        ordered.append([row[name] for name in spec.names])
    return ordered


def reorder_columns(rows: Any, columns: list[Any], spec: InputSpec, field: str) -> Any:
    """Rows whose values follow ``columns`` -> rows in the spec's feature order (tabular input only)."""
    missing = [name for name in spec.names if name not in columns]
    unknown = [column for column in columns if column not in spec.names]
    if missing or unknown or len(columns) != len(spec.names):
        raise ClientError(
            422,
            "wrong_features",
            f'"{field}" columns lack {missing} and have unknown {unknown}; expected {list(spec.names)}',
        )
    if not isinstance(rows, list) or not all(isinstance(row, list) and len(row) == len(columns) for row in rows):
        return rows  # rows_to_batch words the shape error
    order = [columns.index(name) for name in spec.names]
    return [[row[i] for i in order] for row in rows]


def _check_batch_size(rows: int, max_rows: int) -> None:
    if rows > max_rows:
        raise ClientError(
            413,
            "batch_too_large",
            f"the request has {rows} rows; this endpoint accepts at most {max_rows} per request "
            "(MAX_BATCH_ROWS). Split the batch into several requests.",
        )


def _validated(array: np.ndarray, spec: InputSpec, label: str) -> np.ndarray:
    row_shape = array.shape[1:]
    if row_shape not in spec.accepted_row_shapes:
        raise ClientError(
            422,
            "wrong_row_shape",
            f"each row must be {spec.describe_row()}; got {array.shape[0]} row(s) of shape "
            f"{_shape_text(row_shape)} ({math.prod(row_shape)} values)",
        )
    if _all_within(array, spec):
        return spec.preprocess(array)
    if array.dtype.kind == "f":
        _raise_at_first(
            ~np.isfinite(array) | (np.abs(array) > FLOAT32_MAX),
            array,
            label,
            "non_finite",
            f"NaN, infinity and values beyond float32 are not valid inputs (each row is {spec.describe_row()})",
        )
    if spec.minimum is not None or spec.maximum is not None:
        low = -math.inf if spec.minimum is None else spec.minimum
        high = math.inf if spec.maximum is None else spec.maximum
        _raise_at_first(
            (array < low) | (array > high),
            array,
            label,
            "out_of_range",
            f"{spec.name!r} accepts values from {low:g} to {high:g}",
        )
    return spec.preprocess(array)


def _all_within(array: np.ndarray, spec: InputSpec) -> bool:
    """True when every value is finite, within float32 and within the spec's range: two reductions, no masks.
    (A NaN anywhere makes the minimum NaN, which fails every comparison.)"""
    lowest, highest = _accepted_range(spec)
    # ufunc reductions, not .min(): no Python layer; .item(): a numpy scalar compared with a float costs 10x more
    low, high = np.minimum.reduce(array, axis=None).item(), np.maximum.reduce(array, axis=None).item()
    return lowest <= low and high <= highest


@functools.cache  # asked on every request
def _accepted_range(spec: InputSpec) -> tuple[float, float]:
    """The values a request may hold: the spec's range, within float32's."""
    lowest = -FLOAT32_MAX if spec.minimum is None else max(-FLOAT32_MAX, spec.minimum)
    highest = FLOAT32_MAX if spec.maximum is None else min(FLOAT32_MAX, spec.maximum)
    return lowest, highest


def _raise_at_first(bad: np.ndarray, array: np.ndarray, label: str, code: str, expected: str) -> None:
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        path = label + "".join(f"[{i}]" for i in index)
        raise ClientError(422, code, f"{path} is {array[index].item():g}; {expected}")


def _raise_if_non_number(values: list[Any], spec: InputSpec, field: str) -> None:
    path, value = _first_non_number(values, field)
    if path is None:
        return
    if isinstance(value, int) and not isinstance(value, bool):
        raise ClientError(422, "out_of_range", f"{path} is {_short(value)}, too large for float32")
    raise ClientError(
        422,
        "non_numeric",
        f"{path} is {_short(value)}, a JSON {json_type(value)}; every value must be a number "
        f"(each row is {spec.describe_row()})",
    )


def _raise_ragged(values: list[Any], spec: InputSpec, field: str) -> None:
    """Word the error for a batch of numbers that numpy could not make into one regular array."""
    first_shape = _regular_shape(values[0])
    for i, row in enumerate(values):
        shape = _regular_shape(row)
        if shape is None or shape != first_shape:
            raise ClientError(
                422,
                "ragged_rows",
                f"row {i} has shape {_shape_text(shape)} but row 0 has shape {_shape_text(first_shape)}; "
                f"every row must be {spec.describe_row()}",
            )
    raise ClientError(422, "invalid_data", f'"{field}" could not be read as numbers; each row is {spec.describe_row()}')


def _first_non_number(values: list[Any], field: str) -> tuple[str | None, Any]:
    """The path and value of the first leaf that is not a JSON number (booleans and huge integers count).

    Depth first, in order; the path is spelled only for the leaf it returns, so a body of good numbers costs one
    type test per value."""
    index = _index_of_non_number(values)
    if index is None:
        return None, None
    value: Any = values
    for i in index:
        value = value[i]
    return field + "".join(f"[{i}]" for i in index), value


def _index_of_non_number(value: list[Any]) -> tuple[int, ...] | None:
    for i, item in enumerate(value):
        kind = type(item)
        if kind is float or (kind is int and abs(item) <= FLOAT32_MAX):
            continue
        if kind is list:
            inner = _index_of_non_number(item)
            if inner is not None:
                return (i, *inner)
            continue
        return (i,)
    return None


def _regular_shape(row: Any) -> tuple[int, ...] | None:
    """The shape of a row that is a regular nesting of numbers, else None."""
    try:
        array = np.asarray(row)
    except (ValueError, OverflowError):
        return None
    return array.shape if array.dtype.kind in "iuf" else None


def _shape_text(shape: tuple[int, ...] | None) -> str:
    if shape is None:
        return "irregular"
    return "×".join(map(str, shape)) if shape else "scalar"


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type: number, string, boolean, null, array, object."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if value is None:
        return "null"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def describe_value(value: Any) -> str:
    """``a JSON <type> <its start>``, for messages about a value that is not what was expected."""
    text = repr(value)
    return f"a JSON {json_type(value)} {text if len(text) <= 40 else text[:37] + '...'}"


def _short(value: Any, limit: int = 60) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > FLOAT32_MAX:
        return f"an integer of {len(str(abs(value)))} digits"
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
