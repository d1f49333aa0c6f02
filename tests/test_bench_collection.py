"""bench/collection.py without servers: the per-round ratios, the targets' verdicts, and the section spliced into
docs/performance.md in place of the last one."""

from __future__ import annotations

from bench import collection as collection_bench
from bench.run import Run


def run(server: str, repeat: int, rate: float, cpu: float, sending: float | None = None) -> Run:
    return Run(server, 2, "1 row", 8, 1, rate, 1.0, 2.0, 0, repeat, cpu, sending)


RUNS = [  # round 0 on a fast machine, round 1 at half speed: the ratios within each round agree
    run("collect-off", 0, 1000, 1.0),
    run("collect-100", 0, 800, 1.2, 0.12),
    run("collect-10", 0, 990, 1.02),
    run("collect-stalled", 0, 950, 1.0),
    run("collect-off-2", 0, 1010, 0.97),
    run("collect-off", 1, 500, 2.0),
    run("collect-100", 1, 400, 2.6, 0.26),
    run("collect-10", 1, 495, 2.04),
    run("collect-stalled", 1, 475, 2.0),
    run("collect-off-2", 1, 480, 2.1),
    run("template", 0, 2000, 0.7),  # another benchmark's run: not counted
]


def test_ratios_are_paired_within_each_round() -> None:
    assert collection_bench.paired(RUNS, "collect-100", "cpu") == [1.2, 1.3]
    assert collection_bench.paired(RUNS, "collect-stalled", "rate") == [0.95, 0.95]


def test_the_section_gives_each_target_its_verdict_and_every_round() -> None:
    lines = collection_bench.section(RUNS)

    assert lines[0] == "## Data collection"
    assert any(line.startswith("- met: worker CPU per request, collecting every request: 1.250x") for line in lines)
    assert any(line.startswith("- met: worker CPU per request, collecting 10%: 1.020x") for line in lines)
    assert any(line.startswith("- met: requests/s with the receiver stalled: 0.950x") for line in lines)
    assert any(
        line.startswith("- control, a second server with collection off: worker CPU per request 1.010x")
        for line in lines
    )
    assert (
        "- the sending thread, collecting every request: 0.190 ms per request, 10.0% of its server's worker CPU"
        in lines
    )
    assert not any(line.startswith("- the sending thread, collecting 10%") for line in lines)  # no figure: no line
    assert sum(line.startswith("| collect-") for line in lines) == 10
    assert collection_bench.section([RUNS[-1]]) == []


def test_splice_replaces_the_section_or_adds_it_before_every_run() -> None:
    page = "# Performance\n\n## Targets\n\n- x\n\n## Every run\n\n| a |\n"
    first = collection_bench.splice(page, ["## Data collection", "", "- old", ""])
    second = collection_bench.splice(first, ["## Data collection", "", "- new", ""])

    assert first == "# Performance\n\n## Targets\n\n- x\n\n## Data collection\n\n- old\n\n## Every run\n\n| a |\n"
    assert second == first.replace("- old", "- new")
