"""Batch scoring benchmark: ``python -m bench.batch`` (run by ``make bench`` after ``bench.run``; alone: ``make bench
ONLY=batch``).

The local runner (``batch.runner``) scores folders of the demo digits model's inputs with ``batch_score.py`` and with
``bench/sample_style_batch_score.py`` (the public samples' style), at 1, 2 and 4 worker processes:

* rows: ``.npy`` files of a few rows each (many small files, as exported tables often are), rows/s;
* images: one PNG per item, images/s;
* memory: the template's peak resident memory per worker process against the number of files scored (flat: a file
  is read, scored and dropped; nothing accumulates).

Rates are taken over the scoring time (from the first mini-batch handed out to the last line written), without the
workers' start-up, which a batch job pays once per process. It writes ``build/bench/batch.json``, the "Batch scoring"
section at the end of ``docs/performance.md`` (replaced in place), and the cluster-sizing table in ``docs/batch.md``
(between its ``sizing`` markers), both derived from this run.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from batch.runner import JobConfig, run_job
from harness.layout import lay_out_like_azure

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE, SAMPLE = REPO_ROOT / "batch_score.py", REPO_ROOT / "bench" / "sample_style_batch_score.py"
# name: (script, environment, whether it scores the small folders: the sample style is slow enough that a rate over a
# few hundred files is as steady as the template's over thousands)
VARIANTS = {
    "template": (TEMPLATE, {}, False),
    "template-torch": (TEMPLATE, {"MODEL_RUNTIME": "torch"}, False),
    "sample": (SAMPLE, {}, True),
}
SECTION = "## Batch scoring"
SIZING_START, SIZING_END = "<!-- sizing:start -->", "<!-- sizing:end -->"
NODE_CORES = 4  # Standard_DS3_v2, deploy/batch/cluster.yml


def make_inputs(root: Path, files: int, rows_per_file: int, images: int) -> dict[str, Path]:
    """The benchmark's folders: ``rows`` (.npy files), ``images`` (PNGs), drawn from the digits data."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits().data.astype(np.float32)  # (1797, 64), pixel values 0-16
    folders = {"rows": root / "rows", "images": root / "images"}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        start = (i * rows_per_file) % (len(digits) - rows_per_file)
        np.save(folders["rows"] / f"part-{i:05d}.npy", digits[start : start + rows_per_file])
    for i in range(images):
        pixels = (digits[i % len(digits)].reshape(8, 8) * 255 / 16).astype(np.uint8)
        Image.fromarray(pixels, "L").save(folders["images"] / f"digit-{i:05d}.png")
    return folders


def measure(
    script: Path, folder: Path, model_dir: Path, processes: int, out: Path, env: dict[str, str] | None = None
) -> dict:
    output = out / f"{script.stem}-{folder.name}-{processes}-{time.monotonic_ns()}.jsonl"
    summary = run_job(
        JobConfig(
            input=folder,
            output=output,
            model_dir=model_dir,
            script=script,
            processes=processes,
            mini_batch_size=20,
            timeout_s=600,
            env=env or {},
            start_together=True,
        )
    )
    if summary.failed_files or summary.error_files:
        raise RuntimeError(f"{script.name} on {folder}: {summary.failures[:3]}")
    return {
        "files": summary.files,
        "rows": summary.rows,
        "seconds": summary.scoring_seconds,
        "init_seconds": summary.init_seconds,
        "rate": round(summary.rows / summary.scoring_seconds, 1),
        "peak_rss_mib": max(summary.peak_rss_mib.values()),
    }


