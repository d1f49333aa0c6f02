"""The model folder's ONNX export, both sides: writing it (training) and checking it before it serves.

    python -m model_folder.onnx_export build/model      (training does this itself; see training.train)

The export is the model with its output head: softmax for classification, as ``serving.predictor`` applies it.
ONNX Runtime then returns what the PyTorch path returns, and serving does no work of its own around the graph.
The batch dimension is dynamic, and so is every axis an input spec marks -1 (a text's length in tokens); a model
with several inputs keeps their names (``input_ids``, ``attention_mask``). The export is run through ONNX Runtime
and compared with the PyTorch model on seeded rows from the input spec's range, at 1, 7 and 64 rows (for a dynamic
axis, of 5, 13 and 40 positions, an attention mask marking texts of different lengths in one batch); the largest
difference is recorded in the manifest. An export that differs by more than ``TOLERANCE`` is deleted and refused.
The manifest also records the file's sha256 and the weights' sha256; serving checks both at start-up (without
torch), and ``python -m serving.doctor`` compares the export's answers with the weights again.

Why: ONNX Runtime's forward pass is several times faster than PyTorch's on a CPU, and a worker that serves it
never imports torch (``docs/performance.md`` has the measured figures).

Torch is imported inside ``export_onnx`` only: ``verified_export``, the start-up check, runs in workers that must
not import it.

An ONNX file is data (a protobuf graph): loading it runs no code from the model folder.
Needs ``onnx`` and ``onnxscript`` (the ``torch.onnx`` exporter) and ``onnxruntime`` (for the check): the ``train``
extra and ``environment/conda-train.yaml``. The serving image needs only ``onnxruntime``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import io
import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from model_arch.spec import DYNAMIC, InputSpec
from model_folder.engines import MASK_INPUT
from model_folder.hf_folder import is_transformers_folder, manifest_for_transformers_folder
from model_folder.manifest import (
    MANIFEST_NAME,
    Manifest,
    ModelFolderError,
    OnnxExport,
    check_sha256,
    file_in_folder,
    read_manifest,
    sha256_of,
    write_manifest,
)
from model_folder.onnx_engine import INPUT_NAME, OnnxEngine

logger = logging.getLogger(__name__)

ONNX_NAME = "model.onnx"
TOLERANCE = 1e-4  # float32 outputs of the two runtimes; the export's own difference is recorded in the manifest
CHECK_ROWS = (1, 7, 64)
Forward = Callable[[np.ndarray], np.ndarray]
EXPORTER_PACKAGES = ("onnx", "onnxscript", "onnxruntime")  # the torch.onnx exporter, and the runtime for the check
# They log every optimisation pass at INFO, and that torchvision (never used here) is missing at WARNING.
EXPORTER_LOGGERS = ("onnxscript", "onnx_ir", "torch.onnx")


def export_onnx(folder: str | Path) -> Manifest:
    """Export the model folder's weights to ``folder/model.onnx``, check it, and record it in the manifest.

    Raises:
        ModelFolderError: the folder cannot be loaded, the model cannot be exported, or the export's answers
            differ from the PyTorch model's.
    """
    import torch

    from model_folder.torch_engine import ServingGraph
    from model_folder.weights import load_model

    folder = Path(folder)
    manifest = folder_manifest(folder)
    model = load_model(manifest, folder / manifest.weights_file, torch.device("cpu"))
    names = input_names(manifest.inputs)
    graph = ServingGraph(model, manifest.output, names).eval()
    path = folder / ONNX_NAME
    examples = tuple(
        torch.from_numpy(array) for array in check_feeds(manifest.inputs, rows=(2,), lengths=(8,))[0].values()
    )
    batch = torch.export.Dim("batch")
    dynamic_shapes = tuple(
        {0: batch, **{axis + 1: torch.export.Dim.DYNAMIC for axis, d in enumerate(spec.shape) if d == DYNAMIC}}
        for spec in manifest.inputs
    )
    for name in EXPORTER_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        # The exporter prints progress lines, and warns about its own internals (FutureWarning, DeprecationWarning).
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            # Inputs that share the batch (and sequence) axis: the exporter names the axis once, and says so.
            warnings.filterwarnings("ignore", message="# The axis name", category=UserWarning)
            torch.onnx.export(
                graph,
                examples,
                str(path),
                dynamo=True,
                input_names=list(names),
                output_names=["output"],
                dynamic_shapes=(dynamic_shapes,),  # one entry: forward(*inputs) takes them as one tuple
                external_data=False,
            )
    except Exception as err:
        path.unlink(missing_ok=True)
        raise ModelFolderError(
            f"cannot export {folder / manifest.weights_file} to ONNX ({type(err).__name__}: {str(err)[:300]}). "
            "The folder still serves with the PyTorch runtime (MODEL_RUNTIME=torch or auto)."
        ) from err
    difference = largest_difference(_torch_forward(graph, names), OnnxEngine(path, threads=1), manifest.inputs)
    if not difference <= TOLERANCE:
        path.unlink()
        raise ModelFolderError(
            f"the ONNX export of {folder / manifest.weights_file} differs from the PyTorch model by {difference:.2e} "
            f"(more than {TOLERANCE:.0e}); it was deleted. Serve the folder with the PyTorch runtime."
        )
    export = OnnxExport(ONNX_NAME, sha256_of(path), float(f"{difference:.3g}"), manifest.weights_sha256)
    updated = dataclasses.replace(manifest, onnx=export)
    write_manifest(folder, updated)
    logger.info("wrote %s (%d bytes): largest difference from PyTorch %.2e", path, path.stat().st_size, difference)
    return updated


def folder_manifest(folder: Path) -> Manifest:
    """The folder's manifest; for a ``save_pretrained`` folder without one, the manifest made from its files, with
    every checksum (``model_folder.hf_folder``), which the export then writes into the folder."""
    if not (folder / MANIFEST_NAME).is_file() and is_transformers_folder(folder):
        return manifest_for_transformers_folder(folder, checksums=True)
    return read_manifest(folder)


def add_onnx_export(folder: str | Path) -> None:
    """Export for ONNX Runtime. Without the exporter's packages, or when the export fails its check, say so and
    leave the folder as it is: the weights serve with PyTorch, and the job that trained them succeeds."""
    missing = [name for name in EXPORTER_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        logger.warning(
            "no ONNX export (%s not installed): the folder serves with PyTorch. Install the train extra "
            "(pip install -e '.[train]') or environment/conda-train.yaml for the faster ONNX Runtime path.",
            ", ".join(missing),
        )
        return
    try:
        export_onnx(folder)
    except ModelFolderError as err:
        logger.warning("no ONNX export, the folder serves with PyTorch: %s", err)


def verified_export(weights: Path, manifest: Manifest) -> Path:
    """The export the manifest next to ``weights`` records, after checking that it is that file, made from these
    weights: what serving runs before it gives the file to ONNX Runtime.

    Raises:
        ModelFolderError: the export is missing, its sha256 differs, or it was exported from other weights.
    """
    export = manifest.onnx
    if export is None:
        raise ModelFolderError(f"the manifest next to {weights} records no ONNX export")
    try:
        path = file_in_folder(weights.parent, export.file, "ONNX export")
    except ModelFolderError as err:
        raise ModelFolderError(f"{err} Or set MODEL_RUNTIME=torch.") from None
    if manifest.weights_sha256 is not None:  # the weights too: a folder whose weights were swapped must not start
        check_sha256(weights, manifest.weights_sha256)
    check_sha256(path, export.sha256)
    if export.weights_sha256 != manifest.weights_sha256:
        raise ModelFolderError(
            f"{path} was exported from weights with sha256 {export.weights_sha256 or '(not recorded)'}, but the "
            f"manifest's weights {weights.name} have sha256 {manifest.weights_sha256}: the export is not "
            f"of these weights. Export it again with python -m model_folder.onnx_export {weights.parent}, or set "
            "MODEL_RUNTIME=torch."
        )
    return path


def input_names(inputs: tuple[InputSpec, ...]) -> tuple[str, ...]:
    """The export's input names: ``x`` for a one-input model (as exports always named it), else the specs' names."""
    return (INPUT_NAME,) if len(inputs) == 1 else tuple(spec.name for spec in inputs)


def largest_difference(first: Forward, second: Forward, inputs: InputSpec | tuple[InputSpec, ...]) -> float:
    """The largest absolute difference between two forward passes (numpy in, numpy out) on the check batches;
    infinite if their output shapes differ."""
    inputs = (inputs,) if isinstance(inputs, InputSpec) else inputs
    batches = check_batches(inputs[0]) if len(inputs) == 1 and not inputs[0].dynamic else check_feeds(inputs)
    largest = 0.0
    for batch in batches:
        a, b = first(batch), second(batch)
        if a.shape != b.shape:
            return float("inf")
        largest = max(largest, float(np.max(np.abs(a - b))))
    return largest


def check_batches(spec: InputSpec, seed: int = 0) -> list[np.ndarray]:
    """Model input at ``CHECK_ROWS`` rows, uniform over the spec's value range (0-1 where it has none)."""
    rng = np.random.default_rng(seed)
    low = spec.minimum if spec.minimum is not None else 0.0
    high = spec.maximum if spec.maximum is not None else 1.0
    return [spec.preprocess(rng.uniform(low, high, (rows, spec.size))) for rows in CHECK_ROWS]


