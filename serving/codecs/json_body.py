"""What the JSON codecs share: parsing a body into a document, and numbers rendered for a JSON answer."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from serving.errors import ClientError

JSON = "application/json"
OUTPUT_DECIMALS = 7  # float32 carries about 7 significant digits
_compact = json.JSONEncoder(separators=(",", ":")).encode  # built once: json.dumps(separators=...) builds one per call


def parse_json(body: bytes) -> Any:
    """The JSON document in ``body``.

    Raises:
        ClientError: 400 for an empty body, text that is not UTF-8, or anything ``json`` cannot parse.
    """
    if not body.strip():
        raise ClientError(400, "empty_body", "the request body is empty")
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
            f"the request body is not valid JSON ({err.msg} at line {err.lineno} column {err.colno})",
        ) from err
    except (ValueError, RecursionError) as err:  # a 4300+ digit integer; nesting deeper than Python's stack
        raise ClientError(400, "invalid_json", f"the request body could not be parsed as JSON: {err}") from err


def may_hold_booleans(body: bytes) -> bool:
    """Whether the body has a JSON ``true`` or ``false`` anywhere. numpy reads a boolean among numbers as 1 or 0,
    so only such a body needs the check that refuses booleans (``serving.inputs``)."""
    return b"true" in body or b"false" in body


def rounded(values: np.ndarray) -> list[Any]:
    """Float32 model outputs as nested lists of Python floats, rounded to the precision float32 has: rounding moves
    no value by more than 5e-8, and halves the time ``json`` takes to render them."""
    return values.astype(np.float64).round(OUTPUT_DECIMALS).tolist()


def dumps(document: Any) -> bytes:
    """The compact JSON text of ``document``, as bytes for the response."""
    return _compact(document).encode()
