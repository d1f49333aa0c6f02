"""The cost of model data collection, for ``make bench`` (``bench/run.py``; alone: ``make bench ONLY=collection``).

Five two-worker ``score.py`` servers run side by side, those collecting with a receiver standing in for the
instance's agent (``harness.collector_receiver``):

* ``collect-off``: collection off (no ``AZUREML_MDC_*``): the baseline;
* ``collect-off-2``: collection off too, the control: how far apart two identical servers measure on this machine,
  the margin any of the ratios below carries;
* ``collect-100``: every request collected, the receiver answering;
* ``collect-10``: a 10% sampling rate (``AZUREML_MDC_SAMPLE_RATE=10``, what ``data_collector.sampling_rate: 0.1`` is);
* ``collect-stalled``: every request collected, the receiver accepting and never answering.

The key load (1 row, 8 clients) runs in rounds (``ROUNDS`` at least), every server once per round, each round
starting with the next server, and the next run waiting until the receiver has read the last posts (``settle``);
the ratios are taken within each round and their median reported: worker CPU per request with collection at 100%
and at 10% over off (targets: at most 1.25 and 1.05), requests/s with the receiver stalled over off (target: at
least 0.9), and the control's worker CPU per request over off (no target: it would be 1.0 on a quiet machine).
The sending thread's own CPU (``serving.collection.SENDER_THREAD_NAME``, read per thread from ``/proc``) is
reported too: it is what collection adds by itself, and it does not move with the machine as the ratios do.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from harness.collector_receiver import CollectorReceiver
from harness.server import InferenceServer

OFF, ALL, TENTH, STALLED, CONTROL = "collect-off", "collect-100", "collect-10", "collect-stalled", "collect-off-2"
SERVERS = (OFF, ALL, TENTH, STALLED, CONTROL)
TARGETS = (  # (text, server, measure, goal, compare): the ratio server/off of measure, met when compare(ratio, goal)
    ("worker CPU per request, collecting every request: {:.3f}x off (target <= 1.25x)", ALL, "cpu", 1.25, "<="),
    ("worker CPU per request, collecting 10%: {:.3f}x off (target <= 1.05x)", TENTH, "cpu", 1.05, "<="),
    ("requests/s with the receiver stalled: {:.3f}x off (target >= 0.90x)", STALLED, "rate", 0.90, ">="),
)
CONTROL_TEXT = "control, a second server with collection off: worker CPU per request {:.3f}x off (ideally 1.000x)"
SENDER_TEXT = "the sending thread, {}: {:.3f} ms per request, {:.1%} of its server's worker CPU"
SENDERS = ((ALL, "collecting every request"), (TENTH, "collecting 10%"))  # its own CPU: far less noisy than ratios
ROUNDS = 9  # at least: one round's ratio swings by 20% either way on a shared 2-core machine; a median of 9 less
CONDITIONS: list[str] = []  # when, and how busy the machine was, for the report


def benchmark(model_dir: Path, repeats: int, measure: Callable[..., None]) -> None:
    """Start the five servers and their receivers, and run the key load on each, round-robin, ``repeats`` rounds
    (``ROUNDS`` at least).

    ``measure(server, name, workers, payload, clients, repeat)`` is ``bench.run``'s: it runs one load and records
    it in the results."""
    CONDITIONS[:] = [time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), f"{os.getloadavg()[0]:.1f}"]
    with contextlib.ExitStack() as stack:
        live = stack.enter_context(CollectorReceiver(keep=False))
        stalled = stack.enter_context(CollectorReceiver(stall=True))
        environments = {
            OFF: {},
            ALL: live.env(),
            TENTH: live.env(AZUREML_MDC_SAMPLE_RATE="10"),
            STALLED: stalled.env(),
            CONTROL: {},
        }
        servers = {
            name: stack.enter_context(InferenceServer(model_dir, workers=2, env=env))
            for name, env in environments.items()
        }
        for repeat in range(max(repeats, ROUNDS)):
            turn = repeat % len(SERVERS)
            for name in SERVERS[turn:] + SERVERS[:turn]:
                measure(servers[name], name, 2, "1 row", 8, repeat)
                settle(live)
        print(f"  receiver: {live.posts} records received; stalled receiver: {stalled.posts} posts held", flush=True)
    CONDITIONS.append(f"{os.getloadavg()[0]:.1f}")


def settle(receiver: CollectorReceiver, quiet_s: float = 0.5, longest_s: float = 10.0) -> None:
    """Wait until the receiver has had no post for ``quiet_s`` (the last run's workers have sent their last batch
    and it has read them all), then as long again. Without it the server after ``collect-100`` in a round ran while
    the receiver, in this process, was still reading the posts of the run before: a second collection-off server
    in ``collect-10``'s place measured 1.06x the first."""
    deadline = time.monotonic() + longest_s
    seen = -1
    while receiver.posts != seen and time.monotonic() < deadline:
        seen = receiver.posts
        time.sleep(quiet_s)
    time.sleep(quiet_s)