def benchmark(
    model: Path, files: int, rows_per_file: int, images: int, sample_share: int, memory_files: list[int]
) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as scratch:
        root = Path(scratch)
        model_dir = lay_out_like_azure(model, root / "azureml-models")
        full = make_inputs(root / "full", files, rows_per_file, images)
        small = make_inputs(root / "small", files // sample_share, rows_per_file, images // sample_share)
        runs = []
        for kind in ("rows", "images"):
            for processes in (1, 2, 4):
                for name, (script, env, on_small) in VARIANTS.items():
                    folder = (small if on_small else full)[kind]
                    result = measure(script, folder, model_dir, processes, root / "out", env)
                    runs.append({"script": name, "kind": kind, "processes": processes, **result})
                    print(json.dumps(runs[-1]), flush=True)
        memory = []
        for count in memory_files:
            folder = make_inputs(root / f"memory-{count}", count, rows_per_file, 0)["rows"]
            result = measure(TEMPLATE, folder, model_dir, 2, root / "out")
            memory.append({"files": count, "peak_rss_mib": result["peak_rss_mib"]})
            print(json.dumps(memory[-1]), flush=True)
            shutil.rmtree(folder)
    return {"runs": runs, "memory": memory, "rows_per_file": rows_per_file}


def _run(results: dict, script: str, kind: str, processes: int) -> dict:
    return next(r for r in results["runs"] if (r["script"], r["kind"], r["processes"]) == (script, kind, processes))


def rate(results: dict, script: str, kind: str, processes: int) -> float:
    return _run(results, script, kind, processes)["rate"]


def section(results: dict, machine: str, date: str) -> str:
    """The "Batch scoring" section of docs/performance.md."""
    lines = [
        SECTION,
        "",
        f"Written by `python -m bench.batch` (`make bench`), {date}. {machine} The local runner (`batch.runner`) "
        "drives `batch_score.py` (template) and `bench/sample_style_batch_score.py` (the public samples' style: "
        "weights globbed and loaded by hand, torch's default threads, one forward pass and one DataFrame per file) "
        f"over the demo digits model's inputs, mini-batches of 20 files: `.npy` files of {results['rows_per_file']} "
        "rows each (rows/s) and one PNG per image (images/s). The sample style scores a twentieth of the files (it is "
        "that much slower; a rate over them is as steady). Rates are over the scoring time: work is handed out once "
        "every worker has started. The template's default runtime is ONNX Runtime (the folder has an export); the "
        "torch column is `MODEL_RUNTIME=torch`. On a shared machine the rates move a lot between runs, the sample "
        "style's most (its threads contend with whatever else runs): compare within one run.",
        "",
        "| input | processes | template items/s | template (torch runtime) items/s | sample items/s | "
        "template vs sample | template peak MiB/process | sample peak MiB/process |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in results["runs"]:
        if run["script"] != "template":
            continue
        sample = _run(results, "sample", run["kind"], run["processes"])
        torch_rate = rate(results, "template-torch", run["kind"], run["processes"])
        what = f"{run['files']} .npy files, {run['rows']} rows" if run["kind"] == "rows" else f"{run['files']} PNGs"
        lines.append(
            f"| {what} | {run['processes']} | {run['rate']:.0f} | {torch_rate:.0f} | {sample['rate']:.0f} "
            f"({sample['files']} files) | {run['rate'] / sample['rate']:.1f}× | {run['peak_rss_mib']:.0f} | "
            f"{sample['peak_rss_mib']:.0f} |"
        )
    lines += [
        "",
        "Peak resident memory of a template worker (2 processes) against the number of files scored:",
        "",
        "| files | peak MiB per process |",
        "|---|---|",
        *[f"| {m['files']} | {m['peak_rss_mib']:.0f} |" for m in results["memory"]],
        "",
    ]
    return "\n".join(lines)


def sizing_table(results: dict) -> str:
    """Nodes needed for a dataset and a deadline, from the rates measured at 2 processes on this machine's cores,
    scaled to a node's cores (linear in cores: an estimate to check with one real job, not a promise)."""
    import os

    cores = len(os.sched_getaffinity(0))
    per_node = {kind: rate(results, "template", kind, 2) * NODE_CORES / cores for kind in ("rows", "images")}
    lines = [
        f"Per {NODE_CORES}-vCPU node (Standard_DS3_v2, 4 processes × 1 thread), scaled from this machine's {cores} "
        f"cores: about {per_node['rows']:,.0f} rows/s from `.npy` files of {results['rows_per_file']} rows, "
        f"{per_node['images']:,.0f} images/s from PNGs of the demo model's size. Written by `bench/batch.py`.",
        "",
        "| dataset | files | deadline | nodes (instance_count) | hours at that count |",
        "|---|---|---|---|---|",
    ]
    cases = [  # (dataset, items, files, kind, deadline in hours)
        ("10,000,000 rows", 10_000_000, 400_000, "rows", 1),
        ("1,000,000,000 rows", 1_000_000_000, 4_000_000, "rows", 2),
        ("10,000,000 images", 10_000_000, 10_000_000, "images", 1),
        ("100,000,000 images", 100_000_000, 100_000_000, "images", 4),
    ]
    for label, items, files, kind, hours in cases:
        nodes = max(1, math.ceil(items / (per_node[kind] * hours * 3600)))
        taken = items / (per_node[kind] * nodes) / 3600
        lines.append(f"| {label} | {files:,} | {hours} h | {nodes} | {taken:.2f} |")
    return "\n".join(lines)


def write_docs(results: dict, performance: Path, batch_doc: Path, machine: str, date: str) -> None:
    text = performance.read_text() if performance.is_file() else "# Performance\n"
    kept = text.split(f"\n{SECTION}\n")[0].rstrip("\n")
    performance.write_text(kept + "\n\n" + section(results, machine, date))
    if batch_doc.is_file():
        doc = batch_doc.read_text()
        if SIZING_START in doc and SIZING_END in doc:
            before, rest = doc.split(SIZING_START, 1)
            after = rest.split(SIZING_END, 1)[1]
            batch_doc.write_text(before + SIZING_START + "\n" + sizing_table(results) + "\n" + SIZING_END + after)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "build" / "model")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "bench")
    parser.add_argument("--files", type=int, default=4000, help=".npy files in the rows folder")
    parser.add_argument("--rows-per-file", type=int, default=25)
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--sample-share", type=int, default=20, help="the sample style scores 1/N of the files")
    parser.add_argument("--memory-files", default="100,400,1600", help="file counts for the memory rows")
    parser.add_argument("--docs", action=argparse.BooleanOptionalAction, default=True, help="write the docs pages")
    args = parser.parse_args(argv)
    from bench.run import machine_description

    counts = [int(n) for n in args.memory_files.split(",") if n]
    args.out.mkdir(parents=True, exist_ok=True)
    results = benchmark(args.model, args.files, args.rows_per_file, args.images, args.sample_share, counts)
    (args.out / "batch.json").write_text(json.dumps(results, indent=2) + "\n")
    report = section(results, machine_description(), time.strftime("%Y-%m-%d"))
    print(report)
    print(sizing_table(results))
    if args.docs:
        write_docs(
            results,
            REPO_ROOT / "docs" / "performance.md",
            REPO_ROOT / "docs" / "batch.md",
            machine_description(),
            time.strftime("%Y-%m-%d"),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
