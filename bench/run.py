"""``python -m bench.run`` (``make bench``): the template against the server's ceiling and the sample style.

In one run, back to back on the same machine, real ``azmlinfsrv`` servers on loopback serve:

(a) ``bench/noop_score.py``, a script that does nothing: the server's own ceiling;
(b) ``bench/sample_style_score.py``, the public samples' style: the "before" exhibit;
(c) ``score.py``, the template, as configured by default (``MODEL_RUNTIME=auto``: ONNX Runtime on the model
    folder's ONNX export);
(c') ``score.py`` with ``MODEL_RUNTIME=torch``: what a folder without an export (any torch.save file) gets.

Loads: 1 row per request at 1 and 8 clients with 1 and 2 workers; 256 rows per request as JSON and as .npy
(the .npy load also asks for a .npy answer). Then the image rows (``bench/images.py``): the shapes example against
an image script in the samples' style, JPEGs one and sixteen per request.
Every load run also reports the workers' CPU per request (their processes' user and system time over the
requests answered): what sizes an endpoint's instances, and where a gap in requests/s comes from.
Also the model's in-process forward time (the floor), cold start (launch to the first 200, and to every worker
ready), and memory per worker (RSS and PSS).
The two-worker servers run side by side (each started alone, for its cold start), so that the key comparison
(1 row, 2 workers, 8 clients) runs round-robin, in five rounds, each starting with the next server: a machine
that slows down for a while slows every server alike. Its ratios are taken within each round and the median
reported; the rounds show the noise. The one-worker servers run side by side too, each load by every server back
to back. The load generator is ``wrk`` when installed (``make bench`` installs it), else a slower threaded Python
client, said in the report.
Then the text rows (``bench/text.py``): a small transformers classifier, 1 and 32 texts per request, against a
sample-style pipeline, and padding to the longest text against padding to ``max_length`` (``--no-text`` skips them,
``--only text`` runs them alone).
Every server is stopped by its PID. Writes ``build/bench/results.json``, ``results.md`` and ``chart.png``, and
``docs/performance.md`` (the same report, with what was compared and on which machine).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from bench import collection as collection_bench
from bench import images as image_bench
from bench import text as text_bench
from harness.layout import lay_out_like_azure
from harness.server import REPO_ROOT, InferenceServer
from model_arch.digits_cnn import DigitsCNN
from model_folder.manifest import read_manifest
from model_folder.onnx_engine import OnnxEngine
from model_folder.weights import load_model
from serving.codecs import JSON, NPY, decode
from serving.collection import LINGER_S, SENDER_THREAD_NAME

SERVERS = {  # name -> (entry script, environment)
    "noop": ("bench/noop_score.py", {}),
    "sample": ("bench/sample_style_score.py", {}),
    "template": ("score.py", {}),
    "template-torch": ("score.py", {"MODEL_RUNTIME": "torch"}),
}
KEY_LOAD = ("1 row", 8)  # (payload, clients) of the comparison repeated, with 2 workers, to show the noise
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")  # the unit of /proc/<pid>/stat's CPU times


@dataclass
class Run:
    server: str
    workers: int
    payload: str
    clients: int
    rows_per_request: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    repeat: int = 0
    worker_cpu_ms: float | None = None  # CPU time of all the workers per request answered; None if one exited
    sender_cpu_ms: float | None = None  # of which the data collection's sending threads (collection.SENDER_THREAD_NAME)

    @property
    def rows_per_s(self) -> float:
        return self.requests_per_s * self.rows_per_request


@dataclass
class Results:
    generator: str
    seconds_per_run: float
    runs: list[Run] = field(default_factory=list)
    floor_ms: dict[str, float] = field(default_factory=dict)
    cold_start_s: dict[str, dict[str, float]] = field(default_factory=dict)
    memory_mib: dict[str, dict[str, float]] = field(default_factory=dict)
    images: dict = field(default_factory=dict)  # bench/images.py's rows, targets and decode share


# ---------------------------------------------------------------------------------------------- payloads


def write_payloads(folder: Path) -> dict[str, tuple[Path, str, int]]:
    """name -> (file, content type, rows): one row and 256 rows of real digits, as JSON and as .npy."""
    from training.data import digits_split

    rows = digits_split().x_test.astype(int)
    payloads = {}
    for name, count in (("1 row", 1), ("256 rows JSON", 256)):
        path = folder / f"{count}-rows.json"
        path.write_text(json.dumps({"data": rows[:count].tolist()}))
        payloads[name] = (path, JSON, count)
    buffer = io.BytesIO()
    np.save(buffer, rows[:256].astype(np.float32))
    npy = folder / "256-rows.npy"
    npy.write_bytes(buffer.getvalue())
    payloads["256 rows .npy"] = (npy, NPY, 256)
    return payloads


# ---------------------------------------------------------------------------------------------- load


def run_wrk(url: str, body: Path, content_type: str, clients: int, seconds: float) -> tuple[float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, errors) measured by wrk."""
    script = body.with_suffix(body.suffix + ".lua")
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.headers["Content-Type"] = "{content_type}"\n'
        f'wrk.headers["Accept"] = "{_accept(content_type)}"\n'
        f'local f = io.open("{body}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
    )
    threads = min(clients, 2)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    return parse_wrk(out)


