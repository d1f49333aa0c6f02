"""Pictures as clients really send them, odd and hostile ones included: one table (``ODD_IMAGES``) that the image
decoding tests and the real-server tests both run. Every picture is made here with Pillow (or by hand, for the
crafted headers), nothing is downloaded."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class OddImage:
    """One picture and what the server must answer for it: 200, or the 4xx status and code."""

    name: str
    build: Callable[[], bytes]
    status: int = 200
    code: str = ""


def photo(width: int = 96, height: int = 72, seed: int = 0) -> Image.Image:
    """A picture of coloured noise: not a shape the example model knows, but a real image of the given size."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def encode(picture: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, image_format, **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` × ``height`` grayscale pixels, followed by almost no data: what a
    decompression bomb looks like before it is decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def exif_rotated() -> bytes:
    """A JPEG stored sideways with EXIF orientation 6 ("rotate 90° clockwise to view"), as phones write them."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(photo(), "JPEG", exif=exif.tobytes())


def animated_webp() -> bytes:
    frames = [photo(seed=s) for s in range(3)]
    return encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100, loop=0)


def sixteen_bit_png() -> bytes:
    ramp = (np.arange(96 * 72, dtype=np.uint32).reshape(72, 96) * 9).astype(np.uint16)
    return encode(Image.fromarray(ramp), "PNG")


def palette_with_transparency() -> bytes:
    picture = photo().convert("P")
    return encode(picture, "PNG", transparency=0)


def corrupt_png() -> bytes:
    data = bytearray(encode(photo(), "PNG"))
    middle = len(data) // 2
    data[middle : middle + 64] = b"\xff" * 64
    return bytes(data)


ODD_IMAGES = [
    OddImage("png-rgb", lambda: encode(photo(), "PNG")),
    OddImage("jpeg-rgb", lambda: encode(photo(), "JPEG", quality=90)),
    OddImage("jpeg-progressive", lambda: encode(photo(), "JPEG", progressive=True)),
    OddImage("webp", lambda: encode(photo(), "WEBP")),
    OddImage("webp-animated-first-frame", animated_webp),
    OddImage("png-grayscale", lambda: encode(photo().convert("L"), "PNG")),
    OddImage("png-palette", lambda: encode(photo().convert("P"), "PNG")),
    OddImage("png-palette-transparent", palette_with_transparency),
    OddImage("png-rgba", lambda: encode(photo().convert("RGBA"), "PNG")),
    OddImage("jpeg-cmyk", lambda: encode(photo().convert("CMYK"), "JPEG")),
    OddImage("png-16-bit", sixteen_bit_png),
    OddImage("jpeg-exif-rotated", exif_rotated),
    OddImage("png-one-pixel", lambda: encode(photo(1, 1), "PNG")),
    OddImage("png-very-wide", lambda: encode(photo(2000, 20), "PNG")),
    OddImage("empty", lambda: b"", 400, "empty_image"),
    OddImage("text", lambda: b"this is not a picture, it is a sentence", 400, "invalid_image"),
    OddImage("html", lambda: b"<!doctype html><html><body>404</body></html>", 400, "invalid_image"),
    OddImage("svg", lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>', 400, "invalid_image"),
    OddImage("truncated-jpeg", lambda: encode(photo(), "JPEG")[:600], 400, "invalid_image"),
    OddImage("truncated-png", lambda: encode(photo(), "PNG")[:900], 400, "invalid_image"),
    OddImage("png-signature-only", lambda: encode(photo(), "PNG")[:20], 400, "invalid_image"),
    OddImage("corrupt-png", corrupt_png, 400, "invalid_image"),
    OddImage("gif-not-allowed", lambda: encode(photo().convert("P"), "GIF"), 415, "unsupported_image_format"),
    OddImage("bmp-not-allowed", lambda: encode(photo(), "BMP"), 415, "unsupported_image_format"),
    OddImage("tiff-not-allowed", lambda: encode(photo(), "TIFF"), 415, "unsupported_image_format"),
    OddImage("pdf", lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", 415, "unsupported_image_format"),
    OddImage("bomb-100k-by-100k", lambda: png_header_only(100_000, 100_000), 413, "image_too_large"),
    OddImage("just-over-the-pixel-cap", lambda: png_header_only(7_000, 7_000), 413, "image_too_large"),
]
