"""The request formats clients really send, each one a codec that decodes its requests and encodes its answers.

* ``rows``: ``{"data": rows}`` (the classic Azure ML samples) and ``{"input_data": ...}`` (MLflow-style);
* ``v2``: Open Inference Protocol ``{"inputs": [tensor]}``, answered in V2 shape;
* ``npy``: ``application/x-npy`` in, and out for a client that sends ``Accept: application/x-npy`` (with any
  request format; without it a .npy request is answered in JSON);
* for a model that takes images, also ``image_body`` (a raw ``image/*`` body) and ``multipart`` (files in parts
  named ``file``); ``rows`` and ``v2`` take base64 images there too (``serving.images``).

``decode`` picks the codec from the Content-Type and, for JSON, the document's top-level key; ``encode`` answers in
the request's own format, or as .npy when the client asked for it. Adding a format is adding a module here and a
line below. A text model's requests are read by ``decode_texts`` (``serving.codecs.texts``: the same JSON and V2
shapes holding strings, and ``text/plain``) and answered by the same codecs. Called by ``serving.http``.
"""

from __future__ import annotations

import functools

from model_arch.spec import InputSpec
from serving.codecs.image_body import IMAGE_BODY_CODEC
from serving.codecs.json_body import JSON, parse_json
from serving.codecs.multipart import MULTIPART, MULTIPART_CODEC
from serving.codecs.npy import NPY, NPY_CODEC
from serving.codecs.rows import DATA, INPUT_DATA
from serving.codecs.texts import TEXT_PLAIN, TextLimits, TextRequest, decode_texts
from serving.codecs.types import Codec, Decoded, ReplyContext
from serving.codecs.v2 import V2, V2_NUMERIC
from serving.errors import ClientError
from serving.images import takes_images
from serving.inputs import describe_keys, json_type
from serving.predictor import Prediction

__all__ = [
    "CODECS",
    "CONTENT_TYPES",
    "JSON",
    "NPY",
    "TEXT_CONTENT_TYPES",
    "V2_NUMERIC",
    "Decoded",
    "ReplyContext",
    "TextLimits",
    "TextRequest",
    "decode",
    "decode_texts",
    "encode",
]

JSON_CODECS = (DATA, INPUT_DATA, V2)  # tried in this order: the first whose key the document has reads it
CODECS: tuple[Codec, ...] = (*JSON_CODECS, NPY_CODEC)
IMAGE_CODECS: tuple[Codec, ...] = (IMAGE_BODY_CODEC, MULTIPART_CODEC)  # for a model that takes images
CONTENT_TYPES = (JSON, NPY)
IMAGE_CONTENT_TYPES = ("image/jpeg, image/png, ... (one image)", MULTIPART)
OCTET_STREAM = "application/octet-stream"
TEXT_CONTENT_TYPES = (JSON, TEXT_PLAIN)  # what a text model takes


def codecs_for(spec: InputSpec) -> tuple[Codec, ...]:
    """The request formats a model with this input takes, for ``GET /score`` and the OpenAPI documents."""
    return (*CODECS, *IMAGE_CODECS) if takes_images(spec) else CODECS


def content_types_for(spec: InputSpec) -> tuple[str, ...]:
    return (*CONTENT_TYPES, *IMAGE_CONTENT_TYPES) if takes_images(spec) else CONTENT_TYPES


def decode(body: bytes, content_type: str | None, spec: InputSpec, max_rows: int, max_images: int = 64) -> Decoded:
    """Validate a request body of any accepted format against ``spec``.

    Raises:
        ClientError: 415 for a content type this model does not take, 400 for a body that is not the format it
            claims, 413 for too many rows or images, 422 for data that does not fit the model, the image's own
            4xx for an image the model cannot take.
    """
    media_type = (content_type or JSON).split(";")[0].strip().lower()
    if media_type == NPY:
        return NPY_CODEC.decode(body, spec, max_rows)
    if media_type.startswith("image/") or (media_type == OCTET_STREAM and takes_images(spec)):
        return IMAGE_BODY_CODEC.decode(body, spec, max_images)
    if media_type == MULTIPART:
        if not takes_images(spec):
            raise _unsupported(media_type, spec)
        return MULTIPART_CODEC.decode(body, content_type or "", spec, max_images)
    if media_type != JSON and not media_type.endswith("+json"):
        raise _unsupported(media_type, spec)
    try:
        document = parse_json(body)
    except ClientError as err:  # the example is worded for a failed request only
        raise ClientError(err.status, err.code, f"{err.message}; expected JSON like {example_body(spec)}") from err
    if isinstance(document, dict):
        for codec in JSON_CODECS:
            if codec.key in document:
                return codec.decode(document, spec, max_rows, body, max_images)
    found = (
        f"an object with keys {describe_keys(document)}"
        if isinstance(document, dict)
        else f"a JSON {json_type(document)}"
    )
    raise ClientError(
        400,
        "missing_data",
        f'expected a JSON object with a "data" field holding a list of rows, like {example_body(spec)} '
        '(or "input_data", or V2 "inputs"); got ' + found,
    )


def encode(prediction: Prediction, decoded: Decoded, context: ReplyContext, accept: str = "") -> tuple[bytes, str]:
    """The answer body and its Content-Type: .npy when ``accept`` asks for it; else JSON, in the request's own
    format (a .npy request, which has no JSON form of its own, is answered like ``{"data": rows}``)."""
    json_codec = decoded.codec if decoded.codec.media_type == JSON else DATA
    codec = NPY_CODEC if NPY in accept else json_codec
    return codec.encode(prediction, decoded, context), codec.media_type


@functools.cache  # a spec is fixed for a worker's life; its example is quoted in error messages only
def example_body(spec: InputSpec) -> str:
    """A short valid JSON body for ``spec``, quoted in error messages and in ``GET /score``."""
    if takes_images(spec):
        return '{"data": ["<base64 of an image file>"]}'
    return '{"data": [[' + ", ".join(["0"] * min(spec.size, 3)) + (", ..." if spec.size > 3 else "") + "]]}"


def _unsupported(media_type: str, spec: InputSpec) -> ClientError:
    hint = (
        " (curl -d sends that unless you add -H 'Content-Type: application/json')"
        if media_type == "application/x-www-form-urlencoded"
        else ""
    )
    images = (
        f", an image file as the body (Content-Type: image/jpeg, image/png, ...) or {MULTIPART} with the images in "
        "parts named file (curl -F file=@photo.jpg)"
        if takes_images(spec)
        else ""
    )
    return ClientError(
        415,
        "unsupported_content_type",
        f"Content-Type {media_type!r} is not accepted{hint}; send {JSON} (like {example_body(spec)}), {NPY} "
        f"(numpy.save of one array shaped (rows, ...)){images}",
    )
