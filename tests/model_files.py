"""Model folders saved every way people save PyTorch models: the matrix that the loader, the doctor and the
real server are each tested on (tests/test_formats.py, tests/test_server_formats.py).

Each ``Case`` writes one AZUREML_MODEL_DIR from the trained demo model and says whether the template serves it
(with which opt-in settings) or which cause and fix its refusal must name.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from model_arch.digits_cnn import INPUT_SPEC, DigitsCNN, DigitsCNNConfig
from model_folder.manifest import WEIGHTS_NAME
from model_folder.weights import write_model_folder

PAYLOAD_MARKER = "payload-ran"  # the file the booby-trapped pickle would create, were it ever unpickled


@dataclass(frozen=True)
class Case:
    """One way of saving a model. ``build(model, model_dir)`` writes the files and returns extra settings."""

    name: str
    build: Callable[[nn.Module, Path], dict[str, str] | None]
    env: dict[str, str] = field(default_factory=dict)
    cause: str = ""  # refused cases: a fragment of the message naming the cause
    fix: str = ""  # refused cases: a fragment naming the fix
    exact: bool = True  # loadable cases: the same float32 outputs as the trained model

    @property
    def loads(self) -> bool:
        return not self.cause


def state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def save(obj: object, path: Path, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path, **kwargs)


def quietly(build: Callable[[], object]) -> object:
    """TorchScript and torch.export warn about their own deprecations while saving; not what is tested here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build()


def example_input(rows: int = 1) -> torch.Tensor:
    return torch.zeros((rows, *INPUT_SPEC.shape))


# ---------------------------------------------------------------------------------------------- builders


def manifest_folder(model, model_dir):
    write_model_folder(model, model_dir / "model", architecture="digits_cnn", config={})


def named(filename: str):
    def build(model, model_dir):
        save(state_dict(model), model_dir / filename)

    return build


def legacy_format(model, model_dir):
    save(state_dict(model), model_dir / "model.pt", _use_new_zipfile_serialization=False)


def checkpoint(key: str):
    def build(model, model_dir):
        optimizer = torch.optim.Adam(model.parameters())
        save(
            {key: state_dict(model), "optimizer_state_dict": optimizer.state_dict(), "epoch": 30, "loss": 0.05},
            model_dir / "outputs" / "checkpoint.pt",
        )

    return build


def data_parallel(model, model_dir):
    save(nn.DataParallel(copy.deepcopy(model)).state_dict(), model_dir / "outputs" / "model.pt")  # keys: module.*


def compiled(model, model_dir):
    save(torch.compile(copy.deepcopy(model)).state_dict(), model_dir / "outputs" / "model.pt")  # keys: _orig_mod.*


def half_precision(dtype: torch.dtype):
    def build(model, model_dir):
        save({k: v.to(dtype) for k, v in state_dict(model).items()}, model_dir / "model.pt")

    return build


def gpu_saved(model, model_dir):
    original = torch.serialization.location_tag
    torch.serialization.location_tag = lambda storage: "cuda:0"  # tags every storage as a GPU one, as on a GPU
    try:
        save(state_dict(model), model_dir / "outputs" / "model.pt")
    finally:
        torch.serialization.location_tag = original


def safetensors_file(model, model_dir):
    model_dir.mkdir(parents=True, exist_ok=True)
    save_file(state_dict(model), model_dir / "model.safetensors")


def torchscript(model, model_dir):
    scripted = quietly(lambda: torch.jit.trace(copy.deepcopy(model).eval(), example_input()))
    model_dir.mkdir(parents=True, exist_ok=True)
    quietly(lambda: torch.jit.save(scripted, str(model_dir / "model.pt")))


def exported(model, model_dir):
    batch = torch.export.Dim("batch", min=1, max=4096)  # without it the program only takes batches of 2
    program = quietly(
        lambda: torch.export.export(
            copy.deepcopy(model).eval(), (example_input(rows=2),), dynamic_shapes={"x": {0: batch}}
        )
    )
    model_dir.mkdir(parents=True, exist_ok=True)
    quietly(lambda: torch.export.save(program, str(model_dir / "model.pt2")))


def exported_static(model, model_dir):
    program = quietly(lambda: torch.export.export(copy.deepcopy(model).eval(), (example_input(),)))
    model_dir.mkdir(parents=True, exist_ok=True)
    quietly(lambda: torch.export.save(program, str(model_dir / "model.pt2")))


def whole_module(model, model_dir):
    save(copy.deepcopy(model), model_dir / "outputs" / "model.pt")


def whole_module_trusted(model, model_dir):
    whole_module(model, model_dir)
    needs = torch.serialization.get_unsafe_globals_in_checkpoint(str(model_dir / "outputs" / "model.pt"))
    return {"TRUSTED_PICKLE_GLOBALS": ",".join(needs)}


def two_candidates(model, model_dir):
    save(state_dict(model), model_dir / "outputs" / "best.pt")
    save(state_dict(DigitsCNN()), model_dir / "outputs" / "last.pt")


