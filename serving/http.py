"""Answer one HTTP request to ``/score``, top to bottom: read the body, decode it, run the model, encode the answer;
a client's mistake becomes a JSON 4xx, and every ``POST`` one ``score`` log line.

``score.run()`` hands every request here (it is decorated with ``@rawhttp``, so this code sets the status codes).
``POST`` scores a batch in any format ``serving.codecs`` accepts; ``GET`` describes the model and the request
contract, ``HEAD`` answers like ``GET`` without the body, ``OPTIONS`` lists the methods. Every answer carries the
request id (added by the server) and the model's name and version. ``Accept: application/x-npy`` gets the model's
values as .npy instead of JSON. The ``score`` line records the request id, rows, status and the time spent decoding,
in the model and encoding; it is written for every ``POST``, a failure included (a client's mistake without a
traceback, a fault with the server's). A body that stops arriving is given up after ``BODY_TIMEOUT_S`` (408), so a
stalled sender holds a worker that long, not until the server's worker timeout (docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import socket
import time
from typing import Any

import flask

from model_folder.engines import batch_rows
from serving import codecs, collection
from serving.answer_options import resolve_top_k, top_k_from_query
from serving.codecs import ReplyContext
from serving.errors import ClientError
from serving.images import takes_images
from serving.predictor import Predictor
from serving.settings import Settings

logger = logging.getLogger(__name__)
ALLOWED_METHODS = "GET, HEAD, POST, OPTIONS"
DISCARD_LIMIT = 16 * 1024 * 1024  # an oversized body is read and dropped up to this size, then the connection closes
READ_PIECE = 256 * 1024  # a body is read in pieces this large, the time left checked before each


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
    """Read -> decode -> predict -> encode, timing each step for the ``score`` line, which every outcome writes."""
    timer = _Timer()
    environ = request.environ  # the WSGI environ, not werkzeug's header views: cheaper, and all that is needed
    record: dict[str, Any] = {"request_id": request_id(), "content_type": environ.get("CONTENT_TYPE")}
    try:
        spec = predictor.manifest.input
        body = read_body(request, settings.body_limit(takes_images(spec)), settings.body_timeout_s)
        if predictor.text is not None:  # strings in: the codec reads them, the model's tokenizer makes the arrays
            texts = codecs.decode_texts(body, record["content_type"], settings.text_limits)
            record["parse_ms"] = timer.lap()
            decoded = tokenize(texts, predictor)
            record["tokenize_ms"] = timer.lap()
        else:
            decoded = codecs.decode(body, record["content_type"], spec, settings.max_batch_rows, settings.max_images)
        from_query = top_k_from_query(environ.get("QUERY_STRING", ""))
        if from_query is not None or decoded.top_k is not None:
            top_k = resolve_top_k(from_query, decoded.top_k, predictor.manifest.output, environ.get("HTTP_ACCEPT", ""))
            decoded = dataclasses.replace(decoded, top_k=top_k)
    except ClientError as err:  # the client's mistake: its line, its 4xx, no traceback
        record.update(status=err.status, code=err.code, parse_ms=timer.lap())
        response = _response(err.status, codecs.JSON, json.dumps(err.to_body()).encode(), predictor)
        record["bytes"] = response.content_length
        logger.info("score %s", _compact(record))
        return response
    except Exception as err:  # a fault in this code: its line, then the server's bare 500 and its traceback
        _log_fault(record, err, parse_ms=timer.lap())
        raise
    record.update(protocol=decoded.protocol, rows=batch_rows(decoded.batch))
    if "tokenize_ms" not in record:
        record["parse_ms"] = timer.lap()
    try:
        prediction = predictor.predict(decoded.batch)
    except Exception as err:  # a fault in the model: log it with the request id, let the server answer a bare 500
        _log_fault(record, err, model_ms=timer.lap())
        raise
    record["model_ms"] = timer.lap()
    context = ReplyContext(predictor.name, predictor.version, record["request_id"])
    try:
        answer, media_type = codecs.encode(prediction, decoded, context, environ.get("HTTP_ACCEPT", ""))
    except Exception as err:
        _log_fault(record, err, render_ms=timer.lap())
        raise
    response = _response(200, media_type, answer, predictor)
    record.update(status=200, render_ms=timer.lap(), bytes=len(answer))
    collection.collect(decoded, prediction, record["request_id"])  # monitoring, when on; never raises
    logger.info("score %s", _compact(record))
    return response


def tokenize(texts: codecs.TextRequest, predictor: Predictor) -> codecs.Decoded:
    """A text request's strings as the model's arrays, by the model folder's tokenizer (the function training
    called), with each text's characters and kept tokens for the log."""
    batch = predictor.text.encode(texts.texts)
    counts = predictor.text.token_counts(batch)
    facts = tuple({"chars": len(text), "tokens": n} for text, n in zip(texts.texts, counts, strict=True))
    return codecs.Decoded(batch, texts.codec, texts.request_id, facts, texts.top_k)


