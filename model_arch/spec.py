"""What a model takes and gives: the input and output specs stored in a model folder's manifest.

The training side writes these specs into ``manifest.json`` (see ``model_folder.weights``); the serving
side (``serving.inputs``, ``serving.predictor``) validates requests and renders answers from them. Nothing
in ``score.py`` knows that the demo model reads 8×8 digits: it is all here, as data.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from model_arch.images import ImageSpec, read_images

MAX_ROW_VALUES = 50_000_000  # one row of a spec: a 3×4096×4096 image is about this
DTYPES = ("float32", "int64")  # int64: token ids, attention masks, integer categories
DYNAMIC = -1  # a shape entry that marks a dynamic axis (a text's length in tokens): any length from 1


@dataclass(frozen=True)
class InputSpec:
    """One model input: the shape of a single row, the value range clients send, and the preprocessing.

    A client sends rows of raw values (for the digits: 64 pixel intensities 0-16). The model receives
    ``(row - subtract) / divide`` as ``dtype``, shaped ``(batch, *shape)``.

    ``dtype`` ``int64`` is for whole numbers the model takes as they are (token ids, an attention mask, an integer
    category): no ``subtract``/``divide``, and ``minimum``/``maximum`` bound them. A ``shape`` entry of -1 marks a
    dynamic axis (the sequence length of a text): any length from 1, the same for every row of one batch. A model
    with several inputs (``input_ids`` and ``attention_mask``) lists one ``InputSpec`` per input, in ``forward``
    order (``model_folder.manifest.Manifest.inputs``).

    ``subtract`` and ``divide`` are one number for every value, or one number per entry of the row's first axis:
    per feature for a flat row ``(features,)`` (standardisation: the training set's means and standard
    deviations), per channel for an image ``(channels, height, width)`` (per-channel mean and std, in the units
    clients send: for pixels 0-255 and ImageNet's mean 0.485, ``subtract`` is 0.485 × 255).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    minimum: float | None = None
    maximum: float | None = None
    subtract: float | tuple[float, ...] = 0.0
    divide: float | tuple[float, ...] = 1.0
    description: str = ""
    names: tuple[str, ...] = ()  # tabular input: one name per value; rows may then be objects keyed by name
    image: ImageSpec | None = None  # image input: how an encoded picture becomes a row (model_arch.images)

    def __post_init__(self) -> None:
        _require(isinstance(self.name, str) and self.name, f"InputSpec.name must be non-empty text, got {self.name!r}")
        _require(isinstance(self.description, str), f"InputSpec.description must be text, got {self.description!r}")
        _require(
            isinstance(self.shape, (list, tuple)) and all(_is_int(d) for d in self.shape),
            f"InputSpec.shape must be a list of whole numbers, got {self.shape!r}",
        )
        _require(
            isinstance(self.names, (list, tuple)) and all(isinstance(n, str) for n in self.names),
            f"InputSpec.names must be a list of strings, got {self.names!r}",
        )
        _require(len(set(self.names)) == len(self.names), f"InputSpec.names has repeats: {list(self.names)}")
        for bound in ("minimum", "maximum"):
            value = getattr(self, bound)
            _require(value is None or _is_number(value), f"InputSpec.{bound} must be a number or null, got {value!r}")
        if self.minimum is not None and self.maximum is not None:
            _require(self.minimum <= self.maximum, f"InputSpec.minimum {self.minimum} is above maximum {self.maximum}")
        object.__setattr__(self, "shape", tuple(self.shape))
        object.__setattr__(self, "names", tuple(self.names))
        for field_name in ("subtract", "divide"):
            object.__setattr__(self, field_name, self._scalar_or_per_axis(field_name, getattr(self, field_name)))
        if self.names and (len(self.shape) != 1 or len(self.names) != self.shape[0]):
            raise ValueError(f"InputSpec.names must name each of the {self.shape} values of a flat row")
        if not self.shape or any(d < 1 and d != DYNAMIC for d in self.shape):
            raise ValueError(
                f"InputSpec.shape must be positive dimensions (or -1 for a dynamic axis), got {self.shape}"
            )
        if math.prod(d for d in self.shape if d != DYNAMIC) > MAX_ROW_VALUES:
            raise ValueError(f"InputSpec.shape {self.shape} holds more than {MAX_ROW_VALUES:,} values per row")
        if self.dtype not in DTYPES:
            raise ValueError(f"InputSpec.dtype {self.dtype!r} is not supported; expected one of {list(DTYPES)}")
        if self.dtype == "int64":
            _require(
                self.subtract == 0.0 and self.divide == 1.0 and self.image is None,
                f"InputSpec {self.name!r} is int64: its values go to the model as they are, so it takes no subtract, "
                "divide or image",
            )
        if self.dynamic:
            _require(
                self.image is None and not self.names and not isinstance(self.subtract, tuple),
                f"InputSpec {self.name!r} has a dynamic axis (-1): it cannot also be an image, named features or "
                "normalised per entry",
            )
        if isinstance(self.image, dict):
            object.__setattr__(self, "image", ImageSpec.from_dict(self.image))
        if self.image is not None:
            _require(isinstance(self.image, ImageSpec), f"InputSpec.image must be an ImageSpec, got {self.image!r}")
            _require(
                len(self.shape) == 3 and self.shape[0] == self.image.channels,
                f"InputSpec.shape must be (channels, height, width) with {self.image.channels} channel(s) for "
                f"{self.image.mode} images, got {self.shape}",
            )
        divisors = self.divide if isinstance(self.divide, tuple) else (self.divide,)
        if any(d == 0 or not math.isfinite(d) for d in divisors):
            raise ValueError(f"InputSpec.divide must be finite non-zero numbers, got {self.divide}")

    def _scalar_or_per_axis(self, field_name: str, value: Any) -> float | tuple[float, ...]:
        """A number, or a list of numbers as long as the row's first axis (features, or channels)."""
        if isinstance(value, (list, tuple)):
            if not all(_is_number(v) for v in value):
                raise ValueError(f"InputSpec.{field_name} must be a number or a list of numbers, got {value!r}")
            if len(value) == 1:
                return float(value[0])
            if len(value) != self.shape[0]:
                raise ValueError(
                    f"InputSpec.{field_name} has {len(value)} values; expected one number, or one per entry of the "
                    f"row's first axis ({self.shape[0]}: a feature of a flat row, a channel of an image)"
                )
            return tuple(float(v) for v in value)
        if not _is_number(value):
            raise ValueError(f"InputSpec.{field_name} must be a number or a list of numbers, got {value!r}")
        return float(value)

    @functools.cached_property
    def _offsets(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``subtract`` and ``divide`` as float32 arrays broadcast over a row (None where they change nothing)."""
        per_axis = (self.shape[0],) + (1,) * (len(self.shape) - 1)

        def array(value: float | tuple[float, ...], identity: float) -> np.ndarray | None:
            if isinstance(value, tuple):
                return np.asarray(value, dtype=np.float32).reshape(per_axis)
            return None if value == identity else np.float32(value)

        return array(self.subtract, 0.0), array(self.divide, 1.0)

    @property
    def dynamic(self) -> bool:
        """True when an axis of the row has no fixed length (``-1``: a text's length in tokens)."""
        return DYNAMIC in self.shape

    @property
    def numpy_dtype(self) -> type:
        return np.int64 if self.dtype == "int64" else np.float32

    @property
    def size(self) -> int:
        """Number of values in one row (for a dynamic axis: counted as 1)."""
        return math.prod(abs(d) for d in self.shape)

    def example_shape(self, dynamic_length: int) -> tuple[int, ...]:
        """The row shape with each dynamic axis set to ``dynamic_length``: for warm-up and export checks."""
        return tuple(dynamic_length if d == DYNAMIC else d for d in self.shape)

    @functools.cached_property  # asked on every request
    def accepted_row_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Row shapes a client may send: flat, the full shape, or the full shape without leading 1s (none listed for
        a dynamic axis: ``accepts_row_shape`` matches those)."""
        if self.dynamic:
            return ()
        shapes = [(self.size,), self.shape]
        trimmed = self.shape
        while len(trimmed) > 1 and trimmed[0] == 1:
            trimmed = trimmed[1:]
            shapes.append(trimmed)
        return tuple(dict.fromkeys(shapes))  # ordered, without repeats

    def accepts_row_shape(self, shape: tuple[int, ...]) -> bool:
        """Whether a client's row of ``shape`` fits: one of ``accepted_row_shapes``, or the shape with each dynamic
        axis any length from 1."""
        if not self.dynamic:
            return shape in self.accepted_row_shapes
        return len(shape) == len(self.shape) and all(
            (d == DYNAMIC and n >= 1) or d == n for d, n in zip(self.shape, shape, strict=True)
        )

    def describe_row(self) -> str:
        """Human-readable description of one row, for error messages: '64 numbers (flat, or nested 8×8)'."""
        if self.dynamic:
            kind = "whole numbers" if self.dtype == "int64" else "numbers"
            if self.minimum is not None and self.maximum is not None:
                kind += f" from {_number(self.minimum)} to {_number(self.maximum)}"
            axes = "×".join("any length" if d == DYNAMIC else str(d) for d in self.shape)
            return f"{kind}, shaped {axes}"
        nested = [s for s in self.accepted_row_shapes if len(s) > 1]
        text = f"{self.size} numbers"
        if self.names:
            text += f" ({', '.join(self.names)}; or an object with those keys)"
        if nested:
            text += " (flat, or nested " + " or ".join("×".join(map(str, s)) for s in nested) + ")"
        if self.minimum is not None and self.maximum is not None:
            text += f" between {_number(self.minimum)} and {_number(self.maximum)}"
        return text

    def preprocess(self, rows: np.ndarray) -> np.ndarray:
        """Raw client rows (batch, any accepted row shape) -> model input (batch, *shape) float32 (int64 as they are).

        Training and serving both call this, so the model sees the same numbers in both.
        """
        if self.dtype == "int64":
            return np.asarray(rows, dtype=np.int64)
        if self.dynamic:
            return np.asarray(rows, dtype=np.float32)
        x = np.asarray(rows).reshape((-1, *self.shape))  # a view: the accepted row shapes all hold the same values
        subtract, divide = self._offsets
        if subtract is not None:  # each step casts to float32 first, then computes in float32
            x = np.subtract(x, subtract, dtype=np.float32)
        if divide is not None:
            x = np.divide(x, divide, dtype=np.float32)
        return np.asarray(x, dtype=np.float32)

    def decode_images(self, blobs: list[bytes]) -> np.ndarray:
        """Encoded images -> the model input ``(len(blobs), *shape)`` float32: each decoded by the image spec, then
        normalised by ``subtract``/``divide`` like any row. Training and serving both call this.

        Raises:
            ImageError: an image this spec cannot take (its status and code say which).
            ValueError: the spec takes no images.
        """
        return self.read_images(blobs)[0]

    def read_images(self, blobs: list[bytes]) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """``decode_images``, and per image what it was (format, width, height, mode, bytes), for logs and data
        collection. Serving calls this one.

        Raises:
            ImageError: an image this spec cannot take, its ``index`` set.
            ValueError: the spec takes no images.
        """
        if self.image is None:
            raise ValueError(f"InputSpec {self.name!r} takes rows of numbers, not images")
        rows, facts = read_images(blobs, self.image, self.shape)
        return self.preprocess(rows), facts

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["shape"] = list(self.shape)
        data["names"] = list(self.names)
        if self.image is None:
            del data["image"]  # a manifest without images reads as it always did
        else:
            data["image"] = self.image.to_dict()
        for field_name in ("subtract", "divide"):
            if isinstance(data[field_name], tuple):
                data[field_name] = list(data[field_name])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        return cls(**data)


@dataclass(frozen=True)
class OutputSpec:
    """What the model's output means.

    ``classification``: logits over ``labels``, answered as the predicted label and the softmax probabilities.
    ``multilabel``: one logit per label, each through a sigmoid; every label whose probability reaches
    ``threshold`` is predicted (none, one or several per row).
    ``regression``: one value per name in ``names``, answered as an object per row.
    ``embedding``: one vector of ``dimensions`` numbers per row. ``pooling`` turns a model output shaped
    ``(rows, tokens, dimensions)`` (a transformer's last hidden state) into one vector per row: ``cls`` takes the
    first token's, ``mean`` averages the tokens the ``attention_mask`` input marks; ``None``: the model pools itself.
    ``normalize`` scales each vector to length 1 (L2), for cosine similarity by dot product.

    ``select`` names the output that holds them when ``forward`` returns several: an index into a tuple or list
    (``(logits, features)``: ``select=0``), or a key of a dict (``{"logits": ...}``: ``select="logits"``). ``None``
    (the default): ``forward`` returns one tensor.
    """

    kind: str
    labels: tuple[Any, ...] = field(default_factory=tuple)
    names: tuple[str, ...] = field(default_factory=tuple)
    select: int | str | None = None
    threshold: float = 0.5
    pooling: str | None = None
    normalize: bool = False
    dimensions: int | None = None

    def __post_init__(self) -> None:
        _require(
            isinstance(self.labels, (list, tuple)) and all(isinstance(x, str) or _is_int(x) for x in self.labels),
            f"OutputSpec.labels must be a list of strings or whole numbers, got {self.labels!r}",
        )
        _require(
            isinstance(self.names, (list, tuple)) and all(isinstance(x, str) for x in self.names),
            f"OutputSpec.names must be a list of strings, got {self.names!r}",
        )
        _require(len(set(self.labels)) == len(self.labels), f"OutputSpec.labels has repeats: {list(self.labels)}")
        _require(len(set(self.names)) == len(self.names), f"OutputSpec.names has repeats: {list(self.names)}")
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "names", tuple(self.names))
        if self.kind not in KINDS:
            raise ValueError(f"OutputSpec.kind {self.kind!r} is not supported; expected one of {list(KINDS)}")
        _require(
            _is_number(self.threshold) and 0 < self.threshold < 1,
            f"OutputSpec.threshold must be a number between 0 and 1, got {self.threshold!r}",
        )
        if self.kind in ("classification", "multilabel") and not self.labels:
            raise ValueError("OutputSpec.labels must name at least one class")
        if self.kind == "regression" and not self.names:
            raise ValueError("OutputSpec.names must name at least one regression output")
        _require(self.pooling in POOLINGS, f"OutputSpec.pooling must be one of {list(POOLINGS)}, got {self.pooling!r}")
        _require(
            isinstance(self.normalize, bool), f"OutputSpec.normalize must be true or false, got {self.normalize!r}"
        )
        if self.kind == "embedding":
            _require(
                _is_int(self.dimensions) and 1 <= self.dimensions <= 65536,
                f"OutputSpec.dimensions must be the embedding's length (1 to 65536), got {self.dimensions!r}",
            )
        else:
            _require(
                self.pooling is None and not self.normalize and self.dimensions is None,
                f"OutputSpec.pooling, normalize and dimensions are for kind 'embedding', not {self.kind!r}",
            )
        valid_index = isinstance(self.select, int) and not isinstance(self.select, bool) and self.select >= 0
        if self.select is not None and not valid_index and not (isinstance(self.select, str) and self.select):
            raise ValueError(
                f"OutputSpec.select must be an index (0, 1, ...) or a dict key naming the scores; got {self.select!r}"
            )

    @property
    def width(self) -> int:
        """Values per row the model outputs."""
        if self.kind == "embedding":
            return self.dimensions
        return len(self.names) if self.kind == "regression" else len(self.labels)

    @property
    def labelled(self) -> bool:
        """True for the kinds whose values are probabilities over ``labels``."""
        return self.kind in ("classification", "multilabel")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind}
        if self.labels:
            data["labels"] = list(self.labels)
        if self.names:
            data["names"] = list(self.names)
        if self.select is not None:
            data["select"] = self.select
        if self.kind == "multilabel":
            data["threshold"] = self.threshold
        if self.kind == "embedding":
            data.update(pooling=self.pooling, normalize=self.normalize, dimensions=self.dimensions)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutputSpec:
        return cls(**data)


KINDS = ("classification", "multilabel", "regression", "embedding")
POOLINGS = (None, "cls", "mean")


def _require(condition: object, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    """A finite JSON number (booleans are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
