"""The output rows of a batch job: one line of JSON per input item, and one per file that could not be scored.

``batch_score.run()`` returns these lines; Azure ML's ``append_row`` writes each returned element on a line of its own
in ``predictions.jsonl`` (the deployment's ``output_file_name``), and so does the local runner (``batch.runner``).

Why JSON with no space in it: ``append_row`` documents no separator, and the public samples read its file with
``pandas.read_csv(sep=" ", header=None)``, so any space inside a value (a file name, a label, an error message) would
split the row into columns. A line here is compact JSON in which every space inside a string is written as the JSON
escape ``\\u0020``: no line holds a space or a raw newline, so whatever splits on spaces sees exactly one field, and
``json.loads`` (or ``pandas.read_json(path, lines=True)``) gives back the exact text. Order is not kept by the batch
runtime, so every row carries its key: the file's name and the item's index in it.

Rows (``item`` counts from 0 in the file: a row of a table or a line of JSON lines; a picture is item 0):

* classification: ``{"file", "item", "status": "ok", "label", "score"}``, and ``"probabilities"`` (one per label,
  in label order) with ``BATCH_PROBABILITIES=on``;
* multilabel: ``{"file", "item", "status": "ok", "labels": [...], "probabilities": [...]}``;
* regression: ``{"file", "item", "status": "ok", "values": {output name: value}}``;
* a file that could not be scored: ``{"file", "item": null, "status": "error", "code", "reason"}``.

Values are rounded as the online endpoint rounds them (``serving.codecs.json_body.rounded``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from serving.codecs.json_body import rounded
from serving.predictor import Prediction

OK, ERROR = "ok", "error"
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


def line(row: dict[str, Any]) -> str:
    """One output row as a line without spaces or newlines (compact JSON; every space in a string escaped)."""
    return _encode(row).replace(" ", "\\u0020")  # compact JSON has spaces only inside strings


def prediction_lines(file: str, prediction: Prediction, probabilities: bool = False) -> list[str]:
    """One line per row of ``prediction``, the rows of ``file`` in order."""
    output = prediction.output
    values = rounded(prediction.values)
    if output.kind == "regression":
        return [
            line({"file": file, "item": i, "status": OK, "values": dict(zip(output.names, row, strict=True))})
            for i, row in enumerate(values)
        ]
    labels = prediction.labels()
    if output.kind == "multilabel":
        return [
            line({"file": file, "item": i, "status": OK, "labels": chosen, "probabilities": row})
            for i, (chosen, row) in enumerate(zip(labels, values, strict=True))
        ]
    best = prediction.values.argmax(axis=1).tolist()
    rows = []
    for i, (label, row) in enumerate(zip(labels, values, strict=True)):
        record = {"file": file, "item": i, "status": OK, "label": label, "score": row[best[i]]}
        if probabilities:
            record["probabilities"] = row
        rows.append(line(record))
    return rows


def error_line(file: str, code: str, reason: str) -> str:
    """The line of a file that could not be scored: its name, a stable code and the reason."""
    return line({"file": file, "item": None, "status": ERROR, "code": code, "reason": reason})


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of an output file, parsed (blank lines skipped)."""
    with Path(path).open(encoding="utf-8") as lines:
        for text in lines:
            if text.strip():
                yield json.loads(text)
