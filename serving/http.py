"""Answer one HTTP request to ``/score``: check the size, decode, predict, encode, with JSON errors for a
client's mistakes.

``score.run()`` hands every request here (it is decorated with ``@rawhttp``, so this code sets the status
codes). ``POST`` scores a batch in any format ``serving.protocols`` accepts; ``GET`` describes the model and
the request contract. Every answer carries the request id (added by the server) and the model's name and
version.
"""

from __future__ import annotations

import logging
from typing import Any

import flask
from azureml_inference_server_http.api.aml_response import AMLResponse

from serving import protocols
from serving.errors import ClientError
from serving.predictor import Predictor
from serving.settings import Settings

logger = logging.getLogger(__name__)


def handle(request: flask.Request, predictor: Predictor, settings: Settings) -> AMLResponse:
    """``request`` is the Flask request the inference server passes to a ``@rawhttp`` ``run()``."""
    if request.method == "GET":
        return json_response(200, describe(predictor, settings), predictor)
    try:
        body = read_body(request, settings.max_body_bytes)
        decoded = protocols.decode(body, request.content_type, predictor.manifest.input, settings.max_batch_rows)
    except ClientError as err:
        logger.info("rejected request %s: %d %s", request_id(), err.status, err.code)
        return json_response(err.status, err.to_body(), predictor)
    answer = protocols.encode(
        predictor.predict(decoded.batch), decoded, predictor.name, predictor.version, request_id()
    )
    return json_response(200, answer, predictor)


def read_body(request: flask.Request, limit: int) -> bytes:
    """The request body, refused before it is read when it declares more than ``limit`` bytes.

    Raises:
        ClientError: 413 when the body is (or turns out to be) larger than ``limit``.
    """
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(declared, limit)
    body = request.stream.read(limit + 1)  # a body without Content-Length is read no further than this
    if len(body) > limit:
        raise _too_large(len(body), limit)
    return body


def describe(predictor: Predictor, settings: Settings) -> dict[str, Any]:
    """The model's metadata plus the request contract, for ``GET /score``."""
    return {
        **predictor.metadata(),
        "request": {
            "method": "POST",
            "content_types": list(protocols.CONTENT_TYPES),
            "formats": ['{"data": rows}', '{"input_data": rows}', 'V2 {"inputs": [tensor]}', ".npy (rows, ...)"],
            "example": protocols.example_body(predictor.manifest.input),
            "row": predictor.manifest.input.describe_row(),
            "max_batch_rows": settings.max_batch_rows,
            "max_body_bytes": settings.max_body_bytes,
        },
        "response": {"predictions": "one label per row", "probabilities": "one list per row, one per label"},
    }


def request_id() -> str:
    """The id the server gave this request (the caller's ``x-request-id``, or one it generated)."""
    return getattr(flask.g, "request_id", None) or "-"


def json_response(status: int, body: dict[str, Any], predictor: Predictor) -> AMLResponse:
    headers = {"x-model-name": predictor.name, "x-model-version": predictor.version}
    return AMLResponse(body, status, headers, json_str=True)


def _too_large(size: int, limit: int) -> ClientError:
    return ClientError(
        413,
        "body_too_large",
        f"the request body is {size} bytes; this endpoint accepts at most {limit} (MAX_BODY_BYTES). Send fewer rows "
        "per request.",
    )
