"""Add an ONNX export to a model folder, for the ONNX Runtime serving path (``MODEL_RUNTIME``).

    python -m model_arch.onnx_export build/model      (training does this itself; see model_arch.train)

The export is the model with its output head: softmax for classification, as ``serving.predictor`` applies it.
ONNX Runtime then returns what the PyTorch path returns, and serving does no work of its own around the graph.
The batch dimension is dynamic. The export is run through ONNX Runtime and compared with the PyTorch model on
seeded rows from the input spec's range, at 1, 7 and 64 rows; the largest difference is recorded in the
manifest. An export that differs by more than ``TOLERANCE`` is deleted and refused. The manifest also records
the file's sha256 and the weights' sha256; serving checks both at start-up (without torch), and
``python -m serving.doctor`` compares the export's answers with the weights again.

Why: on the 2-core benchmark machine the demo CNN's forward pass takes about 80 µs in PyTorch and 17 µs in
ONNX Runtime for one row, and 5.7 ms against 1.6 ms for 256 rows (README, "Speed").

An ONNX file is data (a protobuf graph): loading it runs no code from the model folder.
Needs ``onnx`` and ``onnxscript`` (the ``torch.onnx`` exporter) and ``onnxruntime`` (for the check): the ``train``
extra and ``environment/conda-train.yaml``. The serving image needs only ``onnxruntime``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from model_arch.architecture import output_head
from model_arch.manifest import Manifest, ModelFolderError, OnnxExport, read_manifest, sha256_of, write_manifest
from model_arch.model_folder import load_model
from model_arch.onnx_runtime import INPUT_NAME, TOLERANCE, Forward, OnnxEngine, largest_difference

logger = logging.getLogger(__name__)

ONNX_NAME = "model.onnx"
EXPORTER_PACKAGES = ("onnx", "onnxscript", "onnxruntime")  # the torch.onnx exporter, and the runtime for the check
# They log every optimisation pass at INFO, and that torchvision (never used here) is missing at WARNING.
EXPORTER_LOGGERS = ("onnxscript", "onnx_ir", "torch.onnx")


class ServingGraph(nn.Module):
    """The model plus the output head serving applies: what the ONNX file holds."""

    def __init__(self, model: nn.Module, classification: bool) -> None:
        super().__init__()
        self.model = model
        self.classification = classification

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return output_head(self.model(x), self.classification)


def export_onnx(folder: str | Path) -> Manifest:
    """Export the model folder's weights to ``folder/model.onnx``, check it, and record it in the manifest.

    Raises:
        ModelFolderError: the folder cannot be loaded, the model cannot be exported, or the export's answers
            differ from the PyTorch model's.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    model = load_model(manifest, folder / manifest.weights_file, torch.device("cpu"))
    graph = ServingGraph(model, manifest.output.kind == "classification").eval()
    path = folder / ONNX_NAME
    example = torch.zeros((2, *manifest.input.shape))
    for name in EXPORTER_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        # The exporter prints progress lines, and warns about its own internals (FutureWarning, DeprecationWarning).
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                graph,
                (example,),
                str(path),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=["output"],
                dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
                external_data=False,
            )
    except Exception as err:
        path.unlink(missing_ok=True)
        raise ModelFolderError(
            f"cannot export {folder / manifest.weights_file} to ONNX ({type(err).__name__}: {str(err)[:300]}). "
            "The folder still serves with the PyTorch runtime (MODEL_RUNTIME=torch or auto)."
        ) from err
    difference = largest_difference(_torch_forward(graph), OnnxEngine(path, threads=1), manifest.input)
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


def _torch_forward(graph: nn.Module) -> Forward:
    def forward(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return graph(torch.from_numpy(batch)).numpy()

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
