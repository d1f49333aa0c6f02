"""A request costs what its size costs: no body built to be expensive takes more than twice the CPU time or peak
memory to decode (``serving.codecs.decode``) of a plain body of the same size and row count.

The plain body holds valid numbers, as many rows as the crafted one, its numbers written as long as it takes to
reach the same size (``8``, ``12``, ``8.0``, ``8.00``, ...). Times are CPU times in this process, with the garbage
collector paused, the least of several interleaved rounds for each body (other work on a busy machine only ever
adds time; ``cpu_ratio``); docs/reliability.md lists the classes and what each cost before."""

from __future__ import annotations

import contextlib
import gc
import json
import time
import tracemalloc

import pytest

from model_arch.digits_cnn import INPUT_SPEC
from serving.codecs import JSON, decode
from serving.errors import ClientError

ROWS = 256
ROW = [i % 17 for i in range(64)]
MAX_RATIO = 2.0


def compact(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def rows_with(value: object = None, at: tuple[int | slice, int] = (-1, -1), count: int = ROWS) -> list[list]:
    """``count`` valid rows, with ``value`` put at ``at`` (in every row for ``slice(None)``) when given."""
    rows = [list(ROW) for _ in range(count)]
    if value is not None:
        for row in rows[at[0]] if isinstance(at[0], slice) else [rows[at[0]]]:
            row[at[1]] = value
    return rows


def repeated(literal: str, rows: int = ROWS, per_row: int = 64) -> bytes:
    """``{"data": rows}`` with every value written as ``literal``."""
    row = "[" + ",".join([literal] * per_row) + "]"
    return ('{"data":[' + ",".join([row] * rows) + "]}").encode()


def plain(size: int, rows: int) -> bytes:
    """Valid numbers in ``rows`` rows (64 a row, fewer when that many cannot fit), written long enough to make the
    body ``size`` bytes; whitespace makes up the last few."""
    per_row = max(1, min(64, (size - 12) // rows // 2))
    overhead = len(repeated("8", rows, per_row)) - rows * per_row
    width = max(1, (size - overhead) // (rows * per_row))
    body = repeated({1: "8", 2: "12"}.get(width, "8." + "0" * (width - 2)), rows, per_row)
    return body[:-1] + b" " * (size - len(body)) + b"}"


def v2(data: list, shape: list, **extra: object) -> bytes:
    return compact({**extra, "inputs": [{"name": "pixels", "shape": shape, "datatype": "FP32", "data": data}]})


CRAFTED = {  # name: (body, rows)
    # The words true and false: a body holding one used to send every value through a Python walk.
    "true-in-a-string": (compact({"data": rows_with(), "note": "true"}), ROWS),
    "true-and-a-unicode-escape": (compact({"data": rows_with(), "note": "\u00e9 true"}), ROWS),
    "escaped-quotes-in-a-string": (compact({"note": '"' * 2000, "data": rows_with()}), ROWS),
    "v2-true-in-its-id": (v2(rows_with(), [ROWS, 64], id="true"), ROWS),
    # Non-numbers found at the very end, and one that made numpy copy every value as text.
    "boolean-last": (compact({"data": rows_with(True)}), ROWS),
    "string-last": (compact({"data": rows_with("7")}), ROWS),
    "null-last": (compact({"data": rows_with(None)}), ROWS),
    "long-string-first": (compact({"data": rows_with("x" * 20_000, at=(0, 0))}), ROWS),
    "strings-everywhere": (compact({"data": [[str(v) for v in ROW]] * ROWS}), ROWS),
    # Shapes: ragged at the end, nested deeper than the input, nested as deep as the parser allows, tiny rows.
    "ragged-last-row": (compact({"data": [*rows_with()[:-1], ROW[:-1]]}), ROWS),
    "rows-nested-6-deep": (compact({"data": [[[[[[ROW]]]]]] * ROWS}), ROWS),
    "a-row-nested-200-deep": (b'{"data":[' + b"[" * 200 + b"1" + b"]" * 200 + b"," + compact(rows_with())[1:], ROWS),
    "v2-nested-8x8": (v2([[ROW[i : i + 8] for i in range(0, 64, 8)]] * ROWS, [ROWS, 8, 8]), ROWS),
    "tiny-rows": (compact({"data": [[0]] * 1024}), 1024),
    "too-many-tiny-rows": (compact({"data": [[0]] * 50_000}), 50_000),
    # Numbers: exponents json.loads took 8 times longer on, integers beyond 64 bits, of 1,000 to 4,000 digits, NaN.
    "exponents-2e-308": (repeated("2e-308"), ROWS),
    "exponents-1e-400": (repeated("1e-400"), ROWS),
    "exponents-1e+308": (repeated("1e+308"), ROWS),
    "exponents-1e-45": (repeated("1e-45"), ROWS),
    "float32-reprs": (repeated("0.30000001192092896"), ROWS),
    "integers-beyond-int64": (repeated(str(10**20)), ROWS),
    "an-integer-of-1000-digits-a-row": (compact({"data": rows_with(10**1000 - 1, at=(slice(None), 0))}), ROWS),
    "an-integer-of-4000-digits-a-row": (compact({"data": rows_with(10**4000 - 1, at=(slice(None), 0))}), ROWS),
    "nan-everywhere": (repeated("NaN"), ROWS),
    # Everything else in the document: thousands of fields, numbers outside the rows.
    "many-fields": (compact({**{f"k{i}": i for i in range(5000)}, "data": rows_with()}), ROWS),
    "numbers-outside-the-rows": (compact({"junk": rows_with(), "data": rows_with()}), ROWS),
}


def cpu_seconds(body: bytes, calls: int = 3) -> float:
    gc.disable()  # a collection would fall on one body or the other by chance
    try:
        started = time.process_time()
        for _ in range(calls):
            with contextlib.suppress(ClientError):
                decode(body, JSON, INPUT_SPEC, 1024)
        return time.process_time() - started
    finally:
        gc.enable()


def cpu_ratio(crafted: bytes, reference: bytes, attempts: int = 3) -> float:
    """The CPU time of ``crafted`` over that of ``reference``: the least of each over 7 interleaved rounds (other
    work on the machine only ever adds time), measured again up to ``attempts`` times while above the bound."""
    best = float("inf")
    for _ in range(attempts):
        rounds = [(cpu_seconds(crafted), cpu_seconds(reference)) for _ in range(7)]
        best = min(best, min(c for c, _ in rounds) / min(r for _, r in rounds))
        if best <= MAX_RATIO:
            break
    return best


def peak_bytes(body: bytes) -> int:
    tracemalloc.start()
    try:
        with contextlib.suppress(ClientError):
            decode(body, JSON, INPUT_SPEC, 1024)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name", CRAFTED)
def test_a_crafted_body_costs_at_most_twice_a_plain_one_of_its_size(name: str) -> None:
    crafted, rows = CRAFTED[name]
    reference = plain(len(crafted), rows)
    assert len(reference) == len(crafted)

    cpu = cpu_ratio(crafted, reference)
    memory = peak_bytes(crafted) / peak_bytes(reference)

    print(f"{name}: {len(crafted)} bytes, {rows} rows: CPU x{cpu:.2f}, peak memory x{memory:.2f}")
    assert cpu <= MAX_RATIO
    assert memory <= MAX_RATIO
