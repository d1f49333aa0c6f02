"""One line per scored request: which of the server's log records ``serving.logs`` drops, built the way
``azmlinfsrv`` and gunicorn build them."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from gunicorn.glogging import SafeAtoms

from serving.logs import attach_to_server_logging

GUNICORN_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'  # gunicorn's default


def server_line(message: str) -> logging.LogRecord:
    return logging.LogRecord("azmlinfsrv", logging.INFO, __file__, 1, message, None, None)


def gunicorn_line(request_line: str, status: int) -> logging.LogRecord:
    atoms = SafeAtoms({"h": "127.0.0.1", "l": "-", "u": "-", "t": "[now]", "r": request_line, "s": status, "b": "9"})
    atoms.update({"f": "-", "a": "curl"})
    return logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, GUNICORN_FORMAT, (atoms,), None)


@pytest.fixture
def restore_filters() -> Iterator[None]:
    loggers = [logging.getLogger("azmlinfsrv"), logging.getLogger("gunicorn.access")]
    before = [list(logger.filters) for logger in loggers]
    yield
    for logger, filters in zip(loggers, before, strict=True):
        logger.filters[:] = filters


def kept(record: logging.LogRecord) -> bool:
    return bool(logging.getLogger(record.name).filter(record))


@pytest.mark.usefixtures("restore_filters")
def test_the_servers_access_lines_for_a_scored_request_below_500_are_dropped() -> None:
    attach_to_server_logging()

    assert not kept(server_line("run() output is HTTP Response"))
    assert not kept(server_line("POST /score 200 0.327ms 122"))
    assert not kept(server_line("POST /score 422 0.101ms 193"))
    assert not kept(gunicorn_line("POST /score HTTP/1.1", 200))
    assert not kept(gunicorn_line("POST /score HTTP/1.1", 413))
    # Kept: a 5xx, other requests, and every other server line.
    assert kept(server_line("POST /score 500 3600000.1ms 80"))
    assert kept(gunicorn_line("POST /score HTTP/1.1", 504))
    assert kept(gunicorn_line("POST /score HTTP/1.1", ""))  # no status: nothing says the template logged it
    assert kept(server_line("GET /score 200 0.2ms 900"))
    assert kept(gunicorn_line("GET /score HTTP/1.1", 200))
    assert kept(gunicorn_line("POST /predict HTTP/1.1", 404))
    assert kept(server_line("Worker with pid 7 ready for serving traffic"))
    # The line still renders as gunicorn writes it (the filter reads the atoms, it does not consume them).
    assert '"GET /score HTTP/1.1" 200' in gunicorn_line("GET /score HTTP/1.1", 200).getMessage()


@pytest.mark.usefixtures("restore_filters")
def test_the_template_filters_run_before_the_servers_own() -> None:
    """azmlinfsrv's own filter on gunicorn's access lines renders each line to test it; the template's cheaper
    test goes first, so a scored request's line is never rendered."""
    server_filter = logging.Filter("gunicorn.access")  # stands in for azmlinfsrv's RootAccessFilter
    logging.getLogger("gunicorn.access").addFilter(server_filter)
    attach_to_server_logging()

    assert logging.getLogger("gunicorn.access").filters[0] is not server_filter


@pytest.mark.usefixtures("restore_filters")
def test_server_access_log_on_keeps_the_access_lines_but_not_the_noise() -> None:
    attach_to_server_logging()
    attach_to_server_logging(server_access_lines=True)  # init() again in the same process, setting changed

    assert kept(server_line("POST /score 200 0.327ms 122"))
    assert kept(gunicorn_line("POST /score HTTP/1.1", 200))
    assert not kept(server_line("run() output is HTTP Response"))
