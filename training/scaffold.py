"""Start a new model: ``python -m training.scaffold NAME`` (``make new-model NAME=...``).

Writes ``model_arch/NAME.py`` (a small tabular model: its config, input and output specs, and ``ARCHITECTURE``),
registers it in ``model_arch/registry.py``, and writes ``tests/test_NAME.py``, which saves the model as a model
folder and serves it through the unchanged ``score.py``. Then edit the module for your data, and train with
``model_folder.weights.write_model_folder``. Refuses to overwrite anything.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

MODULE = '''"""{title}: a new model for the scoring template (edit the specs, the config and the network for your data).

Created by ``make new-model NAME={name}``. The input spec says what a client sends per row, the output spec what
comes back; ``score.py`` needs no change.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model_arch.architecture import Architecture
from model_arch.spec import InputSpec, OutputSpec

FEATURES = ("feature_a", "feature_b", "feature_c", "feature_d")  # the names clients may key rows by
TARGETS = ("target",)

INPUT_SPEC = InputSpec(name="features", shape=(len(FEATURES),), names=FEATURES, description="Edit me.")
OUTPUT_SPEC = OutputSpec(kind="regression", names=TARGETS)  # or OutputSpec(kind="classification", labels=(...))


@dataclass(frozen=True)
class {cls}Config:
    """Hyper-parameters that fix the architecture; the defaults must rebuild the model you deploy."""

    hidden: int = 16


class {cls}(nn.Module):
    def __init__(self, config: {cls}Config | None = None) -> None:
        super().__init__()
        config = config or {cls}Config()
        self.net = nn.Sequential(
            nn.Linear(len(FEATURES), config.hidden), nn.ReLU(), nn.Linear(config.hidden, len(TARGETS))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, features) float32 -> (batch, targets)
        return self.net(x)


ARCHITECTURE = Architecture(
    name="{name}",
    model_class={cls},
    config_class={cls}Config,
    input_spec=INPUT_SPEC,
    output_spec=OUTPUT_SPEC,
)
'''

TEST = '''"""{name}, served end to end through the unchanged score.py (created by make new-model)."""

from __future__ import annotations

from pathlib import Path

import pytest

{first_party_imports}


def test_{name}_is_served_by_score_py(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_model_folder({cls}().eval(), tmp_path / "model", architecture="{name}", config={{}})

    client = scoring_app_client(monkeypatch, tmp_path)
    row = {{name: float(i) for i, name in enumerate(FEATURES)}}
    by_name = client.post("/score", json={{"data": [row, row]}})
    by_position = client.post("/score", json={{"data": [list(row.values())]}})

    assert by_name.status_code == 200, by_name.get_json()
    predictions = by_name.get_json()["predictions"]
    assert len(predictions) == 2 and list(predictions[0]) == list(TARGETS)
    assert by_position.get_json()["predictions"][0] == pytest.approx(predictions[0], abs=1e-5)


def test_{name}_exports_to_onnx_and_answers_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The faster ONNX Runtime path (MODEL_RUNTIME=auto). If the export fails, the model still serves with PyTorch.
    write_model_folder({cls}().eval(), tmp_path / "model", architecture="{name}", config={{}})
    export_onnx(tmp_path / "model")
    rows = [[float(i) for i in range(len(FEATURES))]] * 3

    answers = {{}}
    for runtime in ("onnx", "torch"):  # one app at a time: the server's blueprint holds the latest script
        client = scoring_app_client(monkeypatch, tmp_path, MODEL_RUNTIME=runtime)
        answers[runtime] = client.post("/score", json={{"data": rows}}).get_json()["predictions"]
        assert client.get("/score").get_json()["runtime"] == {{"onnx": "onnxruntime", "torch": "torch"}}[runtime]

    for fast, reference in zip(answers["onnx"], answers["torch"], strict=True):
        assert fast == pytest.approx(reference, abs=1e-4)
'''


def scaffold(name: str, root: Path = REPO_ROOT) -> list[Path]:
    """Create the module and its test, and register it. Returns the files written or changed.

    Raises:
        ValueError: the name is not a Python identifier in snake_case, or the files already exist.
    """
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"NAME must be snake_case, like my_model; got {name!r}")
    module, test, registry = (
        root / "model_arch" / f"{name}.py",
        root / "tests" / f"test_{name}.py",
        root / "model_arch" / "registry.py",
    )
    existing = [str(p) for p in (module, test) if p.exists()]
    if existing:
        raise ValueError(f"{existing} already exist; choose another NAME or delete them")
    text = registry.read_text()
    imports = re.search(r"^from model_arch import ([\w, ]+)$", text, flags=re.M)
    modules = re.search(r"^MODULES = \(([\w, ]+)\)$", text, flags=re.M)
    if not imports or not modules:
        raise ValueError(f"{registry} no longer has the import and MODULES lines this command edits; register by hand")
    cls = "".join(part.capitalize() for part in name.split("_"))
    title = name.replace("_", " ").capitalize()
    module.write_text(MODULE.format(name=name, cls=cls, title=title))
    test_imports = sorted([f"from model_arch.{name} import FEATURES, TARGETS, {cls}",  # in isort's order
                           "from model_folder.weights import write_model_folder",
                           "from model_folder.onnx_export import export_onnx",
                           "from tests.helpers import scoring_app_client"])  # fmt: skip
    test.write_text(TEST.format(name=name, cls=cls, first_party_imports="\n".join(test_imports)))
    names = [n.strip() for n in modules.group(1).split(",") if n.strip()] + [name]
    text = text.replace(
        imports.group(0),
        f"from model_arch import {', '.join(sorted({*imports.group(1).replace(' ', '').split(','), name}))}",
    )
    text = text.replace(modules.group(0), f"MODULES = ({', '.join(names)})")
    registry.write_text(text)
    return [module, test, registry]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="snake_case name of the new architecture, e.g. churn_mlp")
    args = parser.parse_args(argv)
    try:
        written = scaffold(args.name)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")
    print(f"next: edit model_arch/{args.name}.py, then run: .venv/bin/python -m pytest tests/test_{args.name}.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