def read_body(request: flask.Request, limit: int, timeout_s: float | None = None) -> bytes:
    """The request body, refused before it is parsed (or kept) when it is larger than ``limit`` bytes.

    A body without Content-Length (chunked) is read in 64 KiB pieces, kept no further than ``limit``. Under
    gunicorn, ``timeout_s`` bounds the wait: for each next piece, and for the whole body (checked between pieces).
    In process (the Flask test client) there is no socket to wait on, and no bound.

    Raises:
        ClientError: 413 when the body is (or turns out to be) larger than ``limit``; 400 when it ends before
            its declared length; 408 when it does not arrive within ``timeout_s``.
    """
    declared = request.content_length
    deadline = _Deadline(request.environ, timeout_s)
    received = 0
    try:
        if declared is not None:
            if declared > limit:
                _discard(request.stream, DISCARD_LIMIT, deadline)
                raise _too_large(declared, limit)
            # The WSGI input itself, read to the declared length: werkzeug's stream wrapper around it costs a
            # measurable share of a small request (docs/performance.md).
            stream, pieces = request.environ["wsgi.input"], []
            while received < declared:
                deadline.arm()
                piece = stream.read(min(READ_PIECE, declared - received))
                if not piece:
                    break
                pieces.append(piece)
                received += len(piece)
            if received < declared:
                raise ClientError(
                    400,
                    "incomplete_body",
                    f"the body ended after {received} of the {declared} bytes its Content-Length declared; send "
                    "the whole body, with a Content-Length that matches it",
                )
            return pieces[0] if len(pieces) == 1 else b"".join(pieces)
        pieces = []
        while True:
            deadline.arm()
            piece = request.stream.read(64 * 1024)
            if not piece:
                return b"".join(pieces)
            received += len(piece)
            if received > limit:
                _discard(request.stream, DISCARD_LIMIT, deadline)
                raise _too_large(received, limit)
            pieces.append(piece)
    except TimeoutError as err:  # socket.timeout is TimeoutError
        raise ClientError(
            408,
            "body_timeout",
            f"the request body did not arrive within {timeout_s:g} s (BODY_TIMEOUT_S); {received} "
            f"{'' if declared is None else f'of its {declared} '}bytes were read when it stopped; send the whole "
            "body without pausing",
        ) from err
    except ConnectionError as err:  # the client reset the connection mid-body: nobody is left to read an answer
        raise ClientError(
            400, "incomplete_body", f"the connection was reset after {received} bytes of the body ({err})"
        ) from err
    finally:
        deadline.release()


def describe(predictor: Predictor, settings: Settings) -> dict[str, Any]:
    """The model's metadata plus the request contract, for ``GET /score``."""
    if predictor.text is not None:
        return describe_text_model(predictor, settings)
    spec, output = predictor.manifest.input, predictor.manifest.output
    request: dict[str, Any] = {
        "method": "POST",
        "content_types": list(codecs.content_types_for(spec)),
        "formats": [codec.form for codec in codecs.codecs_for(spec)],
        "example": codecs.example_body(spec),
        "row": spec.describe_row(),
        "max_batch_rows": settings.max_batch_rows,
        "max_body_bytes": settings.body_limit(takes_images(spec)),
    }
    if spec.image is not None:
        request["images"] = {
            "pipeline": spec.image.describe(),
            "formats": list(spec.image.formats),
            "max_pixels": spec.image.max_pixels,
            "max_images": settings.max_images,
            "forms": [
                "Content-Type: image/jpeg (image/png, ...), the file as the body: one image",
                "multipart/form-data, one or more parts named file: curl -F file=@photo.jpg",
                '{"data": [b64, ...]}, {"input_data": [b64, ...]}, {"input_data": {"columns": ["image"], '
                '"data": [[b64], ...]}}: base64 of the files (line breaks and data: prefixes accepted)',
                'V2 {"inputs": [{"name": "image", "shape": [n], "datatype": "BYTES", "data": [b64, ...]}]}',
                "rows of pixels already preprocessed, as for any model: " + spec.describe_row(),
            ],
        }
    if output.kind == "regression":
        response: dict[str, Any] = {"predictions": "one object per row: " + ", ".join(output.names)}
    elif output.kind == "multilabel":
        response = {
            "predictions": f"one list per row: the labels whose probability is at least {output.threshold:g}",
            "probabilities": "one list per row, one per label",
        }
    else:
        response = {"predictions": "one label per row", "probabilities": "one list per row, one per label"}
    if output.labelled:
        response["top_k"] = (
            'with ?top_k=k (or "top_k": k in a JSON body, "parameters": {"top_k": k} in V2, a form field top_k): '
            '{"predictions": [[{"label", "score"}, ...] per row]}, the k most probable labels, best first, k capped '
            f"at the {len(output.labels)} labels"
        )
    return {**predictor.metadata(), "request": request, "response": response}


