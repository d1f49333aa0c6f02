"""The text rows of ``make bench``: a small transformers classifier behind the template and behind a
sample-style script, on loopback, 2 workers, 8 clients (``python -m bench.text`` runs them alone).

The model is the ``transformers_classifier`` example (a 2-layer BERT, hidden size 32, with its own WordPiece
tokenizer; ``training.train.train_transformers``), saved by ``save_pretrained`` and exported by
``model_folder.onnx_export``. Servers:

* ``text-sample`` (``bench/sample_text_score.py``): a ``transformers`` pipeline called per request;
* ``text-template``: ``score.py``, as configured by default (ONNX Runtime, one thread per worker), padding each
  request to its longest text;
* ``text-template-max-length``: the same, with the manifest's ``tokenizer.padding`` set to ``max_length`` (every
  text padded to 64 tokens): what padding to the longest saves.

Loads: 1 text per request and 32 texts per request, texts of mixed lengths (one to four of the demo's sentences, 8
to 64 tokens), each request drawn in turn from a pool of bodies; and 32 short texts (one sentence each), where
padding to the longest text pads to far fewer than 64 tokens. Reported: texts/s, the workers' CPU per text, and
the tokenization share (``tokenize_ms`` over the ``score`` line's total, median over the run's requests).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from harness.server import REPO_ROOT, InferenceServer

SERVERS = {  # name -> (entry script, environment, model folder variant)
    "text-sample": ("bench/sample_text_score.py", {}, "saved"),
    "text-template": ("score.py", {}, "exported"),
    "text-template-max-length": ("score.py", {}, "max_length"),
}
LOADS = (("1 text", 1), ("32 texts", 32), ("32 short texts", 32))  # (name, texts per request)
CLIENTS = 8
WORKERS = 2


@dataclass
class TextRun:
    server: str
    load: str
    texts_per_request: int
    requests_per_s: float
    texts_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    worker_cpu_ms_per_text: float | None
    tokenize_share: float | None  # tokenize_ms over the request's time in score.py (template servers only)


def mixed_texts(count: int, seed: int = 0, most: int = 4) -> list[str]:
    """``count`` texts of one to ``most`` of the demo's sentences: mixed lengths, as real traffic has."""
    from training.data import TOPICS_FILE

    sentences = [line.split("\t", 1)[1] for line in TOPICS_FILE.read_text(encoding="utf-8").splitlines()[1:]]
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(sentences, size=int(rng.integers(1, most + 1)))) for _ in range(count)]