def paired(runs: list, server: str, measure: str) -> list[float]:
    """``server`` over ``collect-off`` per round: worker CPU per request (``cpu``) or requests/s (``rate``)."""
    value = {
        (r.server, r.repeat): (r.worker_cpu_ms if measure == "cpu" else r.requests_per_s)
        for r in runs
        if r.server in SERVERS and (r.payload, r.clients) == ("1 row", 8)
    }
    rounds = sorted({repeat for _, repeat in value})
    return [
        round(value[(server, n)] / value[(OFF, n)], 3)
        for n in rounds
        if value.get((OFF, n)) and value.get((server, n)) is not None
    ]


def section(runs: list) -> list[str]:
    """The report's "Data collection" lines: the targets met or not, then every round's ratios and figures."""
    if not any(r.server in SERVERS for r in runs):
        return []
    lines = ["## Data collection", "", "Ratios within each round, median over the rounds (`bench/collection.py`)."]
    if len(CONDITIONS) == 3:
        when, before, after = CONDITIONS
        lines[-1] += f" Run {when}; the machine's 1-minute load average was {before} before and {after} after."
    lines.append("")
    for text, server, measure, goal, compare in TARGETS:
        ratios = paired(runs, server, measure)
        if not ratios:
            continue
        value = float(np.median(ratios))
        met = value <= goal if compare == "<=" else value >= goal
        lines.append(f"- {'met' if met else 'NOT met'}: {text.format(value)}; rounds: {', '.join(map(str, ratios))}")
    control = paired(runs, CONTROL, "cpu")
    if control:
        lines.append(f"- {CONTROL_TEXT.format(float(np.median(control)))}; rounds: {', '.join(map(str, control))}")
    for server, text in SENDERS:
        own = [(r.sender_cpu_ms, r.worker_cpu_ms) for r in runs if r.server == server and r.sender_cpu_ms is not None]
        if own:
            ms, share = np.median([m for m, _ in own]), np.median([m / w for m, w in own if w])
            lines.append(f"- {SENDER_TEXT.format(text, ms, share)}")
    lines += [
        "",
        "| server | round | req/s | p50 ms | p99 ms | errors | worker CPU ms/req | of which sending |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        if r.server in SERVERS:
            cpu = "-" if r.worker_cpu_ms is None else r.worker_cpu_ms
            sending = "-" if r.sender_cpu_ms is None else r.sender_cpu_ms
            lines.append(
                f"| {r.server} | {r.repeat} | {r.requests_per_s:.0f} | {r.p50_ms} | {r.p99_ms} | {r.errors} | {cpu} "
                f"| {sending} |"
            )
    return [*lines, ""]


def splice(page: str, lines: list[str]) -> str:
    """``page`` (docs/performance.md) with its "Data collection" section replaced by ``lines`` (or added before "Every
    run"): ``make bench ONLY=collection`` renews this section and leaves the rest as the last full run wrote it."""
    text = "\n".join(lines)
    start = page.find("## Data collection\n")
    if start >= 0:
        end = page.find("\n## ", start + 1)
        return page[:start] + text + ("\n" + page[end + 1 :] if end >= 0 else "")
    anchor = page.find("## Every run\n")
    if anchor < 0:
        return page.rstrip("\n") + "\n\n" + text
    return page[:anchor] + text + "\n" + page[anchor:]