def parse_wrk(out: str) -> tuple[float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, errors) from wrk's ``--latency`` report; the latencies are NaN when no request
    finished in the run."""
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, flags=re.M))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    socket_errors = re.search(r"Socket errors: connect (\d+), read \d+, write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())  # reads fail on every Connection: close; not errors
    if not latency:
        return rate, float("nan"), float("nan"), errors
    return rate, _ms(latency["50"]), _ms(latency["99"]), errors


def run_python(
    url: str, body: Path, content_type: str, clients: int, seconds: float
) -> tuple[float, float, float, int]:
    """The fallback generator: threads with urllib (much slower than wrk: the ceiling numbers show it)."""
    data = body.read_bytes()
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            headers = {"Content-Type": content_type, "Accept": _accept(content_type)}
            request = urllib.request.Request(url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    response.read()
                    ok = response.status == 200
            except (OSError, http.client.HTTPException):  # refused, reset, or cut off mid-answer
                ok = False
            with lock:
                latencies.append((time.perf_counter() - started) * 1e3)
                errors[0] += not ok

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99)), errors[0]


def _accept(content_type: str) -> str:
    """The .npy load asks for a .npy answer too: binary in, binary out, the template's fast path."""
    return NPY if content_type == NPY else JSON


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


# ---------------------------------------------------------------------------------------------- measurements


def forward_floor(model_folder: Path) -> dict[str, float]:
    """Median in-process milliseconds, one thread: the model alone (PyTorch, channels_last, and ONNX Runtime on
    the folder's export, with its softmax), and decoding 256 rows per format."""
    torch.set_num_threads(1)
    manifest = read_manifest(model_folder)
    model = load_model(manifest, model_folder / manifest.weights_file, torch.device("cpu"))
    fast = load_model(manifest, model_folder / manifest.weights_file, torch.device("cpu"))
    fast = fast.to(memory_format=torch.channels_last)
    onnx = OnnxEngine(model_folder / manifest.onnx.file, threads=1) if manifest.onnx else None
    rows = np.random.default_rng(0).integers(0, 17, (256, 64))
    body_json = json.dumps({"data": rows.tolist()}).encode()
    buffer = io.BytesIO()
    np.save(buffer, rows.astype(np.float32))
    floor = {}
    with torch.inference_mode():
        for count in (1, 256):
            x = torch.from_numpy(manifest.input.preprocess(rows[:count]))
            floor[f"forward {count} rows"] = _median_ms(lambda x=x: model(x))
            x_cl = x.contiguous(memory_format=torch.channels_last)
            floor[f"forward {count} rows, channels_last"] = _median_ms(lambda x=x_cl: fast(x))
            if onnx is not None:
                batch = x.numpy()
                floor[f"forward {count} rows, onnxruntime"] = _median_ms(lambda x=batch: onnx(x))
    floor["decode 256 rows JSON"] = _median_ms(lambda: decode(body_json, JSON, manifest.input, 1024))
    floor["decode 256 rows .npy"] = _median_ms(lambda: decode(buffer.getvalue(), NPY, manifest.input, 1024))
    return floor


