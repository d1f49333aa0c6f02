"""The request formats clients really send, each one a codec that decodes its requests and encodes its answers.

* ``rows``: ``{"data": rows}`` (the classic Azure ML samples) and ``{"input_data": ...}`` (MLflow-style);
* ``v2``: Open Inference Protocol ``{"inputs": [tensor]}``, answered in V2 shape;
* ``npy``: ``application/x-npy`` in, and out for a client that sends ``Accept: application/x-npy`` (with any
  request format; without it a .npy request is answered in JSON).

``decode`` picks the codec from the Content-Type and, for JSON, the document's top-level key; ``encode`` answers in
the request's own format, or as .npy when the client asked for it. Adding a format is adding a module here and a
line below. A text model's requests are read by ``decode_texts`` (``serving.codecs.texts``: the same JSON and V2
shapes holding strings, and ``text/plain``) and answered by the same codecs. Called by ``serving.http``.
"""

from __future__ import annotations

import functools

from model_arch.spec import InputSpec
from serving.codecs.json_body import JSON, parse_json
from serving.codecs.npy import NPY, NPY_CODEC
from serving.codecs.rows import DATA, INPUT_DATA
from serving.codecs.texts import TEXT_PLAIN, TextLimits, TextRequest, decode_texts
from serving.codecs.types import Codec, Decoded, ReplyContext
from serving.codecs.v2 import V2, V2_NUMERIC
from serving.errors import ClientError
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
CONTENT_TYPES = (JSON, NPY)
TEXT_CONTENT_TYPES = (JSON, TEXT_PLAIN)  # what a text model takes


def decode(body: bytes, content_type: str | None, spec: InputSpec, max_rows: int) -> Decoded:
    """Validate a request body of any accepted format against ``spec``.

    Raises:
        ClientError: 415 for a content type other than JSON or .npy, 400 for a body that is not the format it
            claims, 413 for too many rows, 422 for data that does not fit the model.
    """
    media_type = (content_type or JSON).split(";")[0].strip().lower()
    if media_type == NPY:
        return NPY_CODEC.decode(body, spec, max_rows)
    if media_type != JSON and not media_type.endswith("+json"):
        hint = (
            " (curl -d sends that unless you add -H 'Content-Type: application/json')"
            if media_type == "application/x-www-form-urlencoded"
            else ""
        )
        raise ClientError(
            415,
            "unsupported_content_type",
            f"Content-Type {media_type!r} is not accepted{hint}; send {JSON} (like {example_body(spec)}) or {NPY} "
            "(numpy.save of one array shaped (rows, ...))",
        )
    try:
        document = parse_json(body)
    except ClientError as err:  # the example is worded for a failed request only
        raise ClientError(err.status, err.code, f"{err.message}; expected JSON like {example_body(spec)}") from err
    if isinstance(document, dict):
        for codec in JSON_CODECS:
            if codec.key in document:
                return codec.decode(document, spec, max_rows, body)
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
    return '{"data": [[' + ", ".join(["0"] * min(spec.size, 3)) + (", ..." if spec.size > 3 else "") + "]]}"
