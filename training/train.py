"""Train an example model and write a model folder: ``python -m training.train --output-dir DIR``.

``--architecture digits_cnn`` (the default, the demo CNN), ``linnerud_mlp`` (tabular regression),
``tutorial_cnn`` (a tutorial-style CNN: ``x.view``, a tuple output, per-channel normalisation fitted here) or
``wine_mlp`` (a tabular classifier standardised per feature, with statistics fitted here).
In an Azure ML command job the default ``--output-dir outputs`` is what the job uploads and what gets
registered as the model; locally ``make model`` writes ``build/model/``. Takes a few seconds on two cores.
The folder also gets an ONNX export of the weights for the faster ONNX Runtime serving path
(``model_folder.onnx_export``; ``--no-onnx`` skips it).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from model_arch.digits_cnn import DigitsCNN, DigitsCNNConfig
from model_arch.images import decode_image
from model_arch.linnerud_mlp import TARGETS as LINNERUD_TARGETS
from model_arch.linnerud_mlp import LinnerudMLP, LinnerudMLPConfig
from model_arch.registry import get_architecture
from model_folder.manifest import Manifest
from model_folder.onnx_export import add_onnx_export
from model_folder.weights import write_model_folder
from training.data import digits_split, linnerud_split, shapes_images, wine_split

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


def train_tutorial_cnn(output_dir: str | Path, *, epochs: int = 30, seed: int = 0) -> Manifest:
    """The tutorial-style CNN on the digits, normalised per channel with the training images' mean and standard
    deviation, which the manifest records (``INPUT_SPEC`` with them is what training and serving both apply)."""
    from model_arch.tutorial_cnn import INPUT_SPEC, Net

    split = digits_split(seed=seed)
    spec = dataclasses.replace(INPUT_SPEC, subtract=[float(split.x_train.mean())], divide=[float(split.x_train.std())])
    model = _fit_classifier(Net(), spec.preprocess(split.x_train), split.y_train, epochs=epochs, seed=seed)
    accuracy = _accuracy(model, spec.preprocess(split.x_test), split.y_test)
    metrics = {"test_accuracy": round(accuracy, 4), "train_rows": len(split.x_train), "epochs": epochs, "seed": seed}
    manifest = write_model_folder(
        model, output_dir, architecture="tutorial_cnn", config={}, metrics=metrics, input_spec=spec
    )
    logger.info("wrote %s: test accuracy %.4f", output_dir, accuracy)
    return manifest


def train_wine(output_dir: str | Path, *, epochs: int = 200, seed: int = 0) -> Manifest:
    """The wine classifier, standardised per feature with the training rows' means and standard deviations, which
    the manifest records as the input spec's ``subtract`` and ``divide``."""
    from model_arch.wine_mlp import INPUT_SPEC, WineMLP

    split = wine_split(seed=seed)
    spec = dataclasses.replace(
        INPUT_SPEC, subtract=split.x_train.mean(0).tolist(), divide=split.x_train.std(0).clip(1e-6).tolist()
    )
    config = {"hidden": 32}
    model = _fit_classifier(WineMLP(**config), spec.preprocess(split.x_train), split.y_train, epochs=epochs, seed=seed)
    accuracy = _accuracy(model, spec.preprocess(split.x_test), split.y_test)
    metrics = {"test_accuracy": round(accuracy, 4), "train_rows": len(split.x_train), "epochs": epochs, "seed": seed}
    manifest = write_model_folder(
        model, output_dir, architecture="wine_mlp", config=config, metrics=metrics, input_spec=spec
    )
    logger.info("wrote %s: test accuracy %.4f", output_dir, accuracy)
    return manifest