def _median_ms(action, repeats: int = 200) -> float:
    action()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return round(float(np.median(times)) * 1e3, 4)


def cpu_seconds(pids: list[int], thread: str | None = None) -> float | None:
    """User plus system CPU time of the processes, all their threads (or only those the OS names ``thread``, from
    their nanosecond ``schedstat``); None if one has exited."""
    seconds = 0.0
    for pid in pids:
        try:
            if thread is None:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                seconds += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (proc(5): 14 and 15)
                continue
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
                    if (task / "comm").read_text().strip() == thread:
                        seconds += int((task / "schedstat").read_text().split()[0]) / 1e9  # its time on a CPU
        except FileNotFoundError:
            return None
    return seconds


def worker_memory_mib(server: InferenceServer) -> dict[str, float]:
    """Mean RSS and PSS of the worker processes, and the master's RSS, in MiB."""
    master = server.process.pid
    workers = server.worker_pids()

    def rollup(pid: int, key: str) -> float:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        return int(re.search(rf"^{key}:\s+(\d+) kB", text, flags=re.M).group(1)) / 1024

    return {
        "worker RSS": round(float(np.mean([rollup(pid, "Rss") for pid in workers])), 1),
        "worker PSS": round(float(np.mean([rollup(pid, "Pss") for pid in workers])), 1),
        "master RSS": round(rollup(master, "Rss"), 1),
    }


# ---------------------------------------------------------------------------------------------- the run


def prepare_model_dirs(model_folder: Path, root: Path) -> dict[str, Path]:
    """AZUREML_MODEL_DIR for each server: the template's model folder; the sample's whole pickled model."""
    template = lay_out_like_azure(model_folder, root / "template")
    manifest = read_manifest(model_folder)
    model = load_model(manifest, model_folder / manifest.weights_file, torch.device("cpu"))
    assert isinstance(model, DigitsCNN)
    sample = root / "sample" / "digits-cnn" / "1"
    sample.mkdir(parents=True, exist_ok=True)
    torch.save(model, sample / "model.pt")  # the samples' torch.save(model): what the template refuses by default
    noop = root / "noop" / "digits-cnn" / "1"
    noop.mkdir(parents=True, exist_ok=True)
    return {"noop": noop, "sample": sample, "template": template, "template-torch": template}


def load_generator() -> tuple[Callable, str]:
    """wrk when installed, else the threaded Python client; and its name for the report."""
    if shutil.which("wrk"):
        return run_wrk, "wrk"
    return run_python, "python threads (wrk not installed)"


