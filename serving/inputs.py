"""Turn rows (from JSON) or an array (from .npy or a V2 tensor) into the model's input batch, or a
``ClientError`` that says exactly what is wrong.

Validation follows the model's ``InputSpec`` (for the demo: 64 values 0-16 per row, flat or nested 8×8):
numbers only (strings, booleans and null refused, never converted), row shape, NaN and infinity, value range,
batch size. The whole batch becomes one numpy array in C, without a Python loop per value; the one walk over the
values (``_index_of_non_number``) runs only for a body that may hide a non-number from numpy, and before numpy sees
it. A shape a client declares (a .npy header, a V2 tensor) is checked by ``shape_size`` before any arithmetic or
allocation uses it. Every message quotes what was received in bounded form (``describe_value``). The codecs
(``serving.codecs``) call this for every format.
"""

from __future__ import annotations

import functools
import heapq
import json
import math
import reprlib
from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np

from model_arch.spec import InputSpec
from serving.errors import ClientError

FLOAT32_MAX = float(np.finfo(np.float32).max)
MAX_DIMS = 32  # more axes than any model input has (numpy itself stops at 64)
MAX_VALUES = 2**31 - 1  # more values than a request body can carry; bounds every product of declared dimensions

_NUMBER_TYPES = frozenset({int, float})
_preview = reprlib.Repr()  # error messages quote a received value at this size at most, however large or deep it is
_preview.maxlevel, _preview.maxlist, _preview.maxdict, _preview.maxstring, _preview.maxlong = 3, 8, 4, 40, 40


def rows_to_batch(
    rows: Any, spec: InputSpec, max_rows: int, field: str = "data", check_types: bool = True, integers: bool = False
) -> np.ndarray:
    """A JSON list of rows -> the model input ``(batch, *spec.shape)`` float32. ``check_types`` and ``integers``:
    what the body's bytes tell about the rows (``serving.codecs.json_body.JsonScan``), see ``numeric_array``.

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
    named = bool(spec.names) and isinstance(rows[0], dict)
    if not named and not isinstance(rows[0], list):
        hint = " It looks like one row: wrap it in a list, [[...]]." if len(rows) == spec.size else ""
        raise ClientError(
            422,
            "wrong_row_shape",
            f'"{field}" must be a list of rows, each {spec.describe_row()}; its first item is a JSON '
            f"{json_type(rows[0])}, not a row.{hint}",
        )
    _check_batch_size(len(rows), max_rows)  # before any per-row work: a million tiny rows cost nothing more
    if named:
        rows = _named_rows(rows, spec, field)
    return _validated(numeric_array(rows, spec, field, check_types, integers), spec, field)


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


def numeric_array(
    values: list[Any], spec: InputSpec, field: str = "data", check_types: bool = True, integers: bool = False
) -> np.ndarray:
    """A nested JSON list of numbers as one numpy array (int64 or float64), without converting other types.

    ``check_types``: whether the list may hold a boolean or a string (``serving.codecs.json_body.JsonScan``). numpy
    would read a boolean among numbers as 1 or 0, and a string among numbers would make it copy every value as text,
    as wide as the longest string (a 20 kB string among 16,000 numbers: 1.3 GB); such a list has its types checked
    before numpy sees it, one C-level pass per list (``_only_numbers``). ``integers``: whether every number in the
    body is written as an integer (no ``.`` or exponent), read as int64 then. numpy is told the dtype, never left to
    find one: finding it costs four times as much for integers beyond 64 bits, and a null becomes NaN or fails, which
    the precise walk then names.

    Raises:
        ClientError: 422 for a string, boolean, null or object anywhere, for integers beyond float32, and for
            rows of different shapes.
    """
    if check_types:
        seen: set[type] = set()
        _raise_if_non_number(values, spec, field, integers_too=False, seen=seen)
        integers = float not in seen  # every leaf's type was seen: the floats are the numbers written as floats
    array, error = _as_array(values, np.int64) if integers else (None, None)
    if array is None:
        array, error = _as_array(values, np.float64)
    if array is None:
        if error is not ValueError:  # an object or null (TypeError), or an integer beyond float64 (OverflowError)
            _raise_if_non_number(values, spec, field)
        _raise_ragged(values, spec, field)
    if array.dtype.kind == "f" and array.size:  # an empty list has no extremes (and no values to check)
        lowest, highest = np.minimum.reduce(array, axis=None).item(), np.maximum.reduce(array, axis=None).item()
        if not -FLOAT32_MAX <= lowest <= highest <= FLOAT32_MAX:  # NaN fails too: a null read as NaN, or NaN itself
            _raise_if_non_number(values, spec, field)  # a null, or an integer beyond float32, named as such
    return array


def _as_array(values: list[Any], dtype: type) -> tuple[np.ndarray | None, type[Exception] | None]:
    """``values`` as one array of ``dtype``; or None and why numpy could not make one: ValueError for ragged
    nesting (or NaN, for int64), TypeError for an object or null, OverflowError for an integer beyond the dtype."""
    try:
        return np.asarray(values, dtype=dtype), None
    except (ValueError, OverflowError, TypeError) as err:
        return None, type(err)


def _named_rows(rows: list[Any], spec: InputSpec, field: str) -> list[Any]:
    """Rows given as objects keyed by feature name -> lists in the spec's order."""
    ordered = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ClientError(422, "wrong_row_shape", f"{field}[{i}] is a JSON {json_type(row)}; row 0 is an object")
        missing = [name for name in spec.names if name not in row]
        unknown = [key for key in row if key not in spec.names]
        if missing or unknown:
            raise ClientError(
                422,
                "wrong_features",
                f"{field}[{i}] lacks {missing} and has unknown {_preview.repr(sorted(unknown[:100]))}; expected "
                f"exactly {list(spec.names)}",
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
            f'"{field}" columns lack {missing} and have unknown {_preview.repr(unknown)}; expected {list(spec.names)}',
        )
    if not isinstance(rows, list) or not all(isinstance(row, list) and len(row) == len(columns) for row in rows):
        return rows  # rows_to_batch words the shape error
    order = [columns.index(name) for name in spec.names]
    return [[row[i] for i in order] for row in rows]


