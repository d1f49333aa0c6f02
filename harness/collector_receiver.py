"""A stand-in, on loopback, for the agent that receives an Azure ML instance's model data collection.

In a deployment, ``azureml-ai-monitoring``'s Collector posts every record to an agent on the instance
(``http://AZUREML_MDC_HOST:AZUREML_MDC_PORT/modeldata/log``, 127.0.0.1:50011); ``CollectorReceiver`` listens there
instead, so a local server's collection runs exactly as in the cloud and what it sends can be read back. Tests and
``bench/run.py`` run one in their own process (``with CollectorReceiver() as receiver``); ``make serve COLLECT=1``
(``harness.server --collect``) runs ``python -m harness.collector_receiver`` beside the server, which prints each
record and appends it to ``build/collected/records.jsonl``.

``stall=True`` makes an agent that accepts every connection and never answers: what a hung agent does to the
scoring workers is then measurable (tests/test_collection.py, ``make bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PATH = "/modeldata/log"  # where the Collector posts (azureml.ai.monitoring.worker.sender.MdcSender)
EVENT_PREFIX = "azureml.inference."  # its ce-type header: azureml.inference.<collection name>


@dataclass(frozen=True)
class Record:
    """One payload the Collector sent: one collect() call, that is one request's inputs or outputs.

    Attributes:
        collection: ``model_inputs`` or ``model_outputs`` (from the ``ce-type`` header).
        correlation_id: the ``ce-x-request-id`` header: the scored request's id.
        rows: the DataFrame as JSON records, one dict per request row.
        headers: every header of the post, names lower-cased.
    """

    collection: str
    correlation_id: str | None
    rows: list[dict[str, Any]]
    headers: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"collection": self.collection, "correlation_id": self.correlation_id, "rows": self.rows}


class CollectorReceiver:
    """An HTTP server on 127.0.0.1 that takes the Collector's posts, keeps them, and answers 200 (or, with
    ``stall``, never answers). Use as a context manager; ``env()`` is what a server needs to send here."""

    def __init__(
        self, port: int = 0, *, stall: bool = False, out: Path | None = None, echo: bool = False, keep: bool = True
    ) -> None:
        self.stall = stall
        self.keep = keep  # False: count the posts only (a benchmark's thousands of records)
        self.out = out
        self.echo = echo
        self.records: list[Record] = []
        self.posts = 0  # every post that arrived, answered or not
        self._changed = threading.Condition()
        self._release = threading.Event()  # set on stop: stalled handlers return
        self._server = _Server(("127.0.0.1", port), _handler(self))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def env(self, **extra: str) -> dict[str, str]:
        """The environment that makes a scoring server's Collector send here (``AZUREML_MDC_ENABLED=true``, the
        SDK's local switch; a deployment's ``data_collector`` sets ``AZUREML_MDC_CONFIG_PATH`` instead)."""
        return {"AZUREML_MDC_ENABLED": "true", "AZUREML_MDC_HOST": "127.0.0.1", "AZUREML_MDC_PORT": str(self.port)} | (
            extra
        )

    def start(self) -> CollectorReceiver:
        self._thread = threading.Thread(target=self._server.serve_forever, name="collector-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release stalled handlers, stop listening and close the socket."""
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Record]:
        """The records once at least ``count`` have arrived, or those there are after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.records) < count and (left := deadline - time.monotonic()) > 0:
                self._changed.wait(left)
            return list(self.records)

    def _received(self, record: Record | None) -> None:
        with self._changed:
            self.posts += 1
            if record is not None and self.keep:
                self.records.append(record)
            self._changed.notify_all()
        if record is not None and self.echo:
            for row in record.rows:
                print(f"{record.collection:13} {record.correlation_id}  {json.dumps(row)}", flush=True)
        if record is not None and self.out is not None:
            with self.out.open("a") as file:
                file.write(json.dumps(record.to_dict()) + "\n")

    def __enter__(self) -> CollectorReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stalled handler never holds up the end of a test

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a sender that gave up on a stalled answer: expected
            super().handle_error(request, client_address)


def _handler(receiver: CollectorReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the template's sender uses it
        disable_nagle_algorithm = True  # the answer's headers and body go out at once, as an agent's would

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if receiver.stall:
                receiver._received(None)
                receiver._release.wait()  # accept, read, never answer: a hung agent
                self.close_connection = True
                return
            if self.path != PATH:
                receiver._received(None)
                self._answer(404, b"not found")
                return
            headers = {name.lower(): value for name, value in self.headers.items()}
            event = headers.get("ce-type", "")
            try:
                rows = json.loads(body)
            except ValueError:
                rows = [{"unparsed": body.decode("utf-8", "replace")}]
            collection = event[len(EVENT_PREFIX) :] if event.startswith(EVENT_PREFIX) else event
            receiver._received(Record(collection, headers.get("ce-x-request-id"), rows, headers))
            self._answer(200, b"accepted")

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per post would drown the records

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Receive model data collection records on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=50011, help="the agent's port (AZUREML_MDC_PORT)")
    parser.add_argument("--out", type=Path, help="append each record as a JSON line to this file")
    parser.add_argument("--parent", type=int, help="exit when this process (the server that started it) is gone")
    args = parser.parse_args(argv)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    with CollectorReceiver(args.port, out=args.out, echo=True) as receiver:
        print(f"collector receiver on 127.0.0.1:{receiver.port}, writing {args.out or 'nowhere'}", flush=True)
        try:
            while args.parent is None or os.getppid() == args.parent:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    sys.exit(0)


if __name__ == "__main__":
    main()
