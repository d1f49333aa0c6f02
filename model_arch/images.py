"""Images as a model input: how an encoded picture (JPEG, PNG, WEBP bytes) becomes one row of the model's input.

An image model's ``InputSpec`` carries an ``ImageSpec``: the formats accepted, the colour mode, whether EXIF
orientation is applied, the resize and centre crop, and a pixel scale. ``decode_image`` applies it and returns the
row in the spec's value units, ``(channels, height, width)`` float32; the spec's ``subtract``/``divide`` (per
channel: mean and std) then normalise it, exactly as they do for rows of numbers. Training and serving both call
``InputSpec.decode_images``, so the same bytes give the same tensor in both.

Hostile or odd input is refused before it costs much: only the allow-listed decoders run, the pixel count is
checked from the header before the pixels are decoded, and every failure is an ``ImageError`` carrying the HTTP
status and code serving answers with. Pillow is imported only when an image is decoded.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box")
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")  # what an ImageSpec may allow; the default allows three
# Leading bytes of common image formats: to say which format a refused image is, without running its decoder.
SIGNATURES = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"\x00\x00\x01\x00": "ICO",
    b"8BPS": "PSD",
    b"%PDF": "PDF",
    b"SIMPLE  =": "FITS",
}


class ImageError(ValueError):
    """An image this model cannot take, with the HTTP status and the stable code serving answers with."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.index: int | None = None  # which image of a batch, set by ``read_images``


@dataclass(frozen=True)
class ImageSpec:
    """How an encoded image becomes one row ``(channels, height, width)`` of the model's input.

    Attributes:
        mode: ``RGB`` (3 channels) or ``L`` (grayscale, 1 channel); every image is converted to it (palette, RGBA,
            CMYK and 16-bit images included; transparency is dropped, as Pillow's ``convert`` drops it).
        formats: the decoders allowed to run (Pillow format names); anything else is refused unopened.
        exif_transpose: turn the image upright by its EXIF orientation first (phone photos), as training did.
        resize: the shorter side's length after resizing (aspect kept), or ``[height, width]`` exactly; None: no
            resize (the image must then be at least the input size).
        interpolation: the resampling filter of the resize.
        center_crop: crop the centre to the input's height and width after the resize (else the resize must give
            that size exactly).
        scale: multiplies the 0-255 pixel values, into the units the spec's ``subtract``/``divide`` and value range
            use (1: pixels as they are; 16/255 for the digits demo, whose data is 0-16).
        max_pixels: the most pixels (width × height) an image may declare; checked before decoding.
    """

    mode: str = "RGB"
    formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP")
    exif_transpose: bool = True
    resize: int | tuple[int, int] | None = None
    interpolation: str = "bilinear"
    center_crop: bool = True
    scale: float = 1.0
    max_pixels: int = 40_000_000

    def __post_init__(self) -> None:
        object.__setattr__(self, "formats", tuple(self.formats))
        if isinstance(self.resize, list):
            object.__setattr__(self, "resize", tuple(self.resize))
        if self.mode not in ("RGB", "L"):
            raise ValueError(f"ImageSpec.mode must be 'RGB' or 'L', got {self.mode!r}")
        if not self.formats or any(f not in FORMATS for f in self.formats):
            raise ValueError(f"ImageSpec.formats must name some of {list(FORMATS)}, got {list(self.formats)}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"ImageSpec.interpolation must be in {list(INTERPOLATIONS)}, got {self.interpolation!r}")
        resize_ok = self.resize is None or (
            _positive_int(self.resize)
            or (isinstance(self.resize, tuple) and len(self.resize) == 2 and all(map(_positive_int, self.resize)))
        )
        if not resize_ok:
            raise ValueError(f"ImageSpec.resize must be a length, [height, width] or null, got {self.resize!r}")
        if not isinstance(self.exif_transpose, bool) or not isinstance(self.center_crop, bool):
            raise ValueError("ImageSpec.exif_transpose and center_crop must be true or false")
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)) or not 0 < self.scale < 1e6:
            raise ValueError(f"ImageSpec.scale must be a positive number, got {self.scale!r}")
        if not _positive_int(self.max_pixels, most=10**10):
            raise ValueError(f"ImageSpec.max_pixels must be a whole number above 0, got {self.max_pixels!r}")

    @property
    def channels(self) -> int:
        return 3 if self.mode == "RGB" else 1

    def describe(self) -> str:
        """The pipeline in one line, for ``GET /score`` and the doctor."""
        steps = [f"decode {'/'.join(self.formats)} (at most {self.max_pixels:,} pixels)"]
        if self.exif_transpose:
            steps.append("apply EXIF orientation")
        steps.append(f"convert to {self.mode}")
        if isinstance(self.resize, int):
            steps.append(f"resize the shorter side to {self.resize} ({self.interpolation})")
        elif self.resize:
            steps.append(f"resize to {self.resize[0]}×{self.resize[1]} ({self.interpolation})")
        if self.center_crop:
            steps.append("crop the centre")
        if self.scale != 1:
            steps.append(f"multiply by {self.scale:g}")
        return ", ".join(steps)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["formats"] = list(self.formats)
        if isinstance(self.resize, tuple):
            data["resize"] = list(self.resize)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageSpec:
        if not isinstance(data, dict):
            raise ValueError(f"InputSpec.image must be an object, got {data!r}")
        return cls(**data)