def benchmark(model_folder: Path, out: Path, seconds: float, repeats: int, quick: bool, only: str = "all") -> Results:
    generator, generator_name = load_generator()
    results = Results(generator_name, seconds)
    out.mkdir(parents=True, exist_ok=True)
    payloads = write_payloads(out)
    model_dirs = prepare_model_dirs(model_folder, out / "models")
    print(f"load generator: {results.generator}; {seconds:g} s per run", flush=True)

    def measure(server: InferenceServer, name: str, workers: int, payload: str, clients: int, repeat: int = 0):
        body, content_type, rows = payloads[payload]
        pids = server.worker_pids()
        cpu_before, sender_before = cpu_seconds(pids), cpu_seconds(pids, SENDER_THREAD_NAME)
        rate, p50, p99, errors = generator(server.url + "/score", body, content_type, clients, seconds)
        if sender_before:  # collection on: its last batch is built and sent up to LINGER_S after the last request
            time.sleep(2 * LINGER_S)
        cpu_after, sender_after = cpu_seconds(pids), cpu_seconds(pids, SENDER_THREAD_NAME)
        answered = rate * seconds
        cpu_ms = sender_ms = None
        if cpu_before is not None and cpu_after is not None and answered:  # None: a worker exited (replaced)
            cpu_ms = round((cpu_after - cpu_before) / answered * 1e3, 3)
            if sender_after:  # collection on: the sending threads' part of it
                sender_ms = round((sender_after - sender_before) / answered * 1e3, 3)
        timing = (round(rate, 1), round(p50, 2), round(p99, 2))
        results.runs.append(Run(name, workers, payload, clients, rows, *timing, errors, repeat, cpu_ms, sender_ms))
        print(f"  {name:14} {workers}w {payload:14} c{clients:<2} {rate:8.1f} req/s", end="")
        cpu_text = "-" if cpu_ms is None else f"{cpu_ms:.3f}"
        print(f"  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  errors {errors}  worker CPU {cpu_text} ms/req", flush=True)

    if only == "collection":  # make bench ONLY=collection: the data collection rows alone (bench/collection.py)
        collection_bench.benchmark(model_dirs["template"], repeats, measure)
        return results
    results.floor_ms = forward_floor(model_folder)
    # Two workers: every server up at once (idle ones cost nothing), each started alone for its cold start. The
    # key comparison then runs round-robin, so a machine that slows down for a while slows every server alike.
    with contextlib.ExitStack() as stack:
        servers = {}
        for name, (entry_script, env) in SERVERS.items():
            server = InferenceServer(model_dirs[name], workers=2, entry_script=entry_script, env=env)
            servers[name] = stack.enter_context(server)
            results.cold_start_s[name] = {
                "first 200": round(server.first_answer_s, 2),
                "all workers ready": round(server.all_ready_s, 2),
            }
        names = list(servers)
        for repeat in range(repeats):
            turn = repeat % len(names)  # each round starts with the next server: no server always runs first
            for name in names[turn:] + names[:turn]:
                measure(servers[name], name, 2, *KEY_LOAD, repeat)
        for name, server in servers.items():
            loads = [("1 row", 1)] if not quick else []
            loads += [("256 rows JSON", 8)] + ([("256 rows .npy", 8)] if name != "sample" else [])  # sample: JSON
            for payload, clients in loads:
                measure(server, name, 2, payload, clients)
            results.memory_mib[name] = worker_memory_mib(server)

    if not quick:  # one worker: side by side too, each load run by every server back to back
        with contextlib.ExitStack() as stack:
            singles = {
                name: stack.enter_context(InferenceServer(model_dirs[name], workers=1, entry_script=script, env=env))
                for name, (script, env) in SERVERS.items()
                if name != "template-torch"
            }
            for clients in (1, 8):
                for name, server in singles.items():
                    measure(server, name, 1, "1 row", clients)
    if not quick:  # data collection on against off (bench/collection.py)
        collection_bench.benchmark(model_dirs["template"], repeats, measure)
    return results


# ---------------------------------------------------------------------------------------------- report


Scenario = tuple[int, str, int]  # (workers, payload, clients)
KEY_SCENARIO: Scenario = (2, *KEY_LOAD)


def median_rate(results: Results, server: str, scenario: Scenario, rows: bool = False) -> float | None:
    """``server``'s requests/s (``rows``: rows/s) in ``scenario``, the median over its runs; None when it did not
    run."""
    rates = [r.rows_per_s if rows else r.requests_per_s for r in _runs(results, server, scenario)]
    return float(np.median(rates)) if rates else None


def median_cpu_ms(results: Results, server: str, scenario: Scenario) -> float | None:
    """``server``'s worker CPU per request in ``scenario``, the median over its runs; None when none has one."""
    values = [r.worker_cpu_ms for r in _runs(results, server, scenario) if r.worker_cpu_ms is not None]
    return float(np.median(values)) if values else None


def _runs(results: Results, server: str, scenario: Scenario) -> list[Run]:
    return [r for r in results.runs if (r.server, r.workers, r.payload, r.clients) == (server, *scenario)]


