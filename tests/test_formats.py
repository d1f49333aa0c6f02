"""The format matrix in process: every way of saving loads to the same model, or is refused naming cause and fix;
and the doctor command reaches the same verdict on each."""

from __future__ import annotations

import struct
import subprocess
import sys
import zipfile
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


INFLATED = 200 * 1024 * 1024  # what the hostile entry inflates to; deflated at level 9 it is about 200 kB
PEAK_GROWTH = """
import resource, sys
from model_folder.formats import detect_format
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(detect_format(sys.argv[1]), (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torch.save-like zip whose archive_format entry inflates from about 200 kB to 200 MB of zeros."""
    path = tmp_path_factory.mktemp("bomb") / "model.pt"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        with archive.open("archive/archive_format", "w") as entry:
            for _ in range(INFLATED // 2**20):
                entry.write(bytes(2**20))
    return path


def lying_about_its_size(path: Path, entry: str, declared: int) -> Path:
    """A copy of the zip at ``path`` whose directory and local header say ``entry`` inflates to ``declared`` bytes."""
    data = bytearray(path.read_bytes())
    name = entry.encode()
    for signature, size_at, name_at in ((b"PK\x01\x02", 24, 46), (b"PK\x03\x04", 22, 30)):
        at = data.find(signature)
        while data[at + name_at : at + name_at + len(name)] != name:
            at = data.find(signature, at + 1)
        struct.pack_into("<L", data, at + size_at, declared)
    lying = path.with_name("lying.pt")
    lying.write_bytes(bytes(data))
    return lying


@pytest.mark.parametrize("declared", ["honestly", "as 3 bytes"])
def test_an_entry_that_inflates_to_200_mb_is_detected_in_bounded_memory(zip_bomb: Path, declared: str) -> None:
    path = zip_bomb if declared == "honestly" else lying_about_its_size(zip_bomb, "archive/archive_format", 3)

    run = subprocess.run([sys.executable, "-c", PEAK_GROWTH, str(path)], capture_output=True, text=True, check=True)
    detected, growth_mib = run.stdout.split()

    print(f"{path.stat().st_size} bytes inflating to {INFLATED}, declared {declared}: peak RSS +{growth_mib} MiB")
    assert detected == formats.TORCH_SAVE
    assert int(growth_mib) < 16  # reading the entry whole took 400 MiB


def test_a_zip_with_too_large_a_directory_is_not_read(
    monkeypatch: pytest.MonkeyPatch, trained_folder: Path, tmp_path: Path
) -> None:
    saved = trained_folder / "model.pt"  # torch.save writes zip64 end records
    with zipfile.ZipFile(saved) as archive:
        entries = len(archive.infolist())
    larger = tmp_path / "larger.zip"
    with zipfile.ZipFile(larger, "w") as archive:
        for i in range(entries + 1):
            archive.writestr(f"archive/{'data.pkl' if i == 0 else i}", b"")

    assert (formats.detect_format(larger), formats.detect_format(saved)) == (formats.TORCH_SAVE,) * 2
    monkeypatch.setattr(formats, "MAX_ZIP_ENTRIES", entries)
    assert (formats.detect_format(larger), formats.detect_format(saved)) == (formats.UNKNOWN, formats.TORCH_SAVE)
    monkeypatch.setattr(formats, "MAX_ZIP_ENTRIES", 100_000)
    monkeypatch.setattr(formats, "MAX_ZIP_DIRECTORY", 100)
    assert (formats.detect_format(larger), formats.detect_format(saved)) == (formats.UNKNOWN,) * 2


def test_a_long_safetensors_header_is_recognised_without_parsing_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    header = b'{"__metadata__": {"note": "' + b"x" * 5000 + b'"}}'
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    monkeypatch.setattr(formats, "MAX_DETECTED_HEADER", 1000)
    monkeypatch.setattr(formats, "safetensors_header", lambda _: pytest.fail("the header was parsed"))

    assert formats.detect_format(path) == formats.SAFETENSORS
    path.write_bytes(struct.pack("<Q", len(header)) + header[:-10])  # cut short: not one
    assert formats.detect_format(path) == formats.UNKNOWN