def check_feeds(
    inputs: tuple[InputSpec, ...],
    seed: int = 0,
    rows: tuple[int, ...] = CHECK_ROWS,
    lengths: tuple[int, ...] = (5, 13, 40),
) -> list[dict[str, np.ndarray]]:
    """Model inputs by name at ``rows`` rows, each dynamic axis ``lengths`` long: integers uniform over the spec's
    range (0-1 where it has none), floats as ``check_batches``; an ``attention_mask`` marks texts of different lengths
    (the first row full, the others cut at random), as a padded batch of texts does."""
    rng = np.random.default_rng(seed)
    batches = []
    for count, length in zip(rows, lengths, strict=False):
        feeds = {}
        for spec in inputs:
            shape = (count, *spec.example_shape(length))
            low = spec.minimum if spec.minimum is not None else 0
            high = spec.maximum if spec.maximum is not None else 1
            if spec.name == MASK_INPUT:
                kept = np.concatenate([[length], rng.integers(1, length + 1, count - 1)])
                feeds[spec.name] = (np.arange(length)[None, :] < kept[:, None]).astype(np.int64)
            elif spec.dtype == "int64":
                feeds[spec.name] = rng.integers(int(low), int(high) + 1, shape, dtype=np.int64)
            else:
                feeds[spec.name] = spec.preprocess(rng.uniform(low, high, shape))
        batches.append(feeds)
    return batches


def _torch_forward(graph, names: tuple[str, ...] = (INPUT_NAME,)) -> Forward:
    import torch

    def forward(batch) -> np.ndarray:
        arrays = [batch[name] for name in batch] if isinstance(batch, dict) else [batch]
        with torch.inference_mode():
            return graph(*(torch.from_numpy(a) for a in arrays)).numpy()

    return forward


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a model folder (manifest.json and its weights)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        manifest = export_onnx(args.folder)
    except ModelFolderError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{args.folder / manifest.onnx.file}: largest difference from PyTorch {manifest.onnx.max_abs_diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
