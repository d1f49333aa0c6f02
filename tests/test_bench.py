"""A tiny run of ``make bench``: the three servers start, every load runs without errors, the report is written.
The numbers themselves are the benchmark's to print (and to write into docs/performance.md), not a test's to
assert."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import run as bench
from serving.codecs import JSON

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_a_quick_benchmark_runs_every_server_and_writes_its_report(trained_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"

    options = ["--quick", "--seconds", "1", "--repeats", "2", "--docs", str(tmp_path / "performance.md"), "--no-text"]
    code = bench.main(["--model", str(trained_folder), "--out", str(out), *options])

    results = json.loads((out / "results.json").read_text())
    assert code == 0
    assert {run["server"] for run in results["runs"]} == {"noop", "sample", "template", "template-torch"}
    assert all(run["errors"] == 0 and run["requests_per_s"] > 0 for run in results["runs"])
    assert all(run["worker_cpu_ms"] > 0 for run in results["runs"])
    template_loads = {run["payload"] for run in results["runs"] if run["server"] == "template"}
    assert template_loads == {"1 row", "256 rows JSON", "256 rows .npy"}
    assert {row["scenario"] for row in results["ratios"]} >= {"1 row, 2 workers, 8 clients"}
    assert set(results["cold_start_s"]) == set(results["memory_mib"]) == set(bench.SERVERS)
    assert results["floor_ms"]["forward 256 rows"] > results["floor_ms"]["forward 1 rows"] > 0
    assert results["floor_ms"]["forward 256 rows, onnxruntime"] > results["floor_ms"]["forward 1 rows, onnxruntime"]
    key = [run for run in results["runs"] if (run["payload"], run["clients"]) == bench.KEY_LOAD]
    first_round = ["noop", "sample", "template", "template-torch"]
    second_round = ["sample", "template", "template-torch", "noop"]  # each round starts with the next server
    assert [run["server"] for run in key] == first_round + second_round
    report = (out / "results.md").read_text()
    assert "Targets" in report and "vs ceiling (a)" in report and "torch runtime vs ceiling (a)" in report
    page = (tmp_path / "performance.md").read_text()
    assert page.startswith("# Performance\n\nWritten by `make bench`") and "Machine: " in page
    assert page.endswith(report)  # the page is the report, after what was compared and how
    saved = bench.Results(**results_without_ratios(results))
    assert len(bench.paired_ratios(saved, "template", "noop")) == 2
    assert "- template / noop: " in report
    # The sample style spends tens of milliseconds of CPU on a row; the do-nothing script, well under one.
    assert bench.median_cpu_ms(saved, "sample", bench.KEY_SCENARIO) > 5 * bench.median_cpu_ms(
        saved, "noop", bench.KEY_SCENARIO
    )
    assert "- worker CPU per request, ms (median): noop " in report
    assert (out / "chart.png").stat().st_size > 10_000


def results_without_ratios(saved: dict) -> dict:
    """results.json's fields that ``bench.Results`` holds (not the ratios and text rows the report adds)."""
    fields = {k: v for k, v in saved.items() if k in bench.Results.__dataclass_fields__}
    return {**fields, "runs": [bench.Run(**run) for run in saved["runs"]]}


def test_key_ratios_pair_the_servers_within_each_round() -> None:
    def run(server: str, rate: float, repeat: int) -> bench.Run:
        return bench.Run(server, 2, "1 row", 8, 1, rate, 1.0, 2.0, 0, repeat)

    results = bench.Results("wrk", 1.0)
    # The machine runs at full speed in round 0 and at half speed in round 1; each round's ratio is 0.8.
    results.runs = [run("noop", 3000, 0), run("template", 2400, 0), run("noop", 1500, 1), run("template", 1200, 1)]
    results.runs.append(bench.Run("template", 2, "1 row", 1, 1, 999, 1.0, 2.0, 0, 0))  # another load: not paired

    assert bench.paired_ratios(results, "template", "noop") == [0.8, 0.8]
    assert bench.paired_ratios(results, "template-torch", "noop") == []
    key_row = next(row for row in bench.ratios(results) if row["scenario"] == "1 row, 2 workers, 8 clients")
    assert key_row["vs ceiling (a)"] == 0.8  # reported, and not a target (it moves with the machine)
    assert not any("ceiling" in target for target in bench.targets(results))


def test_the_fallback_load_generator_measures_a_real_server(served, tmp_path: Path) -> None:
    body = tmp_path / "one-row.json"
    body.write_text(json.dumps({"data": [[0] * 64]}))

    rate, p50, p99, errors = bench.run_python(served.url + "/score", body, JSON, clients=2, seconds=1)

    assert rate > 10 and errors == 0
    assert 0 < p50 <= p99


def test_the_image_rows_run_both_servers_on_every_load_and_report_their_targets(tmp_path: Path) -> None:
    out = tmp_path / "bench"

    code = bench.main(["--only", "images", "--seconds", "1", "--out", str(out)])

    images = json.loads((out / "results.json").read_text())["images"]
    assert code == 0
    assert {(run["server"], run["load"]) for run in images["runs"]} == {
        (server, load)
        for server in ("sample", "template")
        for load in ("1 JPEG", "16 JPEGs multipart", "1 photo 1600×1200")
    }
    assert all(run["errors"] == 0 and run["images/s"] > 0 and run["worker CPU ms/image"] > 0 for run in images["runs"])
    assert 0 < images["decode_ms_per_image"]["1 JPEG"] < images["decode_ms_per_image"]["1 photo 1600×1200"]
    assert len(images["targets"]) == 2 and all(" x" not in t for t in images["targets"])
    report = (out / "results.md").read_text()
    assert "## Images (the shapes example" in report and "template >= 3x sample images/s" in report
