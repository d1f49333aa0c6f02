"""The demo data, shipped inside scikit-learn's wheel (nothing is downloaded): the 8×8 digits (1,797 images), the
wine measurements (178 rows, 13 named features, 3 classes) and the Linnerud exercise data (20 rows, 3 named
features, 3 targets).

The text examples read ``training/texts/topics.tsv`` (440 short texts in four topics, written for the demo and
shipped in the repository; ``training/texts/make_topics.py`` says how), through ``topic_texts``.

Training and the end-to-end test both call ``digits_split`` with the same seed, so the test scores exactly the
images training held out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

TOPICS_FILE = Path(__file__).with_name("texts") / "topics.tsv"


@dataclass(frozen=True)
class Split:
    """Raw client-side values, as a client would send them: ``x_*`` (n, features) float32, ``y_*`` the targets
    (digits: (n,) int64 labels 0-9; Linnerud: (n, 3) float32)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def digits_split(test_fraction: float = 0.2, seed: int = 0) -> Split:
    """A stratified train/test split of the digits, deterministic for a given seed."""
    from sklearn.datasets import load_digits  # training-only dependency, absent from the serving image
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return Split(x_train, y_train, x_test, y_test)


def wine_split(test_fraction: float = 0.25, seed: int = 0) -> Split:
    """A stratified train/test split of scikit-learn's wine data (178 rows, 13 raw measurements, 3 classes)."""
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    data = load_wine()
    x, y = data.data.astype(np.float32), data.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return Split(x_train, y_train, x_test, y_test)


def linnerud_split(test_rows: int = 4, seed: int = 0) -> Split:
    """A train/test split of the Linnerud data (20 rows), deterministic for a given seed."""
    from sklearn.datasets import load_linnerud

    data = load_linnerud()
    order = np.random.default_rng(seed).permutation(len(data.data))
    x, y = data.data.astype(np.float32)[order], data.target.astype(np.float32)[order]
    return Split(x[test_rows:], y[test_rows:], x[:test_rows], y[:test_rows])


SHAPES = ("circle", "square", "triangle", "cross")


def shapes_images(
    count: int, seed: int = 0, size: int = 64, image_format: str = "PNG"
) -> tuple[list[bytes], np.ndarray]:
    """``count`` encoded RGB pictures of one shape each (a circle, square, triangle or cross, of random size, place,
    rotation and colours, on a noisy background), and their labels (indices into ``SHAPES``). Drawn here with
    Pillow, so nothing is downloaded; the same seed gives the same bytes."""
    import io

    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    blobs, labels = [], rng.integers(0, len(SHAPES), count)
    for label in labels:
        background = rng.integers(0, 256, 3)
        color = (background + rng.integers(80, 176, 3)) % 256  # always far from the background on some channel
        noise = rng.normal(0, 8, (size, size, 3))
        picture = Image.fromarray(np.clip(background + noise, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(picture)
        radius = rng.uniform(size * 0.22, size * 0.4)
        cx, cy = rng.uniform(radius + 1, size - radius - 1, 2)
        angle = rng.uniform(0, 2 * np.pi)
        fill = tuple(int(c) for c in color)
        if SHAPES[label] == "circle":
            draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=fill)
        elif SHAPES[label] in ("square", "triangle"):
            corners = 4 if SHAPES[label] == "square" else 3
            points = [
                (
                    cx + radius * np.cos(angle + 2 * np.pi * k / corners),
                    cy + radius * np.sin(angle + 2 * np.pi * k / corners),
                )
                for k in range(corners)
            ]
            draw.polygon(points, fill=fill)
        else:
            width = radius * 0.45
            for turn in (angle, angle + np.pi / 2):
                dx, dy = np.cos(turn), np.sin(turn)
                nx, ny = -dy * width / 2, dx * width / 2
                (x0, y0), (x1, y1) = (cx - dx * radius, cy - dy * radius), (cx + dx * radius, cy + dy * radius)
                draw.polygon(
                    [(x0 + nx, y0 + ny), (x1 + nx, y1 + ny), (x1 - nx, y1 - ny), (x0 - nx, y0 - ny)], fill=fill
                )
        buffer = io.BytesIO()
        picture.save(buffer, image_format, **({"quality": 90} if image_format == "JPEG" else {}))
        blobs.append(buffer.getvalue())
    return blobs, labels.astype(np.int64)


@dataclass(frozen=True)
class TextSplit:
    """Texts as a client would send them, and their labels (indices into the topics)."""

    train_texts: list[str]
    y_train: np.ndarray
    test_texts: list[str]
    y_test: np.ndarray


def topic_texts(topics: tuple[str, ...], test_fraction: float = 0.25, seed: int = 0) -> TextSplit:
    """A stratified train/test split of ``training/texts/topics.tsv``, deterministic for a given seed."""
    from sklearn.model_selection import train_test_split

    rows = [line.split("\t", 1) for line in TOPICS_FILE.read_text(encoding="utf-8").splitlines()[1:] if line]
    texts = [text for _, text in rows]
    labels = np.array([topics.index(label) for label, _ in rows], dtype=np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        texts, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    return TextSplit(list(x_train), y_train, list(x_test), y_test)


def train_wordpiece(texts: list[str], path: str | Path, vocab_size: int) -> Path:
    """A WordPiece tokenizer (lower-cased, BERT's pre-tokenizer, ``[CLS] text [SEP]``, ``[PAD]`` id 0) trained by
    Hugging Face ``tokenizers`` on ``texts``, saved as a ``tokenizer.json`` at ``path``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tokenizer.token_to_id("[CLS]")), ("[SEP]", tokenizer.token_to_id("[SEP]"))],
    )
    tokenizer.save(str(path))
    return Path(path)