def read_images(blobs: list[bytes], image: ImageSpec, shape: tuple[int, ...]) -> tuple[np.ndarray, list[dict]]:
    """Encoded images -> their rows ``(len(blobs), *shape)`` float32 and, per image, what it was (``read_image``).

    Raises:
        ImageError: the first image this spec cannot take, with its ``index`` set.
    """
    rows, facts = [], []
    for index, blob in enumerate(blobs):
        try:
            row, fact = read_image(blob, image, shape)
        except ImageError as err:
            err.index = index
            raise
        rows.append(row)
        facts.append(fact)
    return np.stack(rows), facts


def decode_image(data: bytes, image: ImageSpec, shape: tuple[int, ...]) -> np.ndarray:
    """Encoded image bytes -> one row ``shape`` = ``(channels, height, width)`` float32, pixels × ``image.scale``.

    Raises:
        ImageError: see ``read_image``.
    """
    return read_image(data, image, shape)[0]


def read_image(data: bytes, image: ImageSpec, shape: tuple[int, ...]) -> tuple[np.ndarray, dict[str, Any]]:
    """Encoded image bytes -> one row (see ``decode_image``) and what the image was, before any step changed it:
    ``{"format", "width", "height", "mode", "bytes"}`` (for logs and data collection; never the pixels).

    Raises:
        ImageError: empty, not an image, a format not allowed, more pixels than allowed, truncated or corrupt, or
            smaller than the input without a resize.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise ImageError(400, "empty_image", "the image is empty (0 bytes)")
    height, width = shape[1], shape[2]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            picture = Image.open(io.BytesIO(data), formats=list(image.formats))
    except UnidentifiedImageError:
        raise _not_an_allowed_image(data, image) from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        raise ImageError(413, "image_too_large", f"the image declares too many pixels ({err})") from None
    except (OSError, ValueError, SyntaxError, struct_errors()) as err:
        raise ImageError(400, "invalid_image", f"the {_format_of(data)} image's header is damaged ({err})") from None
    pixels = picture.width * picture.height
    facts = {
        "format": picture.format,
        "width": picture.width,
        "height": picture.height,
        "mode": picture.mode,
        "bytes": len(data),
    }
    if pixels > image.max_pixels:
        raise ImageError(
            413,
            "image_too_large",
            f"the image is {picture.width}×{picture.height} ({pixels:,} pixels); this model takes at most "
            f"{image.max_pixels:,}. Resize it before sending.",
        )
    try:
        if getattr(picture, "n_frames", 1) > 1:
            picture.seek(0)  # an animation: its first frame
        target = _resized_size(picture.width, picture.height, image, height, width)
        if picture.format == "JPEG" and target != (picture.width, picture.height):
            picture.draft(image.mode, target)  # decode at the smallest JPEG scale still at least the target size
        picture.load()
        if image.exif_transpose:
            picture = ImageOps.exif_transpose(picture)
        picture = _to_mode(picture, image.mode)
        target = _resized_size(picture.width, picture.height, image, height, width)
        if target != (picture.width, picture.height):
            picture = picture.resize(target, _resample(image.interpolation))
    except ImageError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError, struct_errors()) as err:
        raise ImageError(
            400, "invalid_image", f"the {_format_of(data)} image is truncated or corrupt ({err}); send the whole file"
        ) from None
    return _cropped_row(picture, image, height, width), facts


def _cropped_row(picture: Any, image: ImageSpec, height: int, width: int) -> np.ndarray:
    if (
        picture.width < width
        or picture.height < height
        or (not image.center_crop and (picture.width, picture.height) != (width, height))
    ):
        raise ImageError(
            422,
            "wrong_image_size",
            f"the image is {picture.width}×{picture.height} after preprocessing; this model takes {width}×{height}"
            + ("" if image.resize else " and does not resize"),
        )
    left, top = (picture.width - width) // 2, (picture.height - height) // 2
    pixels = np.asarray(picture, dtype=np.uint8)[top : top + height, left : left + width]
    # HWC -> CHW, laid out as CHW: a model that flattens with x.view needs a contiguous tensor
    row = pixels.reshape(height, width, -1).transpose(2, 0, 1).astype(np.float32, order="C")
    return row * np.float32(image.scale) if image.scale != 1 else row


def _resized_size(w: int, h: int, image: ImageSpec, height: int, width: int) -> tuple[int, int]:
    """(width, height) after the resize step."""
    if image.resize is None:
        return w, h
    if isinstance(image.resize, tuple):
        return image.resize[1], image.resize[0]
    shorter = min(w, h)
    return max(1, round(w * image.resize / shorter)), max(1, round(h * image.resize / shorter))


def _to_mode(picture: Any, mode: str) -> Any:
    """Any Pillow mode -> ``mode``; 16-bit and float images are brought to 8 bits first by their range."""
    from PIL import Image

    if picture.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(picture, dtype=np.float64)
        top = 65535.0 if picture.mode.startswith("I;16") else max(1.0, float(values.max()))
        picture = Image.fromarray(np.clip(values / top * 255.0, 0, 255).astype(np.uint8), mode="L")
    if picture.mode == "P" and "transparency" in picture.info:
        picture = picture.convert("RGBA")
    return picture if picture.mode == mode else picture.convert(mode)


def _resample(name: str) -> int:
    from PIL import Image

    return getattr(Image.Resampling, name.upper())


def _format_of(data: bytes) -> str:
    return next((name for magic, name in SIGNATURES.items() if data.startswith(magic)), "") or (
        "WEBP" if data[:4] == b"RIFF" and data[8:12] == b"WEBP" else "unknown"
    )


def _not_an_allowed_image(data: bytes, image: ImageSpec) -> ImageError:
    found = _format_of(data)
    accepted = ", ".join(image.formats)
    if found in image.formats:  # its signature, but no decoder could read its header: cut short or damaged
        return ImageError(
            400,
            "invalid_image",
            f"the {found} image ({len(data):,} bytes) is cut short or damaged before the end of its header; send the "
            "whole file",
        )
    if found != "unknown":
        return ImageError(
            415,
            "unsupported_image_format",
            f"the image is {found}; this model accepts {accepted}. Convert it to one of those before sending.",
        )
    return ImageError(
        400,
        "invalid_image",
        f"the {len(data):,} bytes received are not an image in an accepted format ({accepted}); they start with "
        f"{data[:12]!r}",
    )


def struct_errors() -> type[Exception]:
    import struct

    return struct.error


def _positive_int(value: object, most: int = 100_000) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= most