def ratio(results: Results, server: str, baseline: str, scenario: Scenario, baseline_scenario: Scenario | None = None):
    """``server`` in ``scenario`` over ``baseline`` in ``baseline_scenario`` (the same by default): for the key
    load, the median of its per-round ratios (``paired_ratios``); else the ratio of the median rates. None when
    either did not run."""
    baseline_scenario = baseline_scenario or scenario
    paired = paired_ratios(results, server, baseline) if scenario == baseline_scenario == KEY_SCENARIO else []
    if paired:
        return float(np.median(paired))
    value, base = median_rate(results, server, scenario), median_rate(results, baseline, baseline_scenario)
    return value / base if value and base else None


def ratios(results: Results) -> list[dict]:
    """Per scenario: the template against the ceiling (a) and the sample style (b) (``ratio``)."""

    def rounded(value: float | None, digits: int) -> float | None:
        return None if value is None else round(value, digits)

    rows = []
    scenarios = sorted({(r.workers, r.payload, r.clients) for r in results.runs if r.server == "template"})
    for scenario in scenarios:
        workers, payload, clients = scenario
        rows.append(
            {
                "scenario": f"{payload}, {workers} workers, {clients} clients",
                "template req/s": median_rate(results, "template", scenario),
                "vs ceiling (a)": rounded(ratio(results, "template", "noop", scenario), 2),
                "vs sample (b)": rounded(ratio(results, "template", "sample", scenario), 1),
                "torch runtime req/s": median_rate(results, "template-torch", scenario),
                "torch runtime vs ceiling (a)": rounded(ratio(results, "template-torch", "noop", scenario), 2),
            }
        )
    return rows


def paired_ratios(results: Results, server: str, baseline: str) -> list[float]:
    """``server`` over ``baseline`` in the key comparison, one ratio per round: each round runs every server back
    to back, so a ratio within a round shares the machine's state at that moment, which runs across rounds do
    not."""
    key = [r for r in results.runs if (r.workers, r.payload, r.clients) == KEY_SCENARIO]
    by_round = {(r.server, r.repeat): r.requests_per_s for r in key}
    rounds = sorted({r.repeat for r in key})
    return [
        round(by_round[(server, n)] / by_round[(baseline, n)], 3)
        for n in rounds
        if by_round.get((baseline, n)) and (server, n) in by_round
    ]


def targets(results: Results) -> list[str]:
    """The goals the template is held to, each met or not in this run. The 1-row ratio to the do-nothing ceiling
    is reported (``ratios``), not a goal: it moves with the machine more than with the code."""
    cold = results.cold_start_s
    checks = [
        ("1 row, 2 workers, 8 clients: {} >= 15x sample", "1 row", "sample", "1 row", 15),
        ("256 rows: {} JSON >= 4x sample rows/s", "256 rows JSON", "sample", "256 rows JSON", 4),
        ("256 rows: {} .npy >= 1.3x its own JSON", "256 rows .npy", None, "256 rows JSON", 1.3),
    ]
    lines = []
    for text, payload, baseline, baseline_payload, goal in checks:
        for server in ("template", "template-torch"):
            measured = ratio(results, server, baseline or server, (2, payload, 8), (2, baseline_payload, 8))
            if measured is None and server == "template-torch":
                continue  # a run without the torch-runtime variant
            value = float("nan") if measured is None else measured
            verdict = "met" if value >= goal else "NOT met"
            lines.append(f"{verdict}: {text.format(server)} (measured {value:.2f}x)")
    for server in ("template", "template-torch"):
        if server in cold and "noop" in cold:
            factor = cold[server]["all workers ready"] / cold["noop"]["all workers ready"]
            verdict = "met" if factor <= 3 else "NOT met"
            lines.append(
                f"{verdict}: {server} cold start to all workers ready <= 3x the do-nothing server's "
                f"(measured {factor:.2f}x)"
            )
    return lines