def shape_size(shape: Sequence[Any], what: str, status: int, code: str) -> int:
    """The number of values an array of ``shape`` holds, checked before numpy or Python arithmetic can fail on it:
    at most ``MAX_DIMS`` whole numbers (not booleans), each from 0 to ``MAX_VALUES``, whose product (zero-length
    axes aside, as numpy counts it) stays within ``MAX_VALUES``. The product is built one factor at a time and
    stops at the bound, so no number larger than ``MAX_VALUES`` squared is ever made, printed or allocated for.

    Raises:
        ClientError: ``status`` and ``code``, naming ``what`` and the rule the shape breaks.
    """
    if len(shape) > MAX_DIMS:
        raise ClientError(status, code, f"{what} has {len(shape)} dimensions; at most {MAX_DIMS} are accepted")
    for i, dim in enumerate(shape):
        if type(dim) is not int or not 0 <= dim <= MAX_VALUES:
            raise ClientError(
                status,
                code,
                f"{what}[{i}] is {_value_text(dim)}; each dimension must be a whole number from 0 to {MAX_VALUES}",
            )
    nonzero = 1
    for dim in shape:
        nonzero *= dim or 1
        if nonzero > MAX_VALUES:
            raise ClientError(
                status,
                code,
                f"{what} {_preview.repr(list(shape))} holds more than {MAX_VALUES} values; no request holds as many",
            )
    return 0 if 0 in shape else nonzero


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


def _raise_if_non_number(
    values: list[Any], spec: InputSpec, field: str, integers_too: bool = True, seen: set[type] | None = None
) -> None:
    """Raise for the first leaf, depth first, that is not a number: a string, boolean, null, object, or (with
    ``integers_too``) an integer beyond float32. ``seen`` collects the types of the items looked at."""
    index = _index_of_non_number(values, integers_too, seen)
    if index is None:
        return
    value: Any = values
    for i in index:
        value = value[i]
    path = field + "".join(f"[{i}]" for i in index)  # spelled for the one leaf it names
    if isinstance(value, int) and not isinstance(value, bool):
        raise ClientError(422, "out_of_range", f"{path} is {_short(value)}, too large for float32")
    what = describe_value(value) if isinstance(value, (list, dict)) else f"{_short(value)}, a JSON {json_type(value)}"
    raise ClientError(
        422,
        "non_numeric",
        f"{path} is {what}; every value must be a number (each row is {spec.describe_row()})",
    )