class Payload:
    """Unpickling this would run ``touch <marker>`` through os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def booby_trapped(model, model_dir):
    save({"weights": state_dict(model), "trap": Payload(model_dir.parent / PAYLOAD_MARKER)}, model_dir / "model.pt")


def truncated(model, model_dir):
    named("model.pt")(model, model_dir)
    data = (model_dir / "model.pt").read_bytes()
    (model_dir / "model.pt").write_bytes(data[: len(data) // 2])


def garbage(model, model_dir):
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "model.pth").write_bytes(bytes(range(256)) * 64)


def checksum_mismatch(model, model_dir):
    manifest_folder(model, model_dir)
    save(state_dict(DigitsCNN()), model_dir / "model" / WEIGHTS_NAME)  # same shapes, other weights


def other_architecture(model, model_dir):
    save(state_dict(DigitsCNN(DigitsCNNConfig(hidden=32))), model_dir / "outputs" / "model.pt")


def no_state_dict(model, model_dir):
    save({"epoch": 30, "loss": 0.05}, model_dir / "model.pt")


def empty(model, model_dir):
    (model_dir / "outputs").mkdir(parents=True)
    (model_dir / "outputs" / "metrics.json").write_text("{}")


def onnx_file(model, model_dir):
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "model.onnx").write_bytes(b"\x08\x07\x12\x07pytorch")


LOADABLE = [
    Case("manifest-folder", manifest_folder),
    Case("state-dict-pt", named("model.pt")),
    Case("state-dict-pth-in-outputs", named("outputs/model.pth")),
    Case("state-dict-bin", named("pytorch_model.bin")),
    Case("state-dict-no-suffix", named("weights")),
    Case("legacy-format", legacy_format),
    Case("checkpoint-model_state_dict", checkpoint("model_state_dict")),
    Case("checkpoint-state_dict", checkpoint("state_dict")),
    Case("checkpoint-model", checkpoint("model")),
    Case("dataparallel-prefix", data_parallel),
    Case("torch-compile-prefix", compiled),
    Case("float16", half_precision(torch.float16), exact=False),
    Case("bfloat16", half_precision(torch.bfloat16), exact=False),
    Case("gpu-saved", gpu_saved),
    Case("safetensors", safetensors_file),
    Case(
        "torchscript-opted-in",
        torchscript,
        env={"ALLOW_CODE_FORMATS": "torchscript", "MODEL_ARCHITECTURE": "digits_cnn"},
    ),
    Case(
        "torch-export-opted-in",
        exported,
        env={"ALLOW_CODE_FORMATS": "torch_export", "MODEL_ARCHITECTURE": "digits_cnn"},
    ),
    Case("whole-module-trusted", whole_module_trusted),
    Case("two-candidates-explicit", two_candidates, env={"MODEL_PATH": "outputs/best.pt"}),
]

REFUSED = [
    Case("whole-module", whole_module, cause="whole pickled nn.Module", fix="TRUSTED_PICKLE_GLOBALS=model_arch"),
    Case("booby-trapped-pickle", booby_trapped, cause="posix.system to load", fix="torch.save(model.state_dict()"),
    Case(
        "torchscript",
        torchscript,
        env={"MODEL_ARCHITECTURE": "digits_cnn"},
        cause="TorchScript archive",
        fix="ALLOW_CODE_FORMATS=torchscript",
    ),
    Case(
        "torchscript-without-specs",
        torchscript,
        env={"ALLOW_CODE_FORMATS": "torchscript"},
        cause="carries its own code or graph, but not what a client sends it",
        fix="SPEC_ONLY=1",
    ),
    Case(
        "torch-export",
        exported,
        env={"MODEL_ARCHITECTURE": "digits_cnn"},
        cause="torch.export program",
        fix="ALLOW_CODE_FORMATS=torch_export",
    ),
    Case(
        "torch-export-static-batch",
        exported_static,
        env={"ALLOW_CODE_FORMATS": "torch_export", "MODEL_ARCHITECTURE": "digits_cnn"},
        cause="fails on a warm-up batch",
        fix="dynamic batch dimension",
    ),
    Case("truncated", truncated, cause="could not be loaded", fix="damaged or was cut short"),
    Case("garbage", garbage, cause="not a recognised PyTorch file", fix="python -m model_folder.convert"),
    Case("checksum-mismatch", checksum_mismatch, cause="does not match its manifest", fix="exactly as training"),
    Case(
        "other-architecture",
        other_architecture,
        cause="size mismatch for classifier.1.weight: file has (32, 512)",
        fix="MODEL_ARCHITECTURE",
    ),
    Case(
        "no-state-dict", no_state_dict, cause="holds a dict with keys epoch, loss", fix="torch.save(model.state_dict()"
    ),
    Case("two-candidates", two_candidates, cause="Found 2 weights files", fix="Set MODEL_PATH"),
    Case("empty", empty, cause="No model found", fix="set MODEL_PATH"),
    Case("onnx-without-specs", onnx_file, cause="is an ONNX model (by suffix): it carries its own", fix="SPEC_ONLY=1"),
    Case(
        "untrusted-name",
        whole_module,
        env={"TRUSTED_PICKLE_GLOBALS": "nope.Missing"},
        cause="cannot be imported",
        fix="module.path.ClassName",
    ),
    Case(
        "unknown-code-format",
        torchscript,
        env={"ALLOW_CODE_FORMATS": "jit"},
        cause="ALLOW_CODE_FORMATS names",
        fix="'torchscript', 'torch_export'",
    ),
]


def build_case(case: Case, model: nn.Module, root: Path) -> tuple[Path, dict[str, str]]:
    """Write the case under ``root`` as Azure lays out a model; return AZUREML_MODEL_DIR and its settings."""
    model_dir = root / "azureml-models" / case.name / "1"
    model_dir.mkdir(parents=True)
    extra = case.build(model, model_dir) or {}
    return model_dir, {"AZUREML_MODEL_DIR": str(model_dir), **case.env, **extra}
