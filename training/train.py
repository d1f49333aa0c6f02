"""Train an example model and write a model folder: ``python -m training.train --output-dir DIR``.

``--architecture digits_cnn`` (the default, the demo CNN) or ``linnerud_mlp`` (the tabular regression example).
In an Azure ML command job the default ``--output-dir outputs`` is what the job uploads and what gets
registered as the model; locally ``make model`` writes ``build/model/``. Takes a few seconds on two cores.
The folder also gets an ONNX export of the weights for the faster ONNX Runtime serving path
(``model_folder.onnx_export``; ``--no-onnx`` skips it).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from model_arch.digits_cnn import DigitsCNN, DigitsCNNConfig
from model_arch.linnerud_mlp import TARGETS as LINNERUD_TARGETS
from model_arch.linnerud_mlp import LinnerudMLP, LinnerudMLPConfig
from model_arch.registry import get_architecture
from model_folder.manifest import Manifest, ModelFolderError
from model_folder.onnx_export import EXPORTER_PACKAGES, export_onnx
from model_folder.weights import write_model_folder
from training.data import digits_split, linnerud_split

logger = logging.getLogger("training.train")
ARCHITECTURE = "digits_cnn"


def train_linnerud(output_dir: str | Path, *, epochs: int = 50, seed: int = 0) -> Manifest:
    """Fit the Linnerud MLP on 16 rows, report the error on the 4 held out, write the model folder.

    Twenty rows cannot make a good model (held out, it is about as good as predicting the mean, which the
    metrics record beside it); the example is here to show tabular, multi-output serving.
    """
    started = time.perf_counter()
    torch.manual_seed(seed)
    split = linnerud_split(seed=seed)
    x, y = torch.from_numpy(split.x_train), torch.from_numpy(split.y_train)
    config = LinnerudMLPConfig()
    model = LinnerudMLP(config)
    model.set_statistics(x, y)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1.0)
    for _ in range(epochs):  # full batch: 16 rows
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(
            (model(x) - model.target_mean) / model.target_std, (y - model.target_mean) / model.target_std
        )
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.inference_mode():
        error = (model(torch.from_numpy(split.x_test)) - torch.from_numpy(split.y_test)).abs().mean(0).tolist()
    baseline = np.abs(split.y_test - split.y_train.mean(0)).mean(0).tolist()
    metrics = {
        "test_mean_absolute_error": dict(zip(LINNERUD_TARGETS, (round(e, 3) for e in error), strict=True)),
        "mean_predictor_error": dict(zip(LINNERUD_TARGETS, (round(e, 3) for e in baseline), strict=True)),
        "train_rows": len(split.x_train),
        "test_rows": len(split.x_test),
        "epochs": epochs,
        "seed": seed,
        "train_seconds": round(time.perf_counter() - started, 2),
    }
    manifest = write_model_folder(
        model, output_dir, architecture="linnerud_mlp", config=asdict(config), metrics=metrics
    )
    logger.info("wrote %s: held-out mean absolute error %s", output_dir, metrics["test_mean_absolute_error"])
    return manifest


def train(
    output_dir: str | Path,
    *,
    epochs: int = 30,
    batch_size: int = 64,
    learning_rate: float = 2e-3,
    seed: int = 0,
    config: DigitsCNNConfig | None = None,
) -> Manifest:
    """Train on the digits training split, evaluate on the held-out split, write the model folder."""
    started = time.perf_counter()
    torch.manual_seed(seed)
    config = config or DigitsCNNConfig()
    spec = get_architecture(ARCHITECTURE).input_spec
    split = digits_split(seed=seed)
    x_train = torch.from_numpy(spec.preprocess(split.x_train))  # (n, 1, 8, 8) float32 in [0, 1]
    y_train = torch.from_numpy(split.y_train)

    model = DigitsCNN(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x_train), generator=generator)
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        logger.debug("epoch %d loss %.4f", epoch + 1, total / len(order))

    model.eval()
    with torch.inference_mode():
        predicted = model(torch.from_numpy(spec.preprocess(split.x_test))).argmax(dim=1).numpy()
    accuracy = float(np.mean(predicted == split.y_test))
    metrics = {
        "test_accuracy": round(accuracy, 4),
        "train_rows": len(split.x_train),
        "test_rows": len(split.x_test),
        "epochs": epochs,
        "seed": seed,
        "train_seconds": round(time.perf_counter() - started, 2),
    }
    manifest = write_model_folder(model, output_dir, architecture=ARCHITECTURE, config=asdict(config), metrics=metrics)
    logger.info("wrote %s: test accuracy %.4f, %s s", output_dir, accuracy, metrics["train_seconds"])
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="outputs", help="where to write the model folder (default: outputs)")
    parser.add_argument("--architecture", choices=["digits_cnn", "linnerud_mlp"], default="digits_cnn")
    parser.add_argument("--epochs", type=int, help="default: 30 for digits_cnn, 50 for linnerud_mlp")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX export (serving then uses PyTorch)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    trainer = train if args.architecture == "digits_cnn" else train_linnerud
    options = {"seed": args.seed} if args.epochs is None else {"seed": args.seed, "epochs": args.epochs}
    trainer(args.output_dir, **options)
    if not args.no_onnx:
        add_onnx_export(args.output_dir)


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


if __name__ == "__main__":
    main()
