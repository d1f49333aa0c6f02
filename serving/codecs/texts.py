"""Text requests: the strings a client sent, read from every wire format a text model takes, or a 4xx that says
what was wrong. The input kind (``model_arch.text.TextEncoder``) then turns them into the model's arrays.

* ``{"data": ["text", ...]}`` (each item may also be a one-string row, ``["text"]``);
* ``{"input_data": ["text", ...]}`` and ``{"input_data": {"columns": ["text"], "data": [["text"], ...]}}``, as Azure
  ML's catalog text models take them;
* V2: ``{"inputs": [{"name": "text", "shape": [n], "datatype": "BYTES", "data": ["text", ...]}]}`` (strings as
  MLServer's ``str`` content type carries them);
* ``text/plain``: one text, the body itself, UTF-8.

A ``top_k`` field beside the texts (V2: ``"parameters": {"top_k": k}``; any form: ``?top_k=k``) asks for each
text's k most probable labels, as for any labelled model (``serving.answer_options``). Answers go back in the
request's own format, through the codecs that answer numeric requests (``text/plain`` is answered like
``{"data": ...}``). Limits (``serving.settings``): ``MAX_TEXTS`` per request, ``MAX_TEXT_CHARS`` per
text; the tokenizer then keeps at most the spec's ``max_length`` tokens of each. Called by ``serving.codecs.decode``
for a model whose manifest has a tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from serving.answer_options import TOP_K, top_k_from_body
from serving.codecs.json_body import JSON, parse_json
from serving.codecs.rows import DATA, INPUT_DATA
from serving.codecs.types import Codec
from serving.codecs.v2 import V2, single_tensor
from serving.errors import ClientError
from serving.inputs import describe_keys, describe_value, json_type

TEXT_PLAIN = "text/plain"
EXAMPLE = '{"data": ["first text", "second text"]}'


@dataclass(frozen=True)
class TextLimits:
    """The most texts one request may carry, and the most characters one text may have."""

    max_texts: int = 256
    max_chars: int = 10_000


@dataclass(frozen=True)
class TextRequest:
    """The texts of one request, the codec that answers it, and the request's own id if it sent one."""

    texts: list[str]
    codec: Codec
    request_id: str | None = None
    top_k: int | None = None


def decode_texts(body: bytes, content_type: str | None, limits: TextLimits) -> TextRequest:
    """The texts in ``body``, checked: a list of 1 to ``max_texts`` non-empty strings of at most ``max_chars``.

    Raises:
        ClientError: 415 for a content type other than JSON or text/plain; 400 for a body that is not the format it
            claims (JSON, UTF-8); 413 for too many texts or a text too long; 422 for anything but strings, or none.
    """
    media_type = (content_type or JSON).split(";")[0].strip().lower()
    if media_type == TEXT_PLAIN:
        return TextRequest(_checked([_plain_text(body)], "the body", limits), DATA)
    if media_type != JSON and not media_type.endswith("+json"):
        raise ClientError(
            415,
            "unsupported_content_type",
            f"Content-Type {media_type!r} is not accepted by this text model; send {JSON} (like {EXAMPLE}) or "
            f"{TEXT_PLAIN} (one text, UTF-8)",
        )
    try:
        document = parse_json(body)
    except ClientError as err:
        raise ClientError(err.status, err.code, f"{err.message}; expected JSON like {EXAMPLE}") from err
    if isinstance(document, dict):
        if "data" in document or "input_data" in document:
            top_k = top_k_from_body(document.get(TOP_K), f'"{TOP_K}"')
        if "data" in document:
            return TextRequest(_checked(_texts_of(document["data"], "data"), "data", limits), DATA, top_k=top_k)
        if "input_data" in document:
            value = document["input_data"]
            if isinstance(value, dict):
                return TextRequest(_checked(_columns(value), "input_data.data", limits), INPUT_DATA, top_k=top_k)
            texts = _checked(_texts_of(value, "input_data"), "input_data", limits)
            return TextRequest(texts, INPUT_DATA, top_k=top_k)
        if "inputs" in document:
            request_id = document.get("id")
            parameters = document.get("parameters")
            top_k = top_k_from_body(parameters.get(TOP_K) if isinstance(parameters, dict) else None, "parameters.top_k")
            texts = _checked(_v2_texts(document["inputs"]), "inputs[0].data", limits)
            return TextRequest(texts, V2, request_id if isinstance(request_id, str) else None, top_k)
    found = f"an object with keys {describe_keys(document)}" if isinstance(document, dict) else json_type(document)
    raise ClientError(
        400,
        "missing_data",
        f'expected a JSON object with a "data" field holding a list of texts, like {EXAMPLE} (or "input_data", or V2 '
        f'"inputs" of datatype BYTES); got {"a JSON " if not isinstance(document, dict) else ""}{found}',
    )


