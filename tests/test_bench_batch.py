"""bench/batch.py's report: the performance section, the sizing table in docs/batch.md, each replaced in place."""

from __future__ import annotations

from pathlib import Path

from bench import batch as bench_batch


def fake_results() -> dict:
    runs = []
    for kind in ("rows", "images"):
        for processes in (1, 2, 4):
            for script, rate in (("template", 1000.0), ("template-torch", 500.0), ("sample", 100.0)):
                runs.append(
                    {"script": script, "kind": kind, "processes": processes, "files": 20, "rows": 40, "rate": rate,
                     "peak_rss_mib": 75.0, "seconds": 1.0, "init_seconds": 0.5}
                )  # fmt: skip
    return {"runs": runs, "memory": [{"files": 10, "peak_rss_mib": 75.0}], "rows_per_file": 2}


def test_the_section_shows_the_ratio_to_the_sample_style() -> None:
    text = bench_batch.section(fake_results(), "Machine: test.", "2026-01-01")

    assert text.startswith(bench_batch.SECTION)
    assert "| 20 .npy files, 40 rows | 2 | 1000 | 500 | 100 (20 files) | 10.0× | 75 | 75 |" in text


def test_the_docs_are_rewritten_in_place(tmp_path: Path) -> None:
    performance, batch_doc = tmp_path / "performance.md", tmp_path / "batch.md"
    performance.write_text("# Performance\n\nonline figures\n\n## Batch scoring\n\nold batch figures\n")
    batch_doc.write_text(f"# Batch\n\n{bench_batch.SIZING_START}\nold\n{bench_batch.SIZING_END}\n\nafter\n")

    bench_batch.write_docs(fake_results(), performance, batch_doc, "Machine: test.", "2026-01-01")

    page = performance.read_text()
    assert "online figures" in page and "old batch figures" not in page and page.count("## Batch scoring") == 1
    doc = batch_doc.read_text()
    assert "old" not in doc and doc.endswith("after\n") and "| dataset | files | deadline |" in doc
