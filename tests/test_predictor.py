"""The predictor: chunked forward passes give the same answer as one pass; warm-up shapes; channels_last."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from model_arch.digits_cnn import INPUT_SPEC
from model_folder.manifest import read_manifest
from model_folder.torch_engine import TorchEngine, use_channels_last
from serving.predictor import Predictor, warm_up_sizes
from serving.settings import Settings
from serving.startup import load_predictor


def predictor(model: torch.nn.Module, folder: Path, **kwargs) -> Predictor:
    manifest = read_manifest(folder)
    engine = TorchEngine(model, torch.device("cpu"), manifest.output, channels_last=False)
    return Predictor(engine, manifest, folder / manifest.weights_file, 1, **kwargs)


@pytest.mark.parametrize("chunk_rows", [1, 7, 64, 1000])
def test_chunked_prediction_equals_one_pass(trained_model, trained_folder: Path, chunk_rows: int) -> None:
    batch = INPUT_SPEC.preprocess(np.random.default_rng(0).integers(0, 17, (100, 64)))

    whole = predictor(trained_model, trained_folder, chunk_rows=1000).predict(batch)
    chunked = predictor(trained_model, trained_folder, chunk_rows=chunk_rows).predict(batch)

    assert chunked.labels() == whole.labels()
    np.testing.assert_allclose(chunked.values, whole.values, atol=1e-6)


def test_read_only_batches_are_accepted(trained_model, trained_folder: Path) -> None:
    batch = INPUT_SPEC.preprocess(np.zeros((3, 64)))
    batch.flags.writeable = False  # as a view of a request body is

    assert len(predictor(trained_model, trained_folder).predict(batch).labels()) == 3


@pytest.mark.parametrize(
    ("chunk_rows", "sizes"), [(1, [1, 2]), (2, [1, 2]), (5, [1, 2, 4, 5]), (256, [1, 2, 4, 8, 16, 32, 64, 128, 256])]
)
def test_warm_up_covers_every_power_of_two_up_to_the_chunk(chunk_rows: int, sizes: list[int]) -> None:
    assert warm_up_sizes(chunk_rows) == sizes


@pytest.mark.parametrize(
    ("setting", "shape", "expected"),
    [("auto", (1, 8, 8), True), ("auto", (64,), False), ("on", (64,), True), ("off", (1, 8, 8), False)],
)
def test_channels_last_is_on_for_image_input_unless_switched(setting: str, shape: tuple, expected: bool) -> None:
    assert use_channels_last(setting, shape) is expected


def test_channels_last_answers_like_the_default_layout(azure_model_dir: Path) -> None:
    batch = INPUT_SPEC.preprocess(np.random.default_rng(1).integers(0, 17, (50, 64)))
    env = {"AZUREML_MODEL_DIR": str(azure_model_dir), "TORCH_NUM_THREADS": "1", "MODEL_RUNTIME": "torch"}

    fast = load_predictor(Settings.from_env({**env, "CHANNELS_LAST": "on"}))
    plain = load_predictor(Settings.from_env({**env, "CHANNELS_LAST": "off"}))

    assert fast.engine.channels_last and not plain.engine.channels_last
    assert fast.predict(batch).labels() == plain.predict(batch).labels()
    np.testing.assert_allclose(fast.predict(batch).values, plain.predict(batch).values, atol=1e-5)
