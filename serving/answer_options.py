"""What a request may ask of its answer besides the prediction: ``top_k``, each row's k most probable labels.

It comes as a query parameter (``POST /score?top_k=3``, any request format), a field of a JSON body
(``{"data": [...], "top_k": 3}``; V2: ``"parameters": {"top_k": 3}``) or a multipart form field. The codecs read
the body's; ``serving.http`` reads the query's and calls ``resolve_top_k`` before the model runs, so a bad value
costs no inference.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from model_arch.spec import OutputSpec
from serving.errors import ClientError
from serving.inputs import describe_value

TOP_K = "top_k"


def top_k_from_body(value: Any, where: str) -> int | None:
    """A JSON ``top_k`` field's value: None when absent (``value`` is None), else a whole number of at least 1.

    Raises:
        ClientError: 422 ``invalid_top_k`` for anything else (a boolean, a fraction, a string, 0, a negative).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _invalid(where, describe_value(value))
    return value


def top_k_from_text(text: str, where: str) -> int:
    """A ``top_k`` written as text (a query parameter, a form field) -> a whole number of at least 1.

    Raises:
        ClientError: 422 ``invalid_top_k``.
    """
    text = text.strip()
    if not text.isdigit() or len(text) > 9 or int(text) < 1:  # isdigit: no sign, no fraction, no exponent
        raise _invalid(where, repr(text[:20]))
    return int(text)


def top_k_from_query(query_string: str) -> int | None:
    """``top_k`` in the request's query string, if there.

    Raises:
        ClientError: 422 for a value that is not a whole number of at least 1, or for more than one value.
    """
    if TOP_K not in query_string:  # nearly every request: no parsing
        return None
    values = parse_qs(query_string, keep_blank_values=True).get(TOP_K)
    if not values:
        return None
    if len(values) > 1:
        raise ClientError(422, "invalid_top_k", f"the query string gives top_k {len(values)} times; give it once")
    return top_k_from_text(values[0], "the query parameter top_k")


def resolve_top_k(from_query: int | None, from_body: int | None, output: OutputSpec, accept: str) -> int | None:
    """The ``top_k`` this request's answer uses, checked against the model (labels to rank) and the answer format.

    Raises:
        ClientError: 422 ``invalid_top_k`` when the query and the body disagree; 422 ``top_k_not_applicable``
            for a model without labels, or for a .npy answer (which holds every probability, not labels).
    """
    if from_query is not None and from_body is not None and from_query != from_body:
        raise ClientError(
            422, "invalid_top_k", f"top_k is {from_query} in the query string but {from_body} in the body; give one"
        )
    k = from_query if from_query is not None else from_body
    if k is None:
        return None
    if not output.labelled:
        raise ClientError(
            422,
            "top_k_not_applicable",
            f"top_k ranks labels; this model answers {output.kind} values ({', '.join(output.names)}), without "
            "labels to rank. Leave top_k out.",
        )
    if "application/x-npy" in accept:
        raise ClientError(
            422,
            "top_k_not_applicable",
            "top_k answers are labels and scores in JSON; a .npy answer (Accept: application/x-npy) holds every "
            "probability already. Ask for one or the other.",
        )
    return k


def _invalid(where: str, found: str) -> ClientError:
    return ClientError(
        422, "invalid_top_k", f"{where} is {found}; top_k is a whole number of at least 1 (capped at the labels)"
    )