def _plain_text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ClientError(
            400,
            "invalid_utf8",
            f"the text/plain body is not UTF-8 ({err.reason} at byte {err.start}); send the text encoded as UTF-8",
        ) from err


def _texts_of(value: Any, field: str) -> list[Any]:
    """A list of texts, or of one-text rows (``[["a"], ["b"]]``, as a table with one column sends them)."""
    if isinstance(value, str):
        raise ClientError(
            422, "invalid_texts", f'"{field}" is one string; send a list of texts, even for one: {{"{field}": ["..."]}}'
        )
    if not isinstance(value, list):
        raise ClientError(
            422, "invalid_texts", f'"{field}" must be a list of texts, like {EXAMPLE}; got {describe_value(value)}'
        )
    return [item[0] if type(item) is list and len(item) == 1 else item for item in value]


def _columns(value: dict[str, Any]) -> list[Any]:
    """pandas' "split" orientation with one column of texts: ``{"columns": ["text"], "data": [["..."], ...]}``."""
    if "data" not in value:
        raise ClientError(
            422, "invalid_texts", f'"input_data" is an object without "data"; got keys {describe_keys(value)}'
        )
    columns = value.get("columns", ["text"])
    if not isinstance(columns, list) or len(columns) != 1:
        raise ClientError(
            422,
            "wrong_columns",
            f'"input_data.columns" is {describe_value(columns)}; this model takes one column of texts, like ["text"]',
        )
    return _texts_of(value["data"], "input_data.data")


def _v2_texts(inputs: Any) -> list[Any]:
    tensor = single_tensor(inputs, "one tensor of texts (datatype BYTES)")
    if tensor["datatype"] != "BYTES":
        raise ClientError(
            422,
            "unsupported_datatype",
            f"inputs[0].datatype is {describe_value(tensor['datatype'])}; a text model takes BYTES (UTF-8 strings)",
        )
    content_type = (tensor.get("parameters") or {}).get("content_type", "str")
    if content_type != "str":
        raise ClientError(
            422,
            "unsupported_datatype",
            f'inputs[0].parameters.content_type is {describe_value(content_type)}; texts are sent as "str" (UTF-8)',
        )
    data, shape = tensor["data"], tensor["shape"]
    if not isinstance(data, list):
        raise ClientError(
            422, "invalid_v2_request", f"inputs[0].data must be a list of texts; got {describe_value(data)}"
        )
    if shape not in ([len(data)], [len(data), 1]):
        raise ClientError(
            422,
            "shape_mismatch",
            f"inputs[0].shape is {describe_value(shape)}; for {len(data)} texts it is [{len(data)}] "
            f"(or [{len(data)}, 1])",
        )
    return data


def _checked(texts: list[Any], field: str, limits: TextLimits) -> list[str]:
    """Every item a non-empty string within the limits, counted before anything is done per text."""
    if not texts:
        raise ClientError(422, "empty_batch", f'"{field}" is an empty list; send at least one text, like {EXAMPLE}')
    if len(texts) > limits.max_texts:
        raise ClientError(
            413,
            "too_many_texts",
            f"the request has {len(texts)} texts; this endpoint accepts at most {limits.max_texts} per request "
            "(MAX_TEXTS). Split them into several requests.",
        )
    for i, text in enumerate(texts):
        where = field if field == "the body" else f"{field}[{i}]"
        if type(text) is not str:
            raise ClientError(
                422, "not_text", f"{where} is {describe_value(text)}; every item must be a text (a JSON string)"
            )
        if len(text) > limits.max_chars:
            raise ClientError(
                413,
                "text_too_long",
                f"{where} has {len(text)} characters; this endpoint takes at most {limits.max_chars} per text "
                "(MAX_TEXT_CHARS), of which the model reads its first tokens only. Send shorter texts.",
            )
        if not text.strip():
            raise ClientError(422, "empty_text", f"{where} is empty (or only spaces); send the text to score")
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as err:  # a lone surrogate, written as a \ud800 escape in JSON
                raise ClientError(
                    422,
                    "invalid_text",
                    f"{where} holds {err.object[err.start]!r} at character {err.start}, half of a UTF-16 pair, which "
                    "is no character; send the text as it is, in UTF-8",
                ) from err
    return texts
