"""What the JSON codecs share: parsing a body into a document, what a body may hide from numpy, and numbers
rendered for a JSON answer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import compress
from typing import Any

import numpy as np
from pydantic_core import from_json

from serving.errors import ClientError

JSON = "application/json"
OUTPUT_DECIMALS = 7  # float32 carries about 7 significant digits
_compact = json.JSONEncoder(separators=(",", ":")).encode  # built once: json.dumps(separators=...) builds one per call
LONGEST_NUMBER = 1000  # digits in a row; float32 needs 39 at most
_DIGIT_MARKS = bytes(byte in b"0123456789" for byte in range(256))  # a translate table: 1 for a digit, else 0


def parse_json(body: bytes) -> Any:
    """The JSON document in ``body``, refused before it is parsed when it holds a number thousands of digits long.

    The parser is pydantic-core's (``from_json``; the inference server needs pydantic, so it is always installed):
    its cost per byte is the same whatever the numbers look like, where ``json.loads`` spends up to 8 times longer
    on a number with a large exponent (``2e-308``) than on a plain one (docs/reliability.md). It nests at most a
    few hundred levels deep. Reading an integer costs more per digit the longer it is (5 ns a digit at 4,000 digits):
    a run of ``2 * LONGEST_NUMBER`` digits or more (and some from ``LONGEST_NUMBER + 1``) is refused.

    Raises:
        ClientError: 400 for an empty body, text that is not UTF-8, or anything that is not one JSON document.
    """
    if not body.strip():
        raise ClientError(400, "empty_body", "the request body is empty")
    if _has_long_number(body):
        raise ClientError(
            400,
            "invalid_json",
            f"the request body holds a number more than {LONGEST_NUMBER} digits long; float32 holds no more than 39 "
            "digits before the point, and rounds away all but about 9 after it",
        )
    try:
        # Strings are not cached: a client's strings would fill the cache of the worker's whole life.
        return from_json(body, allow_inf_nan=True, cache_strings="keys")
    except ValueError as err:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as utf8:
            raise ClientError(
                400, "invalid_json", f"the request body is not UTF-8 text ({utf8.reason} at byte {utf8.start})"
            ) from err
        raise ClientError(400, "invalid_json", f"the request body is not valid JSON ({err})") from err


def _has_long_number(body: bytes) -> bool:
    """Whether ``body`` holds a run of more than ``LONGEST_NUMBER`` digits, found without a look at every byte: a
    run of ``2 * LONGEST_NUMBER`` covers two neighbouring bytes of every ``LONGEST_NUMBER``-th, and only where both
    are digits is the stretch between them read (about 0.1 ns a byte)."""
    step = LONGEST_NUMBER
    if len(body) < 2 * step:
        return False
    marks = body[step - 1 :: step].translate(_DIGIT_MARKS)  # b"\x01" where the sampled byte is a digit
    at = marks.find(b"\x01\x01")
    while at >= 0:
        start = at * step + step - 1
        if body[start : start + step + 1].isdigit():
            return True
        at = marks.find(b"\x01\x01", at + 1)
    return False


@dataclass(frozen=True)
class NumberFacts:
    """What the bytes of a body tell about its numbers, for ``serving.inputs.numeric_array``.

    Attributes:
        check_types: the numbers may hide a boolean or a string. numpy reads a boolean among numbers as 1 or 0, and
            copies every value as text when one is a string, so these are checked before numpy sees them.
        integers: every number is written as an integer (or is NaN or Infinity), and is read as int64.
    """

    check_types: bool
    integers: bool


def number_facts(body: bytes, document: dict[str, Any], numbers: Any) -> NumberFacts:
    """The facts about ``numbers``, the part of ``document`` (parsed from ``body``) that should hold only numbers.

    Exact, and cheap: every ``true``, ``false``, ``"``, ``.``, ``e`` and ``E`` in the bytes is in a string or key,
    in a value outside ``numbers``, or in ``numbers``; the bytes are counted in C, and only when they hold more than
    the top-level keys account for does the part of the document outside ``numbers`` get counted too. A ``\\``
    escape (``\\u0074rue``, ``\\"``) can spell them with other bytes, so with one there the answer is cautious."""
    quotes = body.count(b'"')
    spelled = (b"r" in body and b"u" in body) or (b"f" in body and b"l" in body)  # memchr: what true, false need
    words = body.count(b"true") + body.count(b"false") if spelled else 0
    dots = b"." in body
    letters = body.count(b"e") + body.count(b"E") if b"e" in body or b"E" in body else 0
    if not words and not letters and quotes <= 2 * len(document):  # the top-level keys have all the quotes
        return NumberFacts(check_types=False, integers=not dots)
    outside = _Outside.of(document, numbers)
    if b"\\" in body:
        return NumberFacts(check_types=words > 0 or quotes > 2 * outside.strings, integers=False)
    return NumberFacts(
        check_types=words > outside.words or quotes > 2 * outside.strings + outside.quotes,
        integers=not dots and letters == outside.letters,
    )


@dataclass(frozen=True)
class _Outside:
    """What the decoded document holds outside its numbers: strings (keys included), the quotes and the letters
    e and E inside them, and the words ``true`` and ``false`` inside them or as booleans."""

    strings: int
    quotes: int
    words: int
    letters: int

    @classmethod
    def of(cls, document: Any, numbers: Any) -> _Outside:
        """One pass over ``document`` but ``numbers``, without recursion (a document nests as deep as the parser
        allows). A list or object of numbers costs a pass in C; only strings, booleans and containers are handled
        one by one, and the strings are counted in C, joined."""
        strings: list[str] = []
        booleans, stack = 0, [document]
        while stack:
            value = stack.pop()
            if value is numbers:
                continue
            if type(value) is dict:
                strings.extend(value)
                value = value.values()
            if set(map(type, value)) <= _NUMBER_TYPES:
                continue
            for item in compress(value, map(_NOT_NUMBER_TYPES.__contains__, map(type, value))):
                kind = type(item)
                if kind is str:
                    strings.append(item)
                elif kind is bool:
                    booleans += 1
                elif kind is list or kind is dict:
                    stack.append(item)
        text = "\0".join(strings)  # a separator no word or quote spans
        words = text.count("true") + text.count("false")
        letters = text.count("e") + text.count("E") + booleans  # each of true and false has one e
        return cls(len(strings), text.count('"'), words + booleans, letters)


_NUMBER_TYPES = frozenset({int, float})
_NOT_NUMBER_TYPES = frozenset({str, bool, list, dict})


def rounded(values: np.ndarray) -> list[Any]:
    """Float32 model outputs as nested lists of Python floats, rounded to the precision float32 has: rounding moves
    no value by more than 5e-8, and halves the time ``json`` takes to render them."""
    return values.astype(np.float64).round(OUTPUT_DECIMALS).tolist()


def dumps(document: Any) -> bytes:
    """The compact JSON text of ``document``, as bytes for the response."""
    return _compact(document).encode()
