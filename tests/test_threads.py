"""Device and thread choices for one worker."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model_folder import torch_engine
from serving import threads


def test_select_device_honours_cpu_and_falls_back_without_cuda() -> None:
    assert torch_engine.select_device("cpu") == torch.device("cpu")
    expected = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    assert torch_engine.select_device("auto") == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a host without CUDA")
def test_select_device_refuses_cuda_on_a_host_without_it() -> None:
    with pytest.raises(RuntimeError, match=r"SERVING_DEVICE=cuda but torch\.cuda\.is_available"):
        torch_engine.select_device("cuda")


@pytest.mark.parametrize(("cores", "workers", "expected"), [(2, 1, 2), (2, 2, 1), (2, 4, 1), (16, 4, 4), (16, 3, 5)])
def test_threads_per_worker_shares_the_cores(
    monkeypatch: pytest.MonkeyPatch, cores: int, workers: int, expected: int
) -> None:
    monkeypatch.setattr(threads, "available_cores", lambda: cores)

    assert threads.threads_per_worker(workers, None) == expected
    assert threads.threads_per_worker(workers, 3) == 3  # an explicit TORCH_NUM_THREADS wins


@pytest.mark.parametrize(
    ("text", "expected"), [("max 100000", None), ("150000 100000", 2), ("400000 100000", 4), ("junk", None)]
)
def test_cgroup_cpu_quota_is_read_as_whole_cores(tmp_path: Path, text: str, expected: int | None) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text(text + "\n")

    assert threads._cgroup_cpu_quota(cpu_max) == expected


def test_available_cores_is_at_least_one() -> None:
    assert threads.available_cores() >= 1