def markdown(results: Results) -> str:
    """The report: ratios first, then the figures they come from, then every run."""
    lines = [f"Load generator: {results.generator}; {results.seconds_per_run:g} s per run; loopback."]
    if results.images:
        lines += image_bench.markdown(results.images)
    if not results.runs:
        return "\n".join(lines) + "\n"
    columns = list(ratios(results)[0])
    lines += [""]
    lines += ["## Ratios", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row[c]) for c in columns) + " |" for row in ratios(results)]
    lines += ["", "## Targets", "", "The key load's ratios are the median of the per-round ratios.", ""]
    lines += [f"- {x}" for x in targets(results)]
    lines += ["", "## Key comparison (1 row, 2 workers, 8 clients), round by round", ""]
    for server, baseline in (("template", "noop"), ("template-torch", "noop"), ("template", "sample")):
        paired = paired_ratios(results, server, baseline)
        if paired:
            values = ", ".join(f"{v:.2f}" for v in paired)
            lines.append(f"- {server} / {baseline}: {values} (median {float(np.median(paired)):.2f})")
    cpu = {server: median_cpu_ms(results, server, KEY_SCENARIO) for server in SERVERS}
    if all(cpu.values()):
        lines.append(
            "- worker CPU per request, ms (median): "
            + ", ".join(f"{server} {value:.3f}" for server, value in cpu.items())
            + f"; the template spends {cpu['template'] - cpu['noop']:.3f} ms more than the do-nothing script"
        )
    lines += ["", *collection_bench.section(results.runs)]
    lines += ["## In process, cold start, memory", ""]
    lines += ["- Forward pass and decoding in process (median ms, one thread): "]
    lines[-1] += ", ".join(f"{k} {v}" for k, v in results.floor_ms.items())
    lines += ["- Cold start (s, 2 workers): " + "; ".join(f"{k}: {v}" for k, v in results.cold_start_s.items())]
    lines += ["- Memory per worker (MiB): " + "; ".join(f"{k}: {v}" for k, v in results.memory_mib.items())]
    lines += [
        "",
        "## Every run",
        "",
        "| server | workers | load | clients | req/s | rows/s | p50 ms | p99 ms | errors | worker CPU ms/req |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results.runs:
        label = f"{r.payload}" + (f" (repeat {r.repeat})" if r.repeat else "")
        cells = [
            r.server,
            r.workers,
            label,
            r.clients,
            f"{r.requests_per_s:.0f}",
            f"{r.rows_per_s:.0f}",
            r.p50_ms,
            r.p99_ms,
            r.errors,
            "-" if r.worker_cpu_ms is None else r.worker_cpu_ms,
        ]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines) + "\n"


PAGE_INTRO = """# Performance

Written by `make bench` (`bench/run.py`) from its own results, {date}; not edited by hand: run `make bench` again
to renew it. {machine}

What is compared, each a real `azmlinfsrv` on loopback serving the demo digits CNN:

- (a) `noop`: `bench/noop_score.py`, a script that does nothing: the server's own ceiling;
- (b) `sample`: `bench/sample_style_score.py`, the public samples' style (whole pickled model, `json.loads` into
  `torch.tensor`, torch's default threads): the "before" exhibit, not to be copied;
- (c) `template`: `score.py` as it ships (`MODEL_RUNTIME=auto`: ONNX Runtime on the folder's ONNX export);
- (c') `template-torch`: `score.py` with `MODEL_RUNTIME=torch`, what a folder without an export gets.

The two-worker servers run side by side, and the key load (1 row, 2 workers, 8 clients) runs in rounds, every
server once per round; its ratios are taken within each round, so a machine that slows down for a while slows both
sides of a ratio alike. Compare ratios within one run, never figures across runs: on a shared virtual machine the
same code has given a 1-row ratio to the ceiling anywhere from about 0.6 to 0.85.

"""


def performance_page(results: Results, machine: str, date: str) -> str:
    """``docs/performance.md``: what was compared and how, then this run's report."""
    return PAGE_INTRO.format(date=date, machine=machine) + markdown(results)


