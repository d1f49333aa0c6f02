"""Start a new model: ``python -m training.scaffold NAME`` (``make new-model NAME=...``).

Writes ``model_arch/NAME.py`` (a small tabular model: its input and output specs, the network, and
``ARCHITECTURE``; with ``--spec-only``, the specs alone, for a file that carries its own code or graph), registers
it in ``model_arch/registry.py``, and writes ``tests/test_NAME.py``, which reads the module's specs, saves the model
as a model folder and serves it through the unchanged ``score.py``. Then edit the module for your data, and train
with ``model_folder.weights.write_model_folder``. Refuses to overwrite anything.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

MODULE = '''"""{title}: a new model for the scoring template. Edit the specs and the network for your data.

Created by ``make new-model NAME={name}``. The input spec says what a client sends per row (and how it becomes the
network's input), the output spec what comes back; ``score.py`` and ``serving/`` need no change. A class pasted from
elsewhere works as it is: its constructor may take nothing or keyword arguments, which the manifest's config gives.
"""

from __future__ import annotations

import torch
from torch import nn

from model_arch.architecture import Architecture
from model_arch.spec import InputSpec, OutputSpec

FEATURES = ("feature_a", "feature_b", "feature_c", "feature_d")  # the names clients may key rows by

# subtract/divide: one number, or one per feature (standardisation) or per image channel, applied in training and
# serving alike.
INPUT_SPEC = InputSpec(name="features", shape=(len(FEATURES),), names=FEATURES, description="Edit me.")
# Or OutputSpec(kind="classification", labels=("no", "yes")); select=0 when forward returns (logits, features).
OUTPUT_SPEC = OutputSpec(kind="regression", names=("target",))


class {cls}(nn.Module):
    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(len(FEATURES), hidden), nn.ReLU(), nn.Linear(hidden, OUTPUT_SPEC.width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, features) float32 -> (batch, outputs)
        return self.net(x)


ARCHITECTURE = Architecture(name="{name}", model_class={cls}, input_spec=INPUT_SPEC, output_spec=OUTPUT_SPEC)
'''

SPEC_ONLY_MODULE = '''"""{title}: what a TorchScript, torch.export or ONNX file takes and gives, and nothing else.

Created by ``make new-model NAME={name} SPEC_ONLY=1``. The file carries its own code or graph; serve it with
``MODEL_ARCHITECTURE={name}`` (and ``ALLOW_CODE_FORMATS=torchscript`` or ``torch_export`` for those two formats,
which run code; an ONNX file needs no opt-in). Edit the specs: the row shape and value range clients send, the
preprocessing (subtract/divide: one number, or one per feature or image channel), and the labels.
"""

from __future__ import annotations

from model_arch.architecture import Architecture
from model_arch.spec import InputSpec, OutputSpec

INPUT_SPEC = InputSpec(name="pixels", shape=(3, 32, 32), minimum=0, maximum=255, divide=255, description="Edit me.")
# select=0 (or an output's name, for ONNX) when the file returns more than one output.
OUTPUT_SPEC = OutputSpec(kind="classification", labels=("cat", "dog"))

ARCHITECTURE = Architecture(name="{name}", model_class=None, input_spec=INPUT_SPEC, output_spec=OUTPUT_SPEC)
'''

TEST = '''"""{name}, served end to end through the unchanged score.py (created by make new-model).

Requests are shaped by the module's INPUT_SPEC and answers checked against its OUTPUT_SPEC, so this test keeps
working as you edit the module: classification or regression, any row shape.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_arch.{name} import ARCHITECTURE
from model_folder.onnx_export import export_onnx
from model_folder.weights import write_model_folder
from tests.helpers import scoring_app_client


def rows(count: int) -> list:
    spec = ARCHITECTURE.input_spec
    low = 0.0 if spec.minimum is None else spec.minimum
    high = 1.0 if spec.maximum is None else spec.maximum
    return np.random.default_rng(0).uniform(low, high, (count, *spec.shape)).tolist()


def values(answer: dict) -> np.ndarray:
    if ARCHITECTURE.output_spec.kind == "classification":
        return np.asarray(answer["probabilities"])
    return np.asarray([list(row.values()) for row in answer["predictions"]])


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    model = ARCHITECTURE.build(ARCHITECTURE.default_config()).eval()
    write_model_folder(model, tmp_path / "model", architecture=ARCHITECTURE.name, config=ARCHITECTURE.default_config())
    return tmp_path


def test_{name}_is_served_by_score_py(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client = scoring_app_client(monkeypatch, model_dir, MODEL_RUNTIME="torch")

    reply = client.post("/score", json={{"data": rows(3)}})

    assert reply.status_code == 200, reply.get_json()
    answer, output = reply.get_json(), ARCHITECTURE.output_spec
    assert len(answer["predictions"]) == 3
    if output.kind == "classification":
        assert set(answer["predictions"]) <= set(output.labels)
        assert values(answer).shape == (3, len(output.labels))
    else:
        assert all(list(row) == list(output.names) for row in answer["predictions"])


def test_{name}_exports_to_onnx_and_answers_alike(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The faster ONNX Runtime path (MODEL_RUNTIME=auto). If the export fails, the model still serves with PyTorch.
    export_onnx(model_dir / "model")
    answers = {{}}
    for runtime in ("onnx", "torch"):  # one app at a time: the server's blueprint holds the latest script
        client = scoring_app_client(monkeypatch, model_dir, MODEL_RUNTIME=runtime)
        reply = client.post("/score", json={{"data": rows(3)}})
        assert reply.status_code == 200, reply.get_json()
        answers[runtime] = values(reply.get_json())
        assert client.get("/score").get_json()["runtime"] == {{"onnx": "onnxruntime", "torch": "torch"}}[runtime]

    np.testing.assert_allclose(answers["onnx"], answers["torch"], atol=1e-4)
'''

SPEC_ONLY_TEST = '''"""{name}: a spec-only architecture (created by make new-model SPEC_ONLY=1).

Serve your file with it: MODEL_ARCHITECTURE={name} make doctor MODEL_DIR=path/to/file, then make serve the same way.
"""

from __future__ import annotations

from model_arch.{name} import ARCHITECTURE


def test_{name}_declares_what_its_file_takes_and_gives() -> None:
    assert ARCHITECTURE.spec_only
    assert ARCHITECTURE.input_spec.size > 0 and ARCHITECTURE.output_spec.width > 0
'''


def scaffold(name: str, root: Path = REPO_ROOT, spec_only: bool = False) -> list[Path]:
    """Create the module and its test, and register it. Returns the files written or changed.

    ``spec_only``: a module that declares only the specs, for a TorchScript, torch.export or ONNX file.

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
    # Each on one line, or wrapped one name per line (as ruff formats a line longer than 120 characters).
    imports = re.search(r"^from model_arch import (?:\(([\w,\s]+)\)|([\w, ]+))$", text, flags=re.M)
    modules = re.search(r"^MODULES = \(([\w,\s]+)\)$", text, flags=re.M)
    if not imports or not modules:
        raise ValueError(f"{registry} no longer has the import and MODULES lines this command edits; register by hand")
    cls = "".join(part.capitalize() for part in name.split("_"))
    title = name.replace("_", " ").capitalize()
    module.write_text((SPEC_ONLY_MODULE if spec_only else MODULE).format(name=name, cls=cls, title=title))
    test.write_text((SPEC_ONLY_TEST if spec_only else TEST).format(name=name))
    names = [n.strip() for n in modules.group(1).split(",") if n.strip()] + [name]
    imported = {n.strip() for n in (imports.group(1) or imports.group(2)).split(",") if n.strip()} | {name}
    text = text.replace(imports.group(0), _wrapped("from model_arch import ", sorted(imported), ""))
    text = text.replace(modules.group(0), _wrapped("MODULES = (", names, ")"))
    registry.write_text(text)
    return [module, test, registry]


def _wrapped(head: str, names: list[str], tail: str) -> str:
    """``head`` + the names + ``tail`` on one line, or wrapped one name per line as ruff formats a longer line."""
    line = head + ", ".join(names) + tail
    if len(line) <= 120:
        return line
    opening = head if head.endswith("(") else head + "("
    return opening + "\n" + "".join(f"    {n},\n" for n in names) + ")"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="snake_case name of the new architecture, e.g. churn_mlp")
    parser.add_argument("--spec-only", action="store_true", help="specs only, for a TorchScript, .pt2 or ONNX file")
    args = parser.parse_args(argv)
    try:
        written = scaffold(args.name, spec_only=args.spec_only)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")
    print(f"next: edit model_arch/{args.name}.py, then run: .venv/bin/python -m pytest tests/test_{args.name}.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