def prepare(root: Path) -> dict[str, Path]:
    """AZUREML_MODEL_DIR for each variant: the save_pretrained folder as written, exported, and padded to
    max_length."""
    from model_folder.onnx_export import export_onnx
    from training.train import train_transformers

    saved = root / "saved" / "model"
    if not (saved / "config.json").is_file():
        train_transformers(saved)
    exported = root / "exported" / "model"
    if not (exported / "manifest.json").is_file():
        shutil.copytree(saved, exported, dirs_exist_ok=True)
        export_onnx(exported)
    padded = root / "max_length" / "model"
    shutil.copytree(exported, padded, dirs_exist_ok=True)
    manifest = json.loads((padded / "manifest.json").read_text())
    manifest["tokenizer"]["padding"] = "max_length"
    (padded / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return {"saved": saved.parent, "exported": exported.parent, "max_length": padded.parent}


def write_bodies(folder: Path) -> dict[str, list[Path]]:
    """Per load, a pool of JSON bodies (``{"data": [texts]}``), each request takes the next."""
    folder.mkdir(parents=True, exist_ok=True)
    pools: dict[str, list[Path]] = {}
    for name, per_request in LOADS:
        most = 1 if "short" in name else 4
        texts = mixed_texts(64 * per_request if per_request == 1 else 8 * per_request, most=most)
        bodies = [texts[i : i + per_request] for i in range(0, len(texts), per_request)]
        pools[name] = []
        for i, batch in enumerate(bodies):
            path = folder / f"{name.replace(' ', '-')}-{i}.json"
            path.write_text(json.dumps({"data": batch}))
            pools[name].append(path)
    return pools


def run_wrk_pool(url: str, bodies: list[Path], clients: int, seconds: float) -> tuple[float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, errors): wrk sending the bodies in turn."""
    from bench.run import parse_wrk  # bench.run imports this module for make bench

    script = bodies[0].parent / "pool.lua"
    quoted = ", ".join(json.dumps(path.read_text()) for path in bodies)
    script.write_text(
        f"local bodies = {{{quoted}}}\nlocal i = 0\n"
        "request = function()\n  i = i % #bodies + 1\n"
        '  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[i])\nend\n'
    )
    out = subprocess.run(
        ["wrk", f"-t{min(clients, 2)}", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "60s",
         "--latency", "-s", str(script), url],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    ).stdout  # fmt: skip
    return parse_wrk(out)


def tokenize_share(log: str, since: int) -> float | None:
    """Median share of the template's time in a request spent tokenizing, from the ``score`` lines after ``since``
    characters of the log."""
    shares = []
    for line in log[since:].splitlines():
        if "score {" not in line:
            continue
        record = json.loads(line.split("score ", 1)[1])
        if "tokenize_ms" not in record or record.get("status") != 200:
            continue
        total = sum(record.get(key, 0.0) for key in ("parse_ms", "tokenize_ms", "model_ms", "render_ms"))
        if total > 0:
            shares.append(record["tokenize_ms"] / total)
    return round(statistics.median(shares), 3) if shares else None


def benchmark(root: Path, seconds: float, quick: bool = False) -> list[TextRun]:
    """Every load on every server (``quick``: the sample style skipped, it is slow to start and to answer)."""
    from bench.run import cpu_seconds, run_python  # bench.run imports this module for make bench

    model_dirs = prepare(root / "models")
    pools = write_bodies(root / "bodies")
    use_wrk = shutil.which("wrk") is not None
    runs: list[TextRun] = []
    with contextlib.ExitStack() as stack:
        servers = {
            name: stack.enter_context(
                InferenceServer(model_dirs[variant], workers=WORKERS, entry_script=script, env=env)
            )
            for name, (script, env, variant) in SERVERS.items()
            if not (quick and name == "text-sample")
        }
        for load, per_request in LOADS:
            for name, server in servers.items():
                if name == "text-template-max-length" and per_request == 1:
                    continue  # one text per request: both paddings give the same shape
                if name == "text-sample" and "short" in load:
                    continue  # the padding comparison is the template's
                pids = server.worker_pids()
                mark = len(server.log())
                before = cpu_seconds(pids)
                if use_wrk:
                    rate, p50, p99, errors = run_wrk_pool(server.url + "/score", pools[load], CLIENTS, seconds)
                else:
                    rate, p50, p99, errors = run_python(server.url + "/score", pools[load][0], "application/json",
                                                        CLIENTS, seconds)  # fmt: skip
                after = cpu_seconds(pids)
                texts = rate * seconds * per_request
                cpu = None if before is None or after is None or not texts else round((after - before) / texts * 1e3, 3)
                share = tokenize_share(server.log(), mark) if name != "text-sample" else None
                run = TextRun(name, load, per_request, round(rate, 1), round(rate * per_request, 1), round(p50, 2),
                              round(p99, 2), errors, cpu, share)  # fmt: skip
                runs.append(run)
                print(
                    f"  {name:25} {load:9} {run.texts_per_s:9.1f} texts/s  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  "
                    f"CPU {cpu if cpu is not None else '-'} ms/text  tokenize {share if share is not None else '-'}"
                    f"  errors {errors}",
                    flush=True,
                )
    return runs


def ratio(runs: list[TextRun], server: str, baseline: str, load: str) -> float | None:
    rates = {run.server: run.texts_per_s for run in runs if run.load == load}
    return round(rates[server] / rates[baseline], 2) if rates.get(server) and rates.get(baseline) else None


def markdown(runs: list[TextRun]) -> str:
    lines = [
        "## Text models",
        "",
        f"A 2-layer BERT (hidden size 32) classifier, {WORKERS} workers, {CLIENTS} clients, texts of mixed lengths "
        "(8 to 64 tokens). `text-sample`: a transformers pipeline per request; `text-template`: `score.py` (ONNX "
        "Runtime, padding each request to its longest text); `text-template-max-length`: padding every text to 64.",
        "",
        "| server | load | texts/s | p50 ms | p99 ms | worker CPU ms/text | tokenization share | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        share = "-" if run.tokenize_share is None else f"{run.tokenize_share:.0%}"
        cpu = "-" if run.worker_cpu_ms_per_text is None else f"{run.worker_cpu_ms_per_text:.3f}"
        lines.append(
            f"| {run.server} | {run.load} | {run.texts_per_s:.1f} | {run.p50_ms:.2f} | {run.p99_ms:.2f} | {cpu} | "
            f"{share} | {run.errors} |"
        )
    one = ratio(runs, "text-template", "text-sample", "1 text")
    many = ratio(runs, "text-template", "text-sample", "32 texts")
    padding = ratio(runs, "text-template", "text-template-max-length", "32 texts")
    short = ratio(runs, "text-template", "text-template-max-length", "32 short texts")
    lines += [
        "",
        f"- template / sample, 1 text per request: {one}x (target: at least 3x)",
        f"- template / sample, 32 texts per request: {many}x",
        f"- padding to the longest / padding to max_length, 32 mixed texts per request: {padding}x (the longest of 32 "
        "mixed texts is close to 64 tokens already)",
        f"- padding to the longest / padding to max_length, 32 short texts per request: {short}x",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "bench-text")
    parser.add_argument("--seconds", type=int, default=3, help="per load run")
    args = parser.parse_args(argv)
    runs = benchmark(args.out, args.seconds)
    report = markdown(runs)
    (args.out / "results.json").write_text(json.dumps([asdict(run) for run in runs], indent=2) + "\n")
    (args.out / "results.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
