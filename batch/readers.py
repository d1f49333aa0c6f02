"""One input file -> the model batch it holds, by the file's kind: a registry of readers keyed by file extension.

``batch_score.run()`` calls ``read_file`` for every path of a mini-batch. Each reader turns one file into the model
input ``(items, *spec.shape)`` float32 through the same functions the online endpoint uses, so a row gives the same
answer in both: ``serving.inputs`` validates rows and arrays (shape, numbers only, NaN, range), the online codecs
read a ``.json`` request body, and ``InputSpec.decode_images`` (``model_arch.images``) decodes a picture with the
model's own limits. A file that cannot be read raises ``BadFile`` with a stable code and a reason; the caller reports
it and scores the rest.

Kinds: ``.npy`` (one array shaped ``(rows, ...)``), ``.csv`` and ``.parquet`` (named columns taken by the spec's
feature names, else every column in order), ``.jsonl`` (one row per line: a list of numbers, or an object keyed by
feature name), ``.json`` (one online request body: ``{"data": rows}``, ``input_data`` or V2), and pictures
(``.png``, ``.jpg``, ... one item each). A new kind is one function decorated with ``@reader(".ext")``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from model_arch.images import ImageError
from model_arch.spec import InputSpec
from serving.errors import ClientError
from serving.inputs import array_to_batch, rows_to_batch

Reader = Callable[[Path, InputSpec, int], np.ndarray]  # (path, spec, most rows) -> (items, *spec.shape) float32
READERS: dict[str, Reader] = {}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")


class BadFile(Exception):
    """A file this model cannot score, with a stable code (as the online endpoint's) and a reason for a person."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def reader(*suffixes: str) -> Callable[[Reader], Reader]:
    """Register the decorated function as the reader of files ending in ``suffixes`` (lower case, with the dot)."""

    def register(function: Reader) -> Reader:
        for suffix in suffixes:
            READERS[suffix] = function
        return function

    return register


def read_file(path: Path, spec: InputSpec, max_bytes: int, max_rows: int) -> np.ndarray:
    """The model input ``(items, *spec.shape)`` float32 that ``path`` holds.

    Raises:
        BadFile: an unknown kind, a file over ``max_bytes`` or ``max_rows``, or one whose content does not fit the
            model (the online endpoint's code and message), or that its parser could not read.
    """
    path = Path(path)
    read = READERS.get(path.suffix.lower())
    if read is None:
        raise BadFile(
            "unsupported_file",
            f"{path.name}: files ending in {path.suffix or '(no extension)'!r} are not read; name the file by its "
            f"kind, one of {', '.join(sorted(READERS))}",
        )
    size = path.stat().st_size
    if size > max_bytes:
        raise BadFile(
            "file_too_large",
            f"{path.name} is {size:,} bytes; files of at most {max_bytes:,} are read (BATCH_MAX_FILE_MB): split it",
        )
    try:
        batch = read(path, spec, max_rows)
    except BadFile:
        raise
    except (ClientError, ImageError) as err:  # the online endpoint's own refusal, word for word
        raise BadFile(err.code, err.message) from None
    except Exception as err:  # a parser's complaint about a corrupt file (pandas, pyarrow, numpy all raise their own)
        first_line = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
        raise BadFile(
            "unreadable_file", f"{path.name} could not be read ({type(err).__name__}: {first_line})"
        ) from None
    if len(batch) > max_rows:
        raise BadFile(
            "too_many_rows",
            f"{path.name} holds {len(batch):,} rows; at most {max_rows:,} per file (BATCH_MAX_FILE_ROWS)",
        )
    return batch


@reader(".npy")
def read_npy(path: Path, spec: InputSpec, max_rows: int) -> np.ndarray:
    """``numpy.save`` of one array shaped ``(rows, ...)``; read without pickle."""
    array = np.load(path, allow_pickle=False)
    if not isinstance(array, np.ndarray):
        raise BadFile("invalid_npy", f"{path.name} is not one array")
    return array_to_batch(array, spec, array.shape[0] if array.ndim else 1, "array")  # rows: read_file checks


@reader(".csv")
def read_csv(path: Path, spec: InputSpec, max_rows: int) -> np.ndarray:
    """A table with a header row, or without one: a first line of numbers is a row, unless it is 0, 1, 2, ... (the
    header ``DataFrame.to_csv`` writes for unnamed columns)."""
    import pandas as pd

    table = pd.read_csv(path, nrows=max_rows + 1)
    if _first_line_is_a_row(list(table.columns)):
        table = pd.read_csv(path, header=None, nrows=max_rows + 1)
    return table_to_batch(table, spec, path.name)


@reader(".parquet", ".pq")
def read_parquet(path: Path, spec: InputSpec, max_rows: int) -> np.ndarray:
    """A Parquet table; only the columns the model takes are read when the spec names its features."""
    import pandas as pd
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    if file.metadata.num_rows > max_rows:
        raise BadFile(
            "too_many_rows",
            f"{path.name} holds {file.metadata.num_rows:,} rows; at most {max_rows:,} per file (BATCH_MAX_FILE_ROWS)",
        )
    present = set(file.schema_arrow.names)
    columns = list(spec.names) if spec.names and set(spec.names) <= present else None
    table: pd.DataFrame = file.read(columns=columns).to_pandas()
    return table_to_batch(table, spec, path.name)


def table_to_batch(table, spec: InputSpec, name: str) -> np.ndarray:
    """A DataFrame -> the model input. With feature names in the spec, the columns of those names, in the spec's order
    (other columns, such as an id, are left out); a table that has some of the names but not all is refused. Without
    them (or with no column named), every column in order, all numeric."""
    columns = [str(column) for column in table.columns]
    if spec.names:
        named = [feature for feature in spec.names if feature in columns]
        if named and len(named) < len(spec.names):
            missing = [feature for feature in spec.names if feature not in columns]
            raise BadFile(
                "wrong_features",
                f"{name} has columns {columns[:20]} but lacks {missing}; expected every one of {list(spec.names)}",
            )
        if named:
            table = table[list(spec.names)]
    not_numbers = [str(column) for column, dtype in table.dtypes.items() if dtype.kind not in "iuf"]
    if not_numbers:
        raise BadFile(
            "non_numeric",
            f"{name}: columns {not_numbers[:10]} are not numbers (text, dates or empty); each row is "
            f"{spec.describe_row()}",
        )
    return array_to_batch(table.to_numpy(), spec, max(len(table), 1), name)


@reader(".jsonl", ".ndjson")
def read_jsonl(path: Path, spec: InputSpec, max_rows: int) -> np.ndarray:
    """JSON lines: one row per non-blank line, as a row of the online ``{"data": rows}`` (a list of numbers, flat or
    nested, or an object keyed by feature name)."""
    from serving.codecs.json_body import parse_json

    rows = []
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            if len(rows) >= max_rows:
                raise BadFile("too_many_rows", f"{path.name} holds more than {max_rows:,} rows (BATCH_MAX_FILE_ROWS)")
            try:
                rows.append(parse_json(line))
            except ClientError as err:
                raise BadFile(err.code, f"{path.name} line {number}: {err.message}") from None
    return rows_to_batch(rows, spec, max(len(rows), 1), path.name)


@reader(".json")
def read_json_request(path: Path, spec: InputSpec, max_rows: int) -> np.ndarray:
    """One request body as the online endpoint takes it (``{"data": rows}``, ``{"input_data": ...}``, V2; base64
    pictures in them too, for an image model)."""
    from serving import codecs

    return codecs.decode(path.read_bytes(), codecs.JSON, spec, max_rows, max_images=max_rows).batch


@reader(*IMAGE_SUFFIXES)
def read_image(path: Path, spec: InputSpec, max_rows: int) -> np.ndarray:
    """One picture, one item: decoded by the model's image spec, with its limits (formats, pixels)."""
    if spec.image is None:
        raise BadFile(
            "images_not_accepted",
            f"{path.name}: this model takes rows of numbers ({spec.describe_row()}), not images",
        )
    return spec.decode_images([path.read_bytes()])


def _first_line_is_a_row(header: list[object]) -> bool:
    try:
        numbers = [float(str(text)) for text in header]
    except ValueError:
        return False
    return numbers != list(range(len(numbers)))


def accepted_suffixes() -> list[str]:
    """Every extension a reader is registered for, for messages and the docs."""
    return sorted(READERS)
