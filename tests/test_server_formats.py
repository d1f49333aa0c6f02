"""The format matrix through a real ``azmlinfsrv`` process: every loadable format answers correctly, and a
booby-trapped pickle stops the server at start-up without ever running."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.client import request
from harness.server import InferenceServer
from model_arch.digits_cnn import INPUT_SPEC
from tests.helpers import SAMPLE_LABELS, SAMPLE_REQUEST
from tests.model_files import LOADABLE, PAYLOAD_MARKER, REFUSED, Case, build_case

pytestmark = [pytest.mark.server, pytest.mark.slow]


@pytest.fixture(scope="module")
def expected_probabilities(trained_model: torch.nn.Module) -> np.ndarray:
    """What the trained_model model answers, in process, for the sample request."""
    rows = np.asarray(json.loads(SAMPLE_REQUEST.read_text())["data"])
    with torch.inference_mode():
        return torch.softmax(trained_model(torch.from_numpy(INPUT_SPEC.preprocess(rows))), dim=1).numpy()


@pytest.mark.parametrize("case", LOADABLE, ids=[case.name for case in LOADABLE])
def test_every_loadable_format_answers_correctly_on_the_real_server(
    case: Case, trained_model: torch.nn.Module, expected_probabilities: np.ndarray, tmp_path: Path
) -> None:
    model_dir, env = build_case(case, trained_model, tmp_path)

    with InferenceServer(model_dir, env=env) as server:
        reply = request(server.url + "/score", SAMPLE_REQUEST.read_bytes(), method="POST")

    assert reply.status == 200, server.log()[-3000:]
    assert reply.json()["predictions"] == SAMPLE_LABELS
    tolerance = 1e-5 if case.exact else 2e-2
    np.testing.assert_allclose(np.asarray(reply.json()["probabilities"]), expected_probabilities, atol=tolerance)


@pytest.mark.parametrize("name", ["booby-trapped-pickle", "torchscript", "truncated", "other-architecture"])
def test_refused_files_stop_the_real_server_naming_cause_and_fix(name: str, trained_model, tmp_path: Path) -> None:
    case = next(c for c in REFUSED if c.name == name)
    model_dir, env = build_case(case, trained_model, tmp_path)
    server = InferenceServer(model_dir, env=env)

    returncode = server.wait_for_exit(timeout=60)

    log = server.log()
    assert returncode != 0
    assert case.cause in log and case.fix in log
    assert f"python -m serving.doctor {model_dir}" in log
    assert not (model_dir.parent / PAYLOAD_MARKER).exists()
