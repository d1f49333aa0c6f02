"""A tiny run of the text rows of ``make bench``: the template's servers start, every text load runs without errors,
the tokenization share is read from the score lines, and the report names the ratios. The numbers are the
benchmark's to print, not a test's to assert."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import text

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_the_text_rows_run_every_load_and_report_padding_and_tokenization(tmp_path: Path) -> None:
    runs = text.benchmark(tmp_path, seconds=1, quick=True)
    report = text.markdown(runs)

    assert {(run.server, run.load) for run in runs} == {
        ("text-template", "1 text"),
        ("text-template", "32 texts"),
        ("text-template", "32 short texts"),
        ("text-template-max-length", "32 texts"),
        ("text-template-max-length", "32 short texts"),
    }
    assert all(run.errors == 0 and run.texts_per_s > 0 for run in runs)
    assert all(0 < run.tokenize_share < 1 and run.worker_cpu_ms_per_text > 0 for run in runs)
    assert "padding to the longest / padding to max_length, 32 short texts per request" in report
    assert "| text-template | 32 texts |" in report


def test_mixed_texts_have_mixed_lengths() -> None:
    lengths = [len(t) for t in text.mixed_texts(64)]

    assert max(lengths) > 3 * min(lengths)
