"""Encoded images found in a request -> the model batch, or a 4xx that says which image was wrong and why.

Every codec that carries pictures (a raw ``image/*`` body, multipart parts, base64 strings in JSON or V2 ``BYTES``)
ends here with a list of byte strings; ``InputSpec.read_images`` (``model_arch.images``, the function training
calls too) turns them into rows. This module adds what only a request needs: the cap on images per request,
base64 as clients really write it, and error messages that name the image.
"""

from __future__ import annotations

import binascii
import re
from typing import Any

import numpy as np

from model_arch.images import ImageError
from model_arch.spec import InputSpec
from serving.errors import ClientError
from serving.inputs import describe_value

_DATA_URL = re.compile(r"data:[\w.+-]*/?[\w.+-]*(?:;[\w.+-]+=[\w.+-]+)*;base64,", re.ASCII)
_WHITESPACE = re.compile(rb"[ \t\r\n]+")


def takes_images(spec: InputSpec) -> bool:
    return spec.image is not None


def images_to_batch(
    blobs: list[bytes], spec: InputSpec, max_images: int, where: str, indexed: bool = True
) -> tuple[np.ndarray, tuple[dict[str, Any], ...]]:
    """``blobs`` (encoded images, in request order) -> the model batch and what each image was. ``where`` names
    them in messages (``"data"``; ``indexed``: each as ``where[i]``).

    Raises:
        ClientError: 422 when the model takes no images or none were sent; 413 for more than ``max_images``;
            the image's own status (400, 413, 415, 422) for the first image it cannot take, naming it.
    """
    if not takes_images(spec):
        raise ClientError(
            415,
            "images_not_accepted",
            f"this model takes rows of numbers ({spec.describe_row()}), not images; send JSON rows or .npy",
        )
    if not blobs:
        raise ClientError(422, "empty_batch", f"{where} holds no images; send at least one")
    if len(blobs) > max_images:
        raise ClientError(
            413,
            "too_many_images",
            f"{where} holds {len(blobs)} images; at most {max_images} per request (MAX_IMAGES); split it",
        )
    try:
        batch, facts = spec.read_images(blobs)
    except ImageError as err:
        which = f"{where}[{err.index}]" if indexed else where
        raise ClientError(err.status, err.code, f"{which}: {err.message}") from None
    return batch, tuple(facts)


def base64_images(values: list[Any], where: str) -> list[bytes]:
    """Base64 strings as clients write them -> image bytes. Accepted: the line breaks ``base64.encodebytes`` puts
    every 76 characters, spaces, a ``data:image/...;base64,`` prefix, URL-safe letters and missing padding.

    Raises:
        ClientError: 422 for an item that is not a string; 400 for one that is not base64 (silently passing it on
            as raw bytes, as some servers do, would only turn it into a vaguer image error).
    """
    blobs = []
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise ClientError(
                422,
                "invalid_image_item",
                f"{where}[{index}] is {describe_value(value)}; each image is a base64 string of the file's bytes",
            )
        blobs.append(decode_base64(value, f"{where}[{index}]"))
    return blobs


def decode_base64(text: str, where: str) -> bytes:
    """One base64 string (see ``base64_images``) -> bytes.

    Raises:
        ClientError: 400 ``invalid_base64`` naming ``where`` and the first offending character.
    """
    prefix = _DATA_URL.match(text)
    if prefix:
        text = text[prefix.end() :]
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        bad = next(i for i, c in enumerate(text) if ord(c) > 127)
        raise _invalid_base64(where, f"a non-ASCII character {text[bad]!r} at position {bad}") from None
    raw = _WHITESPACE.sub(b"", raw)
    if b"-" in raw or b"_" in raw:  # the URL-safe alphabet
        raw = raw.replace(b"-", b"+").replace(b"_", b"/")
    raw += b"=" * (-len(raw) % 4)
    try:
        return binascii.a2b_base64(raw, strict_mode=True)
    except binascii.Error as err:
        bad = next((i for i, c in enumerate(raw) if c not in _ALPHABET), None)
        found = f"{chr(raw[bad])!r} at position {bad}" if bad is not None else str(err)
        raise _invalid_base64(where, found) from None


_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def _invalid_base64(where: str, found: str) -> ClientError:
    return ClientError(
        400,
        "invalid_base64",
        f"{where} is not base64 ({found}); send the image file's bytes base64-encoded "
        "(base64.b64encode(open(path, 'rb').read()).decode())",
    )