def describe_text_model(predictor: Predictor, settings: Settings) -> dict[str, Any]:
    """``GET /score`` for a text model: strings in, the tokenizer's limits, the answer's shape."""
    output = predictor.manifest.output
    tokenizer = predictor.manifest.tokenizer
    response = {
        "classification": {"predictions": "one label per text", "probabilities": "one list per text, one per label"},
        "multilabel": {
            "predictions": f"one list per text: the labels whose probability is at least {output.threshold:g}",
            "probabilities": "one list per text, one per label",
        },
        "embedding": {"embeddings": f"one vector of {output.width} numbers per text"},
    }.get(output.kind, {"predictions": "one object per text"})
    if output.labelled:
        response["top_k"] = (
            'with ?top_k=k (or "top_k": k beside the texts, "parameters": {"top_k": k} in V2): {"predictions": '
            '[[{"label", "score"}, ...] per text]}, the k most probable labels, best first'
        )
    return {
        **predictor.metadata(),
        "request": {
            "method": "POST",
            "content_types": list(codecs.TEXT_CONTENT_TYPES),
            "formats": [
                '{"data": ["text", ...]}',
                '{"input_data": ["text", ...]} or {"input_data": {"columns": ["text"], "data": [["text"], ...]}}',
                'V2 {"inputs": [{"name": "text", "shape": [n], "datatype": "BYTES", "data": ["text", ...]}]}',
                "text/plain: one text, UTF-8",
            ],
            "example": codecs.texts.EXAMPLE,
            "max_texts": settings.max_texts,
            "max_text_chars": settings.max_text_chars,
            "max_tokens": tokenizer.max_length,
            "truncation": f"texts longer than {tokenizer.max_length} tokens are cut on the {tokenizer.truncation}",
            "max_body_bytes": settings.max_body_bytes,
        },
        "response": response,
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


def _discard(stream: Any, most: int, deadline: _Deadline) -> None:
    """Read and drop what the client is still sending (up to ``most`` bytes, never kept, within the body's time),
    so that it can read the 413 instead of failing on a closed connection mid-upload; a larger upload is cut off."""
    dropped = 0
    try:
        while dropped < most:
            deadline.arm()
            piece = stream.read(64 * 1024)
            if not piece:
                return
            dropped += len(piece)
    except (TimeoutError, ConnectionError):
        return  # the 413 goes out all the same


class _Deadline:
    """The time a request body has to arrive, enforced on gunicorn's socket for the client (its timeout, set
    before each read to the time left). gunicorn's sync worker puts the socket in the WSGI environ; in process
    there is none, and nothing to wait for."""

    def __init__(self, environ: dict[str, Any], seconds: float | None) -> None:
        sock = environ.get("gunicorn.socket") if seconds else None
        self._socket = sock if isinstance(sock, socket.socket) else None
        self._ends = time.monotonic() + (seconds or 0)
        self._previous = self._socket.gettimeout() if self._socket is not None else None

    def arm(self) -> None:
        """Before a read: the socket waits at most the time left. Raises TimeoutError when none is."""
        if self._socket is None:
            return
        left = self._ends - time.monotonic()
        if left <= 0:
            raise TimeoutError("no time left for the request body")
        self._socket.settimeout(left)

    def release(self) -> None:
        """Give the socket back to gunicorn as it was (blocking), for writing the answer."""
        if self._socket is not None:
            with contextlib.suppress(OSError):  # already closed
                self._socket.settimeout(self._previous)


def _log_fault(record: dict[str, Any], err: Exception, **timing: float) -> None:
    """The ``score`` line of a request that failed in this code or in the model (status 500, the exception's type);
    the server logs the traceback with the request id and answers its bare 500."""
    record.update(status=500, error=type(err).__name__, **timing)
    logger.error("score %s", _compact(record))


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
