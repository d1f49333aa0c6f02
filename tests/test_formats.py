"""The format matrix in process: every way of saving loads to the same model, or is refused naming cause and fix;
and the doctor command reaches the same verdict on each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from model_folder import formats
from model_folder.manifest import ModelFolderError
from serving import doctor
from serving.settings import Settings, SettingsError
from serving.startup import load_predictor
from tests.model_files import LOADABLE, PAYLOAD_MARKER, REFUSED, Case, build_case
from training.data import digits_split

ids = [case.name for case in LOADABLE], [case.name for case in REFUSED]


@pytest.fixture(scope="module")
def held_out() -> np.ndarray:
    """The held-out digits as model input, (360, 1, 8, 8) float32."""
    from model_arch.digits_cnn import INPUT_SPEC

    return INPUT_SPEC.preprocess(digits_split().x_test)


@pytest.mark.parametrize("case", LOADABLE, ids=ids[0])
def test_every_loadable_format_serves_the_trained_model(
    case: Case, trained_model: torch.nn.Module, held_out: np.ndarray, tmp_path: Path
) -> None:
    _, env = build_case(case, trained_model, tmp_path)

    predictor = load_predictor(Settings.from_env(env))
    answer = predictor.predict(held_out)

    with torch.inference_mode():
        expected = torch.softmax(trained_model(torch.from_numpy(held_out)), dim=1).numpy()
    tolerance = 1e-5 if case.exact else 2e-2
    np.testing.assert_allclose(answer.values, expected, atol=tolerance)
    agreement = np.mean(np.asarray(answer.labels()) == expected.argmax(axis=1))
    assert agreement == 1.0 if case.exact else agreement >= 0.99


@pytest.mark.parametrize("case", REFUSED, ids=ids[1])
def test_every_refusal_names_its_cause_and_its_fix(case: Case, trained_model: torch.nn.Module, tmp_path: Path) -> None:
    model_dir, env = build_case(case, trained_model, tmp_path)

    with pytest.raises((ModelFolderError, SettingsError)) as caught:
        load_predictor(Settings.from_env(env))

    message = str(caught.value)
    assert case.cause in message
    assert case.fix in message
    if isinstance(caught.value, ModelFolderError):
        assert f"python -m serving.doctor {model_dir}" in message
    assert not (model_dir.parent / PAYLOAD_MARKER).exists()


@pytest.mark.parametrize("case", LOADABLE + REFUSED, ids=ids[0] + ids[1])
def test_the_doctor_reaches_the_loaders_verdict(
    case: Case, trained_model: torch.nn.Module, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir, env = build_case(case, trained_model, tmp_path)

    ok, report = doctor.diagnose(str(model_dir), env)

    assert ok == case.loads, report
    if case.loads:
        assert "OK: the template serves" in report
    else:
        assert "NOT SERVABLE as configured" in report
        assert case.cause in report and case.fix in report
    assert not (model_dir.parent / PAYLOAD_MARKER).exists()


@pytest.mark.parametrize(
    ("case_name", "facts"),
    [
        (
            "gpu-saved",
            [
                "torch.save archive",
                "saved on: cuda:0",
                "a state_dict of 8 tensors (float32)",
                "it fits ['digits_cnn'] at the default config",
            ],
        ),
        ("other-architecture", ["no registered one matches", "make new-model NAME=", "MODEL_ARCHITECTURE"]),
        ("bfloat16", ["a state_dict of 8 tensors (bfloat16)"]),
        ("dataparallel-prefix", ["keys prefixed 'module.'"]),
        ("checkpoint-model_state_dict", ["a checkpoint with the state_dict under 'model_state_dict'"]),
        ("legacy-format", ["pre-1.6 pickle format"]),
        ("safetensors", ["safetensors file", "8 tensors (F32)"]),
        ("torchscript", ["TorchScript archive", "only with ALLOW_CODE_FORMATS=torchscript"]),
        ("torch-export", ["torch.export program", "only with ALLOW_CODE_FORMATS=torch_export"]),
        ("whole-module", ["needs globals: [", "model_arch.digits_cnn.DigitsCNN", "safe: no"]),
        ("checksum-mismatch", ["sha256 DOES NOT MATCH"]),
        ("manifest-folder", ["architecture 'digits_cnn'", "sha256 matches", "64 numbers"]),
    ],
)
def test_the_doctor_reports_what_each_file_is_and_needs(
    case_name: str, facts: list[str], trained_model: torch.nn.Module, tmp_path: Path
) -> None:
    case = next(c for c in LOADABLE + REFUSED if c.name == case_name)
    model_dir, env = build_case(case, trained_model, tmp_path)

    _, report = doctor.diagnose(str(model_dir), env)

    for fact in facts:
        assert fact in report


def test_the_doctor_command_exits_0_or_1(trained_folder: Path, tmp_path: Path, capsys) -> None:
    assert doctor.main([str(trained_folder)]) == 0
    assert "OK: the template serves" in capsys.readouterr().out
    assert doctor.main([str(tmp_path)]) == 1
    assert "No model found" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("case_name", "expected"),
    [
        ("state-dict-no-suffix", formats.TORCH_SAVE),
        ("legacy-format", formats.LEGACY_TORCH_SAVE),
        ("safetensors", formats.SAFETENSORS),
        ("torchscript", formats.TORCHSCRIPT),
        ("torch-export", formats.TORCH_EXPORT),
        ("garbage", formats.UNKNOWN),
        ("truncated", formats.UNKNOWN),
    ],
)
def test_formats_are_detected_by_content(case_name: str, expected: str, trained_model, tmp_path: Path) -> None:
    case = next(c for c in LOADABLE + REFUSED if c.name == case_name)
    model_dir, _ = build_case(case, trained_model, tmp_path)
    (model_file,) = [p for p in model_dir.rglob("*") if p.is_file()]
    renamed = model_file.rename(model_file.with_name("renamed.dat"))  # the suffix must not matter

    assert formats.detect_format(renamed) == expected
