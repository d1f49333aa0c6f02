"""Route this template's log records into the inference server's log stream, one line per scored request.

``azmlinfsrv`` configures only its own ``azmlinfsrv`` logger (and gunicorn's); records from other loggers at
INFO would be dropped. ``score.init()`` calls ``attach_to_server_logging()`` so start-up and request logs from
``serving``, ``model_folder`` and ``model_arch`` appear beside the server's, in its format.

Every ``POST /score`` gets the template's ``score {...}`` line (``serving.http``): request id, rows, status,
bytes, and the time spent parsing, in the model and rendering. Left alone, the server would write three more
lines for the same request, all without the request id:

* ``azmlinfsrv``: ``run() output is HTTP Response``, for every ``run()`` that returns a response object (here,
  every one). It says nothing, and it is always dropped.
* ``azmlinfsrv``: the access line ``POST /score 200 0.327ms 122`` (method, path, status, time, bytes).
* ``gunicorn.access``: ``127.0.0.1 - - [date] "POST /score HTTP/1.1" 200 122 "-" "curl/8.5.0"``.

The two access lines are dropped for answers below 500, which the template's line already records
(``SERVER_ACCESS_LOG=on`` keeps them). A 5xx keeps them: it may have failed outside the template's code (a
scoring timeout), and the server's lines are the ones sure to exist. Every other request (health probes,
``GET /score``, unknown paths) keeps the server's lines.

Why: log volume is billed where the endpoint's logs are collected, and each line written costs CPU in every
request, a visible share of a small one (``docs/performance.md``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

TEMPLATE_LOGGERS = ("serving", "model_folder", "model_arch")
SERVER_NOISE = "run() output is HTTP Response"


def _not_noise(record: logging.LogRecord) -> bool:
    return record.msg != SERVER_NOISE


def _scored_below_500(method: str, path: str, status: str) -> bool:
    """The request the template's ``score`` line records: a ``POST /score`` answered below 500."""
    return method == "POST" and path == "/score" and len(status) == 3 and status.isdigit() and "100" <= status < "500"


def _not_server_access_to_scored(record: logging.LogRecord) -> bool:
    message = record.msg  # azmlinfsrv's access line: "POST /score 200 0.327ms 122"
    if not isinstance(message, str):
        return True
    method, path, status, *_ = [*message.split(" ", 3), "", "", ""]
    return not _scored_below_500(method, path, status)


def _not_gunicorn_access_to_scored(record: logging.LogRecord) -> bool:
    atoms = record.args  # gunicorn logs its access line as a format string and a dict of atoms, "r" the request line
    if not isinstance(atoms, dict):
        return True
    method, path, *_ = [*str(atoms.get("r", "")).split(" ", 2), "", ""]
    return not _scored_below_500(method, path, str(atoms.get("s", "")))


def attach_to_server_logging(level: int = logging.INFO, server_access_lines: bool = False) -> None:
    """Send the template's loggers to the server's handlers and drop the server's repeated lines (see above);
    ``server_access_lines`` keeps the server's two access lines for scored requests."""
    server_logger = logging.getLogger("azmlinfsrv")
    access_logger = logging.getLogger("gunicorn.access")
    _set_filter(server_logger, _not_noise, True)
    _set_filter(server_logger, _not_server_access_to_scored, not server_access_lines)
    _set_filter(access_logger, _not_gunicorn_access_to_scored, not server_access_lines)
    server_handlers = server_logger.handlers
    for name in TEMPLATE_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.propagate = False
        if not logger.handlers:  # once per process, however often init() runs
            for handler in server_handlers or [_stdout_handler()]:
                logger.addHandler(handler)


def _set_filter(logger: logging.Logger, drop: Callable[[logging.LogRecord], bool], wanted: bool) -> None:
    """Put one filter first, or remove it, idempotently: ``init()`` may run more than once in a process (tests).

    First, because a logger stops at the first filter that drops a record, and the server's own filter on
    gunicorn's access lines (which drops health probes) renders every line to test it.
    """
    if drop in logger.filters:
        logger.removeFilter(drop)
    if wanted:
        logger.filters.insert(0, drop)


def _stdout_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname).1s [%(process)d] %(name)s - %(message)s"))
    return handler
