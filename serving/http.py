"""Answer one HTTP request to ``/score``, top to bottom: read the body, decode it, run the model, encode the answer;
a client's mistake becomes a JSON 4xx, and every ``POST`` one ``score`` log line.

``score.run()`` hands every request here (it is decorated with ``@rawhttp``, so this code sets the status codes).
``POST`` scores a batch in any format ``serving.codecs`` accepts; ``GET`` describes the model and the request
contract, ``HEAD`` answers like ``GET`` without the body, ``OPTIONS`` lists the methods. Every answer carries the
request id (added by the server) and the model's name and version. ``Accept: application/x-npy`` gets the model's
values as .npy instead of JSON. The ``score`` line records the request id, rows, status and the time spent decoding,
in the model and encoding.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import flask

from serving import codecs
from serving.codecs import ReplyContext
from serving.errors import ClientError
from serving.predictor import Predictor
from serving.settings import Settings

logger = logging.getLogger(__name__)
ALLOWED_METHODS = "GET, HEAD, POST, OPTIONS"
DISCARD_LIMIT = 16 * 1024 * 1024  # an oversized body is read and dropped up to this size, then the connection closes


def handle(request: flask.Request, predictor: Predictor, settings: Settings) -> flask.Response:
    """``request`` is the Flask request the inference server passes to a ``@rawhttp`` ``run()``."""
    method = request.method
    if method == "POST":
        return score(request, predictor, settings)
    if method in ("GET", "HEAD"):  # werkzeug sends no body for HEAD
        return _response(200, codecs.JSON, json.dumps(describe(predictor, settings)).encode(), predictor)
    if method == "OPTIONS":
        return flask.Response(b"", 200, {**_model_headers(predictor), "Allow": ALLOWED_METHODS})
    body = {"code": "method_not_allowed", "message": f"{method} is not served here; use one of {ALLOWED_METHODS}"}
    response = _response(405, codecs.JSON, json.dumps(body).encode(), predictor)
    response.headers["Allow"] = ALLOWED_METHODS
    return response


def score(request: flask.Request, predictor: Predictor, settings: Settings) -> flask.Response:
    """Read -> decode -> predict -> encode, timing each step for the ``score`` line."""
    timer = _Timer()
    environ = request.environ  # the WSGI environ, not werkzeug's header views: cheaper, and all that is needed
    record: dict[str, Any] = {"request_id": request_id(), "content_type": environ.get("CONTENT_TYPE")}
    try:
        body = read_body(request, settings.max_body_bytes)
        decoded = codecs.decode(body, record["content_type"], predictor.manifest.input, settings.max_batch_rows)
    except ClientError as err:
        record.update(status=err.status, code=err.code, parse_ms=timer.lap())
        response = _response(err.status, codecs.JSON, json.dumps(err.to_body()).encode(), predictor)
        record["bytes"] = response.content_length
        logger.info("score %s", _compact(record))
        return response
    record.update(protocol=decoded.protocol, rows=len(decoded.batch), parse_ms=timer.lap())
    try:
        prediction = predictor.predict(decoded.batch)
    except Exception:  # a fault in the model: log it with the request id, let the server answer a bare 500
        record.update(status=500, model_ms=timer.lap())
        logger.error("score %s", _compact(record))
        raise
    record["model_ms"] = timer.lap()
    context = ReplyContext(predictor.name, predictor.version, record["request_id"])
    answer, media_type = codecs.encode(prediction, decoded, context, environ.get("HTTP_ACCEPT", ""))
    response = _response(200, media_type, answer, predictor)
    record.update(status=200, render_ms=timer.lap(), bytes=len(answer))
    logger.info("score %s", _compact(record))
    return response


def read_body(request: flask.Request, limit: int) -> bytes:
    """The request body, refused before it is parsed (or kept) when it is larger than ``limit`` bytes.

    A body without Content-Length (chunked) is read in 64 KiB pieces, kept no further than ``limit``.

    Raises:
        ClientError: 413 when the body is (or turns out to be) larger than ``limit``; 400 when it ends before
            its declared length.
    """
    declared = request.content_length
    if declared is not None:
        if declared > limit:
            _discard(request.stream, DISCARD_LIMIT)
            raise _too_large(declared, limit)
        # The WSGI input itself, read to the declared length: werkzeug's stream wrapper around it costs a
        # measurable share of a small request (docs/performance.md).
        body = request.environ["wsgi.input"].read(declared)
        if len(body) < declared:
            raise ClientError(
                400,
                "incomplete_body",
                f"the body ended after {len(body)} of the {declared} bytes its Content-Length declared; send the "
                "whole body, with a Content-Length that matches it",
            )
        return body
    pieces, size = [], 0
    while piece := request.stream.read(64 * 1024):
        size += len(piece)
        if size > limit:
            _discard(request.stream, DISCARD_LIMIT)
            raise _too_large(size, limit)
        pieces.append(piece)
    return b"".join(pieces)


def describe(predictor: Predictor, settings: Settings) -> dict[str, Any]:
    """The model's metadata plus the request contract, for ``GET /score``."""
    return {
        **predictor.metadata(),
        "request": {
            "method": "POST",
            "content_types": list(codecs.CONTENT_TYPES),
            "formats": [codec.form for codec in codecs.CODECS],
            "example": codecs.example_body(predictor.manifest.input),
            "row": predictor.manifest.input.describe_row(),
            "max_batch_rows": settings.max_batch_rows,
            "max_body_bytes": settings.max_body_bytes,
        },
        "response": (
            {"predictions": "one label per row", "probabilities": "one list per row, one per label"}
            if predictor.manifest.output.kind == "classification"
            else {"predictions": "one object per row: " + ", ".join(predictor.manifest.output.names)}
        ),
    }


def request_id() -> str:
    """The id the server gave this request (the caller's ``x-request-id``, or one it generated)."""
    return getattr(flask.g, "request_id", None) or "-"


def _response(status: int, media_type: str, body: bytes, predictor: Predictor) -> flask.Response:
    return flask.Response(body, status, _model_headers(predictor), mimetype=media_type)


def _model_headers(predictor: Predictor) -> dict[str, str]:
    # x-ms-run-function-failed as the server's own AMLResponse sets it (it turns it to True on a 500). A plain
    # flask.Response is cheaper to build than an AMLResponse, and says the same.
    return {"x-model-name": predictor.name, "x-model-version": predictor.version, "x-ms-run-function-failed": "False"}


def _discard(stream: Any, most: int) -> None:
    """Read and drop what the client is still sending (up to ``most`` bytes, never kept), so that it can read
    the 413 instead of failing on a closed connection mid-upload; a larger upload is cut off."""
    dropped = 0
    while dropped < most and (piece := stream.read(64 * 1024)):
        dropped += len(piece)


def _compact(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"))


class _Timer:
    """Milliseconds since the previous lap, rounded for the log."""

    def __init__(self) -> None:
        self._last = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        elapsed, self._last = now - self._last, now
        return round(elapsed * 1e3, 3)


def _too_large(size: int, limit: int) -> ClientError:
    return ClientError(
        413,
        "body_too_large",
        f"the request body is {size} bytes; this endpoint accepts at most {limit} (MAX_BODY_BYTES). Send fewer rows "
        "per request.",
    )
