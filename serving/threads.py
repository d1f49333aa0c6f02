"""Thread choices for one inference-server worker process (PyTorch's and ONNX Runtime's intra-op threads).

Threads matter most on CPU: every worker is its own process, and torch's default thread pool per process
makes the workers fight over the cores: the sample-style script in ``make bench`` shows what that costs
(``docs/performance.md``). So each worker takes ``cores // WORKER_COUNT`` threads.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

logger = logging.getLogger(__name__)


def available_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup CPU quota (containers)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(cores, quota) if quota else cores)


def threads_per_worker(worker_count: int, override: int | None) -> int:
    """``override`` if given, else the available cores shared evenly among the workers (at least 1)."""
    return override or max(1, available_cores() // max(1, worker_count))


def _cgroup_cpu_quota(path: Path = Path("/sys/fs/cgroup/cpu.max")) -> int | None:
    """cgroup v2 ``cpu.max`` as whole cores (rounded up), or None when unlimited or unreadable."""
    try:
        quota, period = path.read_text().split()[:2]
        return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None