def train_shapes(output_dir: str | Path, *, epochs: int = 16, seed: int = 0, count: int = 2000) -> Manifest:
    """The image example on pictures drawn by ``training.data.shapes_images`` (PNG), decoded by the same
    ``InputSpec.decode_images`` that serving calls, normalised per channel with the training pictures' statistics.
    16 epochs: at 8, the held-out accuracy moved between 0.95 and 0.99 with torch's thread count alone."""
    from model_arch.shapes_cnn import INPUT_SPEC, ShapesCNN

    blobs, labels = shapes_images(count, seed=seed)
    test_blobs, test_labels = shapes_images(count // 4, seed=seed + 1)
    pixels = np.stack([decode_image(blob, INPUT_SPEC.image, INPUT_SPEC.shape) for blob in blobs])
    mean, std = pixels.mean(axis=(0, 2, 3)), pixels.std(axis=(0, 2, 3))
    spec = dataclasses.replace(INPUT_SPEC, subtract=mean.tolist(), divide=std.clip(1e-3).tolist())
    config = {"width": 16}
    model = _fit_classifier(ShapesCNN(**config), spec.preprocess(pixels), labels, epochs=epochs, seed=seed, lr=5e-3)
    accuracy = _accuracy(model, spec.decode_images(test_blobs), test_labels)
    metrics = {"test_accuracy": round(accuracy, 4), "train_images": count, "epochs": epochs, "seed": seed}
    manifest = write_model_folder(
        model, output_dir, architecture="shapes_cnn", config=config, metrics=metrics, input_spec=spec
    )
    logger.info("wrote %s: test accuracy %.4f on %d held-out pictures", output_dir, accuracy, len(test_labels))
    return manifest


def train_topics(output_dir: str | Path, *, epochs: int = 40, seed: int = 0) -> Manifest:
    """The text example: a WordPiece tokenizer trained on the training texts, then the classifier on the arrays
    that tokenizer gives through ``TextEncoder.encode``, the function serving calls; both land in the model folder."""
    import tempfile

    from model_arch.text import TextEncoder
    from model_arch.topics_text import ARCHITECTURE as TOPICS
    from model_arch.topics_text import TOPICS as LABELS
    from model_arch.topics_text import VOCAB_SIZE, TopicsClassifier
    from training.data import topic_texts, train_wordpiece

    started = time.perf_counter()
    split = topic_texts(LABELS, seed=seed)
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer_file = train_wordpiece(split.train_texts, Path(scratch) / "tokenizer.json", VOCAB_SIZE)
        encoder = TextEncoder(tokenizer_file, TOPICS.tokenizer)
        config = {"vocab_size": encoder.vocab_size, "dim": 64}
        ids_spec = dataclasses.replace(TOPICS.input_spec, maximum=encoder.vocab_size - 1)
        model = _fit_classifier(TopicsClassifier(**config), encoder.encode(split.train_texts), split.y_train,
                                epochs=epochs, seed=seed, **TEXT_FIT)  # fmt: skip
        with torch.inference_mode():
            test = {k: torch.from_numpy(v) for k, v in encoder.encode(split.test_texts).items()}
            accuracy = float((model(**test).argmax(dim=1).numpy() == split.y_test).mean())
        metrics = {
            "test_accuracy": round(accuracy, 4),
            "train_texts": len(split.train_texts),
            "test_texts": len(split.test_texts),
            "vocab_size": encoder.vocab_size,
            "epochs": epochs,
            "seed": seed,
            "train_seconds": round(time.perf_counter() - started, 2),
        }
        manifest = write_model_folder(
            model, output_dir, architecture=TOPICS.name, config=config, metrics=metrics, input_spec=ids_spec,
            tokenizer_file=tokenizer_file,
        )  # fmt: skip
    logger.info("wrote %s: test accuracy %.4f on %d held-out texts", output_dir, accuracy, len(split.test_texts))
    return manifest


def train_transformers(
    output_dir: str | Path, *, epochs: int = 6, seed: int = 0, embeddings: bool = False, lr: float = 5e-3
) -> dict[str, float]:
    """A tiny BERT (2 layers, hidden size 32) trained on the topic texts with its own WordPiece tokenizer and saved
    as ``save_pretrained`` saves it (``config.json``, ``model.safetensors``, ``tokenizer.json``,
    ``tokenizer_config.json``): what a fine-tuning job hands over. Nothing can be downloaded here, so the encoder
    starts from random weights instead of a pretrained checkpoint; the training loop is a fine-tune's.
    ``embeddings``: save the encoder alone (``BertModel``), which serving answers with mean-pooled, normalised vectors.
    Returns the held-out accuracy (also written to ``training_metrics.json``)."""
    import json
    import tempfile

    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    from model_arch.text import TextEncoder, TextSpec
    from model_arch.topics_text import TOPICS as LABELS
    from training.data import topic_texts, train_wordpiece

    started = time.perf_counter()
    torch.manual_seed(seed)
    output_dir = Path(output_dir)
    split = topic_texts(LABELS, seed=seed)
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer_file = train_wordpiece(split.train_texts, Path(scratch) / "tokenizer.json", 1000)
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_file=str(tokenizer_file), pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
            sep_token="[SEP]", mask_token="[MASK]", model_max_length=64,
        )  # fmt: skip
        encoder = TextEncoder(
            tokenizer_file, TextSpec(max_length=64, feeds=("input_ids", "attention_mask", "token_type_ids"))
        )
        config = BertConfig(
            vocab_size=encoder.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=64, num_labels=len(LABELS),
            id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)},
        )  # fmt: skip
        model = BertForSequenceClassification(config)
        model = _fit_classifier(
            _LogitsOf(model), encoder.encode(split.train_texts), split.y_train, epochs=epochs, seed=seed,
            **{**TEXT_FIT, "lr": lr},
        ).model  # fmt: skip
        with torch.inference_mode():
            test = {k: torch.from_numpy(v) for k, v in encoder.encode(split.test_texts).items()}
            accuracy = float((model(**test).logits.argmax(dim=1).numpy() == split.y_test).mean())
        saved = model.bert if embeddings else model
        saved.save_pretrained(output_dir)
        tokenizer.save_pretrained(output_dir)
    metrics = {"test_accuracy": round(accuracy, 4), "train_texts": len(split.train_texts), "epochs": epochs,
               "seed": seed, "train_seconds": round(time.perf_counter() - started, 2)}  # fmt: skip
    (output_dir / "training_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    logger.info("wrote %s (save_pretrained): test accuracy %.4f", output_dir, accuracy)
    return metrics


class _LogitsOf(nn.Module):
    """A transformers classifier as a module that returns its logits (what ``_fit_classifier`` trains)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**inputs).logits


def train_topics_multilabel(output_dir: str | Path, *, epochs: int = 15, seed: int = 0) -> Manifest:
    """The text example as a multi-label model: each training text is one or two of the topic texts joined, labelled
    with every topic it mentions; answered as the topics whose sigmoid reaches 0.5. Same architecture and tokenizer
    recipe as ``train_topics``; the manifest's output spec says ``multilabel``."""
    import tempfile

    from model_arch.spec import OutputSpec
    from model_arch.text import TextEncoder
    from model_arch.topics_text import ARCHITECTURE as TOPICS
    from model_arch.topics_text import TOPICS as LABELS
    from model_arch.topics_text import VOCAB_SIZE, TopicsClassifier
    from training.data import topic_texts, train_wordpiece

    split = topic_texts(LABELS, seed=seed)
    rng = np.random.default_rng(seed)

    def joined(texts: list[str], labels: np.ndarray, count: int) -> tuple[list[str], np.ndarray]:
        out_texts, targets = [], np.zeros((count, len(LABELS)), dtype=np.float32)
        for row in range(count):
            picks = rng.choice(len(texts), size=int(rng.integers(1, 3)), replace=False)
            out_texts.append(" ".join(texts[i] for i in picks))
            targets[row, labels[picks]] = 1.0
        return out_texts, targets

    train_texts, y_train = joined(split.train_texts, split.y_train, 600)
    test_texts, y_test = joined(split.test_texts, split.y_test, 200)
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer_file = train_wordpiece(split.train_texts, Path(scratch) / "tokenizer.json", VOCAB_SIZE)
        encoder = TextEncoder(tokenizer_file, TOPICS.tokenizer)
        config = {"vocab_size": encoder.vocab_size, "dim": 64}
        model = _fit_classifier(TopicsClassifier(**config), encoder.encode(train_texts), y_train, epochs=epochs,
                                seed=seed, loss=nn.functional.binary_cross_entropy_with_logits, **TEXT_FIT)  # fmt: skip
        with torch.inference_mode():
            test = {k: torch.from_numpy(v) for k, v in encoder.encode(test_texts).items()}
            predicted = torch.sigmoid(model(**test)).numpy() >= 0.5
        exact = float((predicted == (y_test > 0.5)).all(axis=1).mean())
        metrics = {"test_exact_match": round(exact, 4), "train_texts": len(train_texts), "test_texts": len(test_texts),
                   "epochs": epochs, "seed": seed}  # fmt: skip
        manifest = write_model_folder(
            model, output_dir, architecture=TOPICS.name, config=config, metrics=metrics,
            input_spec=dataclasses.replace(TOPICS.input_spec, maximum=encoder.vocab_size - 1),
            output_spec=OutputSpec(kind="multilabel", labels=LABELS), tokenizer_file=tokenizer_file,
        )  # fmt: skip
    logger.info("wrote %s: every label right on %.4f of %d held-out texts", output_dir, exact, len(test_texts))
    return manifest


TEXT_FIT = {"lr": 1e-2, "batch_size": 32}  # the text examples' optimiser settings


def _fit_classifier(
    model: nn.Module,
    x: np.ndarray | dict[str, np.ndarray],
    y: np.ndarray,
    *,
    epochs: int,
    seed: int,
    lr: float = 2e-3,
    batch_size: int = 64,
    loss=nn.functional.cross_entropy,
) -> nn.Module:
    """Adam on ``loss`` (cross-entropy), mini-batches of ``batch_size``. ``x`` is one array, or named inputs
    (``input_ids``, ``attention_mask``) passed to ``forward`` by name; the logits are the first output when forward
    returns a tuple."""
    torch.manual_seed(seed)
    named = isinstance(x, dict)
    inputs = {name: torch.from_numpy(array) for name, array in x.items()} if named else torch.from_numpy(x)
    labels = torch.from_numpy(y)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=generator)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            optimizer.zero_grad()
            output = model(**{name: tensor[idx] for name, tensor in inputs.items()}) if named else model(inputs[idx])
            logits = output[0] if isinstance(output, tuple) else output
            loss(logits, labels[idx]).backward()
            optimizer.step()
    return model.eval()


def _accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.inference_mode():
        output = model(torch.from_numpy(x))
    logits = output[0] if isinstance(output, tuple) else output
    return float((logits.argmax(dim=1).numpy() == y).mean())


TRAINERS = {
    "digits_cnn": train,
    "linnerud_mlp": train_linnerud,
    "tutorial_cnn": train_tutorial_cnn,
    "wine_mlp": train_wine,
    "shapes_cnn": train_shapes,
    "topics_text": train_topics,
    "topics_multilabel": train_topics_multilabel,
    "transformers_classifier": train_transformers,
    "transformers_embeddings": functools.partial(train_transformers, embeddings=True),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="outputs", help="where to write the model folder (default: outputs)")
    parser.add_argument("--architecture", choices=sorted(TRAINERS), default="digits_cnn")
    parser.add_argument("--epochs", type=int, help="default: each trainer's own")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX export (serving then uses PyTorch)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    options = {"seed": args.seed} if args.epochs is None else {"seed": args.seed, "epochs": args.epochs}
    TRAINERS[args.architecture](args.output_dir, **options)
    if not args.no_onnx:
        add_onnx_export(args.output_dir)


if __name__ == "__main__":
    main()