def _index_of_non_number(items: list[Any], integers_too: bool, seen: set[type] | None = None) -> tuple[int, ...] | None:
    """The index path of the first leaf that is not an int or a float (or, with ``integers_too``, is an integer
    beyond float32). A list of numbers costs the set of its items' types, built in C; only a list holding
    something else is looked at item by item, in Python. Recursive: the parser bounds the depth to a few hundred."""
    types = set(map(type, items))
    if seen is not None:
        seen |= types
    if types <= _NUMBER_TYPES and (not integers_too or int not in types or _ints_within_float32(items)):
        return None
    for i, item in enumerate(items):
        kind = type(item)
        if kind is list:
            inner = _index_of_non_number(item, integers_too, seen)
            if inner is not None:
                return (i, *inner)
        elif kind is not float and (kind is not int or (integers_too and not -FLOAT32_MAX <= item <= FLOAT32_MAX)):
            return (i,)
    return None


def _ints_within_float32(numbers: list[int | float]) -> bool:
    return min(numbers) >= -FLOAT32_MAX and max(numbers) <= FLOAT32_MAX  # NaN may fail it: then item by item


def _raise_ragged(values: list[Any], spec: InputSpec, field: str) -> NoReturn:
    """Word the error for a batch of numbers that numpy could not make into one regular array."""
    first_shape = _regular_shape(values[0])
    for i, row in enumerate(values):
        shape = _regular_shape(row)
        if shape is None:
            raise ClientError(
                422,
                "ragged_rows",
                f"row {i} is not a regular nesting of numbers (lists of different lengths inside it, or nested "
                f"deeper than {MAX_DIMS} levels); every row must be {spec.describe_row()}",
            )
        if shape != first_shape:
            raise ClientError(
                422,
                "ragged_rows",
                f"row {i} has shape {_shape_text(shape)} but row 0 has shape {_shape_text(first_shape)}; "
                f"every row must be {spec.describe_row()}",
            )
    raise ClientError(422, "invalid_data", f'"{field}" could not be read as numbers; each row is {spec.describe_row()}')


def _regular_shape(row: Any, depth: int = 0) -> tuple[int, ...] | None:
    """The shape of a row that is a regular nesting of leaves, else None: a list of leaves is ``(len,)``, a list of
    lists of one shape adds its length in front. The set of item types and of inner shapes, built in C per list."""
    if type(row) is not list:
        return ()
    types = set(map(type, row))
    if list not in types:
        return (len(row),)
    if types != {list} or depth >= MAX_DIMS:
        return None
    shapes = {_regular_shape(item, depth + 1) for item in row}
    if len(shapes) != 1 or None in shapes:
        return None
    return (len(row), *shapes.pop())


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
    """``a JSON <type> <its start>``, for messages about a value that is not what was expected: a few levels, items
    and characters at most, whatever the value's size or depth."""
    text = _preview.repr(value)
    return f"a JSON {json_type(value)} {text if len(text) <= 60 else text[:57] + '...'}"


def describe_keys(mapping: dict[str, Any]) -> str:
    """The first keys of a JSON object in sorted order, in bounded form (the object may have a million keys)."""
    return _preview.repr(heapq.nsmallest(10, mapping))


def _value_text(value: Any) -> str:
    """A value as its JSON text when it is a number, string, boolean or null; a bounded preview otherwise."""
    return _short(value) if value is None or isinstance(value, (bool, int, float, str)) else _preview.repr(value)


def _short(value: Any, limit: int = 60) -> str:
    """A number, string, boolean or null as its JSON text, cut to ``limit`` characters."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > FLOAT32_MAX:
        return f"an integer of {len(str(abs(value)))} digits"
    text = json.dumps(value[:limit] if isinstance(value, str) else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
