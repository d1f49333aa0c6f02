"""What tests share besides fixtures: the repository's paths, the sample request, and the server's app in process.

Imported one way everywhere: ``from tests.helpers import ...`` (fixtures live in ``tests/conftest.py``).
"""

from __future__ import annotations

import builtins
from pathlib import Path

import pytest
from azureml_inference_server_http.server import config as server_config
from azureml_inference_server_http.server.create_app import create

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_REQUEST = REPO_ROOT / "deploy" / "sample-request.json"
SAMPLE_LABELS = [3, 7]  # the true digits of the two images in deploy/sample-request.json


def scoring_app_client(monkeypatch: pytest.MonkeyPatch, model_dir: Path, **env: str):
    """The inference server's own Flask app for score.py on ``model_dir`` (runs init()), as in a worker."""
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = server_config.config
    monkeypatch.setattr(config, "app_root", str(REPO_ROOT))
    monkeypatch.setattr(config, "entry_script", "score.py")
    monkeypatch.setattr(config, "azureml_model_dir", str(model_dir))
    monkeypatch.setattr(builtins, "print", builtins.print)  # the server redirects print(); undo afterwards
    return create().test_client()