def machine_description() -> str:
    """One sentence: cores, processor, and the versions that matter for the figures."""
    import platform

    model = next(
        (line.split(":", 1)[1].strip() for line in _read_lines("/proc/cpuinfo") if line.startswith("model name")),
        platform.processor() or "unknown processor",
    )
    versions = []
    for package in ("torch", "onnxruntime", "numpy"):
        with contextlib.suppress(Exception):
            versions.append(f"{package} {__import__(package).__version__}")
    return (
        f"Machine: {len(os.sched_getaffinity(0))} cores ({model}), Python {platform.python_version()}, "
        + ", ".join(versions)
        + "."
    )


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def _cell(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if isinstance(value, float) and value >= 100 else str(value)


def chart(results: Results, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    scenarios = sorted({(r.workers, r.payload, r.clients) for r in results.runs}, key=lambda s: (s[1], s[0], s[2]))
    labels = [f"{p}\n{w}w c{c}" for w, p, c in scenarios]
    fig, ax = plt.subplots(figsize=(max(8, len(scenarios) * 1.4), 4.5))
    width = 0.8 / len(SERVERS)
    for i, server in enumerate(SERVERS):
        values = [median_rate(results, server, scenario, rows=True) or 0.0 for scenario in scenarios]
        ax.bar(np.arange(len(scenarios)) + (i - (len(SERVERS) - 1) / 2) * width, values, width, label=server)
    ax.set_xticks(np.arange(len(scenarios)), labels, fontsize=8)
    ax.set_ylabel("rows/s (log)")
    ax.set_yscale("log")
    ax.set_title(f"make bench: rows/s per scenario ({results.generator})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "build" / "model")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "bench")
    parser.add_argument("--seconds", type=int, default=3, help="per load run (whole seconds, as wrk takes them)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of the key comparison")
    parser.add_argument("--quick", action="store_true", help="a tiny version: 2 workers only, fewer loads")
    parser.add_argument("--no-text", action="store_true", help="skip the text rows (bench/text.py)")
    parser.add_argument(
        "--docs", type=Path, default=REPO_ROOT / "docs" / "performance.md", help="the page to write ('' for none)"
    )
    parser.add_argument(
        "--only",
        choices=["images", "text", "collection"],
        help="run only these rows (images, text: docs/performance.md left alone; collection: its section renewed)",
    )
    args = parser.parse_args(argv)

    if args.only == "collection":  # its section alone, spliced into the page the last full run wrote
        results = benchmark(args.model, args.out, args.seconds, args.repeats, args.quick, "collection")
        section = collection_bench.section(results.runs)
        (args.out / "collection.md").write_text("\n".join(section))
        if str(args.docs) not in ("", ".") and args.docs.exists():
            args.docs.write_text(collection_bench.splice(args.docs.read_text(), section))
        print("\n".join(section))
        return 0
    if args.only:
        results, args.docs = Results(load_generator()[1], args.seconds), Path("")
    else:
        results = benchmark(args.model, args.out, args.seconds, args.repeats, args.quick)
    if not args.quick and args.only in (None, "images"):
        results.images = image_bench.benchmark(args.out / "images", args.seconds, load_generator()[0], cpu_seconds)
    report = markdown(results)
    text_runs = []
    if not args.no_text and args.only in (None, "text"):  # bench/text.py: a transformers classifier vs a pipeline
        text_runs = text_bench.benchmark(args.out / "text", args.seconds, quick=args.quick)
        report += "\n" + text_bench.markdown(text_runs)
    document = {**asdict(results), "ratios": ratios(results), "text": [asdict(run) for run in text_runs]}
    (args.out / "results.json").write_text(json.dumps(document, indent=2) + "\n")
    (args.out / "results.md").write_text(report)
    has_chart = chart(results, args.out / "chart.png")
    written = [args.out / "results.json", args.out / "results.md"] + ([args.out / "chart.png"] if has_chart else [])
    if str(args.docs) not in ("", "."):
        today = time.strftime("%Y-%m-%d")
        page = args.docs.read_text() if args.docs.is_file() else ""
        batch = page[page.index("\n## Batch scoring\n") :] if "\n## Batch scoring\n" in page else ""  # bench/batch.py's
        text_section = "\n" + text_bench.markdown(text_runs) if text_runs else ""
        args.docs.write_text(performance_page(results, machine_description(), today) + text_section + batch)
        written.append(args.docs)
    print(report)
    print("wrote " + ", ".join(map(str, written)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
