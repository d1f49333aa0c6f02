"""One mini-batch of files -> its output lines: read every file, run the model once over all their items, render a
line per item, and a line per file that could not be scored.

``batch_score.run()`` calls ``score_files``. A file that cannot be read (corrupt, wrong shape, wrong columns, an
image the model's limits refuse) costs only its own line (``batch.output.error_line``) and a log line; the other files
of the mini-batch are scored. A fault of the model itself (its forward pass raising) is not the data's: it raises, so
the batch runtime retries the mini-batch (``retry_settings``) and counts its files against ``error_threshold``
(docs/batch.md, "Failures").
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from batch import output
from batch.readers import BadFile, read_file
from serving.predictor import Prediction, Predictor
from serving.settings import SettingsError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchSettings:
    """What only the batch script reads (the model's own settings are ``serving.settings.Settings``).

    Attributes:
        probabilities: ``BATCH_PROBABILITIES=on`` adds every label's probability to a classification row.
        max_file_bytes: ``BATCH_MAX_FILE_MB`` (1024 by default), the largest file read; a larger one is reported.
        max_file_rows: ``BATCH_MAX_FILE_ROWS`` (1,000,000 by default), the most items one file may hold. A file is
            read whole, so these two bound a worker's memory whatever the number of files.
    """

    probabilities: bool = False
    max_file_bytes: int = 1024 * 1024 * 1024
    max_file_rows: int = 1_000_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BatchSettings:
        env = os.environ if environ is None else environ
        flag = env.get("BATCH_PROBABILITIES", "off").strip().lower() or "off"
        if flag not in ("on", "off"):
            raise SettingsError(f"BATCH_PROBABILITIES is {flag!r}; expected 'on' or 'off'")
        return cls(
            probabilities=flag == "on",
            max_file_bytes=_positive(env, "BATCH_MAX_FILE_MB", 1024) * 1024 * 1024,
            max_file_rows=_positive(env, "BATCH_MAX_FILE_ROWS", 1_000_000),
        )


def score_files(paths: Sequence[str], predictor: Predictor, settings: BatchSettings) -> list[str]:
    """The output lines of one mini-batch, file by file in the order given: every item of a readable file, one
    error line for each other file.

    Raises:
        Exception: whatever the model's forward pass raised (a fault, not the data's: the mini-batch is retried).
    """
    spec = predictor.manifest.input
    read: list[tuple[str, np.ndarray | BadFile]] = []
    for path in paths:
        name = Path(path).name
        try:
            read.append((name, read_file(Path(path), spec, settings.max_file_bytes, settings.max_file_rows)))
        except BadFile as err:
            logger.warning("batch file %s not scored (%s): %s", name, err.code, err.reason)
            read.append((name, err))
        except OSError as err:  # gone, unreadable, a folder: still this file's problem alone
            reason = f"{name} could not be opened ({type(err).__name__}: {err.strerror or err})"
            logger.warning("batch file %s not scored (unreadable_file): %s", name, reason)
            read.append((name, BadFile("unreadable_file", reason)))
    batches = [item for _, item in read if isinstance(item, np.ndarray)]
    prediction = predictor.predict(np.concatenate(batches)) if batches else None  # one forward pass, in chunks
    lines, start = [], 0
    for name, item in read:
        if isinstance(item, BadFile):
            lines.append(output.error_line(name, item.code, item.reason))
            continue
        assert prediction is not None  # a readable file means a prediction was made
        part = Prediction(prediction.values[start : start + len(item)], prediction.output)
        lines.extend(output.prediction_lines(name, part, settings.probabilities))
        start += len(item)
    logger.info(
        "mini-batch scored: %d file(s), %d item(s), %d file(s) not scored", len(read), start, len(read) - len(batches)
    )
    return lines


def attach_logging() -> None:
    """This package's log lines to stdout, in the template's format (the batch runtime keeps each worker's stdout in
    ``logs/user/stdout/<node>/process<N>.stdout.txt``); once per process."""
    batch_logger = logging.getLogger("batch")
    batch_logger.setLevel(logging.INFO)
    batch_logger.propagate = False
    if not batch_logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname).1s [%(process)d] %(name)s - %(message)s"))
        batch_logger.addHandler(handler)


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{name} is {raw!r}; expected a whole number of at least 1")
    return int(raw)
