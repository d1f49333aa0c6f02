"""Answer one HTTP request to ``/score``: parse, predict, render, with JSON errors for a client's mistakes.

``score.run()`` hands every request here (it is decorated with ``@rawhttp``, so this code sets the status
codes). ``POST`` scores a batch; ``GET`` describes the model and the request contract.
"""

from __future__ import annotations

import logging
from typing import Any

import flask
from azureml_inference_server_http.api.aml_response import AMLResponse

from serving.errors import ClientError
from serving.inputs import example_body, parse_request
from serving.predictor import Predictor
from serving.settings import Settings

logger = logging.getLogger(__name__)


def handle(request: Any, predictor: Predictor, settings: Settings) -> AMLResponse:
    """``request`` is the Flask request the inference server passes to a ``@rawhttp`` ``run()``."""
    if request.method == "GET":
        return json_response(200, describe(predictor, settings))
    try:
        batch = parse_request(request.get_data(cache=False), predictor.manifest.input, settings.max_batch_rows)
    except ClientError as err:
        logger.info("rejected request %s: %d %s", request_id(), err.status, err.code)
        return json_response(err.status, err.to_body())
    return json_response(200, predictor.predict(batch))


def describe(predictor: Predictor, settings: Settings) -> dict[str, Any]:
    """The model's metadata plus the request contract, for ``GET /score``."""
    return {
        **predictor.metadata(),
        "request": {
            "method": "POST",
            "content_type": "application/json",
            "example": example_body(predictor.manifest.input),
            "row": predictor.manifest.input.describe_row(),
            "max_batch_rows": settings.max_batch_rows,
        },
        "response": {"predictions": "one label per row", "probabilities": "one list per row, one per label"},
    }


def request_id() -> str:
    """The id the server gave this request (the caller's ``x-request-id``, or one it generated)."""
    return getattr(flask.g, "request_id", None) or "-"


def json_response(status: int, body: dict[str, Any]) -> AMLResponse:
    return AMLResponse(body, status, json_str=True)
