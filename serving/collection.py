"""Model data collection for Azure ML model monitoring: what each scored request asked and what it was answered, sent
as ``model_inputs`` and ``model_outputs`` records through ``azureml-ai-monitoring``'s ``Collector``, correlated by
the request id.

``score.init()`` calls ``start()`` once per worker; ``serving.http`` calls ``collect()`` once per answered ``POST``.
Off unless the deployment turns it on: a deployment YAML with ``data_collector`` collections makes Azure ML
configure the Collector (``AZUREML_MDC_CONFIG_PATH``), and locally ``AZUREML_MDC_ENABLED=true`` does
(``make serve COLLECT=1``). ``DATA_COLLECTION=off`` keeps it off either way.

How the Collector sends (azureml-ai-monitoring 1.0.0, read in its source): ``collect()`` turns a pandas DataFrame
into a payload and puts it on an in-memory queue (``AZUREML_MDC_QUEUE_CAPACITY``, 1,500); one background thread
per worker process posts each payload as JSON records to the instance's agent at
``http://AZUREML_MDC_HOST:AZUREML_MDC_PORT/modeldata/log`` (127.0.0.1:50011), the request id in the
``ce-x-request-id`` header. Five things in it would hurt a request path, and this module works around each:

* It samples each collection on its own, so at 10% a request's inputs and outputs would both arrive only 1% of the
  time. The template reads the deployment's rate once, samples **per request** (a sampled request sends both
  records; one not sampled builds nothing), and sets the Collector's own rate to 100%.
* It posts with ``requests`` without a timeout, a new connection per payload: an agent that accepts and never
  answers would stop its thread for good, and each post costs the worker CPU. The template's sender
  (``_bounded_sender``, ``AgentConnection``) posts the same headers and body over one kept-alive connection with a
  timeout, and after a failure pauses sending for a while.
* A full queue drops the record only after the DataFrame was built and serialised. The template looks first (at
  the queue, at a paused sender, at a post unanswered for ``STALLED_AFTER_S``), and drops the request's records
  before anything is built.
* pandas' ``to_json``, which the SDK calls on every record, costs more than building and sending it; the frames
  the template builds serialise the same records themselves (``frame``).
* Its default ``on_error`` raises, and it logs every failed send. The template's ``on_error`` counts the drop, and
  drops and send failures are logged at most once a minute each, with counts.

What is collected per input kind is in ``docs/data-collection.md`` (``input_frame``, ``output_frame``).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from model_folder.engines import batch_rows

if TYPE_CHECKING:
    import pandas as pd

    from model_arch.spec import InputSpec, OutputSpec
    from serving.codecs.types import Decoded
    from serving.predictor import Prediction, Predictor
    from serving.settings import Settings

logger = logging.getLogger(__name__)
INPUTS, OUTPUTS = "model_inputs", "model_outputs"
MAX_FEATURE_COLUMNS = 128  # a flat numeric row with more values than this is described by summary statistics
SEND_TIMEOUT_S = 5.0  # one post to the agent; past it the payload is dropped and sending pauses
PAUSE_AFTER_FAILURE_S = 5.0  # after a failed post the sender waits this long, doubled per failure in a row...
LONGEST_PAUSE_S = 60.0  # ...up to this; a post that succeeds resets it
STALLED_AFTER_S = 0.5  # a post unanswered this long (an agent answers in milliseconds): records are dropped unbuilt
LOG_EVERY_S = 60.0  # drops and send failures: at most one line per this many seconds, each with its count
MDC_LOGGERS = ("mdc", "mdc.worker", "mdc.sender", "mdc.collector")

_active: DataCollection | None = None
_pending: tuple[InputSpec, OutputSpec] | None = None  # WORKER_PRELOAD: opened in each worker on its first request


def configured(environ: dict[str, str] | None = None) -> bool:
    """True when the deployment configures the Collector: Azure ML's data_collector (``AZUREML_MDC_CONFIG_PATH``)
    or ``AZUREML_MDC_ENABLED=true`` (what ``make serve COLLECT=1`` sets)."""
    env = os.environ if environ is None else environ
    return bool(env.get("AZUREML_MDC_CONFIG_PATH")) or env.get("AZUREML_MDC_ENABLED", "").strip().lower() == "true"


def start(settings: Settings, predictor: Predictor) -> DataCollection | None:
    """Start collection in this worker when the deployment turns it on (``configured()``) and ``DATA_COLLECTION``
    is not ``off``; logs what it does either way. A Collector that cannot start is logged, and the worker serves
    without collection: monitoring must not take the endpoint down.

    Returns:
        The active collection, also kept for ``collect()``; None when collection is off.
    """
    global _active, _pending
    _active = _pending = None
    if not settings.data_collection:
        logger.info("data collection off (DATA_COLLECTION=off)")
        return None
    if not configured():
        logger.info("data collection off (the deployment has no data_collector; see docs/data-collection.md)")
        return None
    if settings.preload:  # init() runs in the master: the SDK's sending thread would not survive the fork
        _pending = (predictor.manifest.input, predictor.manifest.output)
        logger.info("data collection starts in each worker on its first request (WORKER_PRELOAD=true)")
        return None
    return _open(predictor.manifest.input, predictor.manifest.output)


def _open(input_spec: InputSpec, output_spec: OutputSpec) -> DataCollection | None:
    global _active
    try:
        _active = DataCollection.open(input_spec, output_spec)
    except Exception as err:  # a Collector that cannot start: serve without it, and say why
        logger.error("data collection off: the Collector did not start: %s: %s", type(err).__name__, err)
        return None
    return _active


def collect(decoded: Decoded, prediction: Prediction, request_id: str) -> None:
    """Hand one answered request to the active collection; nothing when collection is off. Never raises."""
    global _pending
    active = _active
    if active is None and _pending is not None:  # WORKER_PRELOAD: this worker's first request opens it, once
        spec, _pending = _pending, None
        active = _open(*spec)
    if active is not None:
        active.collect(decoded, prediction, request_id)


def stop() -> None:
    """Forget the active collection (tests that start score.py several times in one process)."""
    global _active, _pending
    _active = _pending = None


@dataclass
class DataCollection:
    """The worker's two Collectors, its per-request sampling and its drop accounting.

    Attributes:
        inputs: the ``model_inputs`` Collector, None when that collection is not enabled.
        outputs: the ``model_outputs`` Collector, likewise.
        rate: the share of requests collected, 0 to 1 (the deployment's ``sampling_rate``).
        input_spec: what a row means, for ``input_frame``.
        output_spec: what the values mean, for ``output_frame``.
    """

    inputs: Any
    outputs: Any
    rate: float
    input_spec: InputSpec
    output_spec: OutputSpec
    queue: Any = None
    sender: Any = None
    target: str = ""
    drops: _Counter = field(default_factory=lambda: _Counter("data collection dropped", "record(s)"))

    @classmethod
    def open(cls, input_spec: InputSpec, output_spec: OutputSpec) -> DataCollection:
        """Create the Collectors from the environment the deployment set, take over sampling and sending (see the
        module docstring), and log the line that says what will be collected and where it goes."""
        import pandas  # noqa: F401  (the Collector accepts only DataFrames: fail here, not on the first request)
        from azureml.ai.monitoring import Collector
        from azureml.ai.monitoring.config import get_config
        from azureml.ai.monitoring.init import init
        from azureml.ai.monitoring.queue import get_queue
        from azureml.ai.monitoring.worker import get_worker

        collection = cls(None, None, 1.0, input_spec, output_spec)
        on_error = collection.drops.add_error
        init("default")  # the SDK's own start: reads its configuration, makes the queue, starts the sending thread
        config = get_config()
        if config is None or not config.enabled():
            raise RuntimeError("the Collector's configuration has no enabled custom collection")
        enabled = [name for name in (INPUTS, OUTPUTS) if config.collection_enabled(name)]
        if not enabled:
            raise RuntimeError(f"neither {INPUTS} nor {OUTPUTS} is enabled in the deployment's data_collector")
        rates = {name: config.collection_sample_rate_percentage(name) for name in enabled}
        collection.rate = min(max(max(rates.values()), 0), 100) / 100
        _collect_everything(config)  # the template samples per request instead (module docstring)
        collection.inputs = Collector(name=INPUTS, on_error=on_error) if INPUTS in enabled else None
        collection.outputs = Collector(name=OUTPUTS, on_error=on_error) if OUTPUTS in enabled else None
        collection.queue = get_queue()
        worker = get_worker()
        if worker is not None and not config.local_capture():
            collection.sender = worker._sender = _bounded_sender(config.host(), config.port())  # bounded posts (above)
        collection.target = "local capture (the log)" if config.local_capture() else f"{config.host()}:{config.port()}"
        for name in MDC_LOGGERS:  # the SDK logs each failed send; once a minute is enough
            _limit_logger(logging.getLogger(name))
        logger.info(
            "data collection on: %s to %s, %g%% of requests (both records of a sampled request), queue %d",
            " and ".join(enabled),
            collection.target,
            collection.rate * 100,
            collection.queue.capacity() if collection.queue is not None else 0,
        )
        if len(set(rates.values())) > 1:
            logger.warning(
                "data collection: the collections' sampling rates differ (%s); every one uses the highest", rates
            )
        return collection

    def collect(self, decoded: Decoded, prediction: Prediction, request_id: str) -> None:
        """Send one request's records, if it is sampled and the queue has room; a failure is counted and logged
        (rate-limited), never raised: the answer has been computed and must go out unchanged."""
        rate = self.rate
        if rate < 1.0 and random.random() >= rate:
            return
        wanted = (self.inputs is not None) + (self.outputs is not None)
        queue = self.queue
        if queue is not None and queue.length() + wanted > queue.capacity():
            self.drops.add("the queue is full: the agent at " + self.target + " is not keeping up", wanted)
            return
        unavailable = self.sender.unavailable() if self.sender is not None else None
        if unavailable:
            self.drops.add(unavailable, wanted)
            return
        try:
            from azureml.ai.monitoring.context import BasicCorrelationContext

            context = BasicCorrelationContext(id=request_id)
            if self.inputs is not None:
                self.inputs.collect(input_frame(self.input_spec, decoded), context)
            if self.outputs is not None:
                self.outputs.collect(output_frame(self.output_spec, prediction), context)
        except Exception as err:  # building a frame failed: a fault here, not in the request
            self.drops.add(f"{type(err).__name__}: {err}", wanted)


# ---------------------------------------------------------------------------------------------- what is collected


def input_frame(spec: InputSpec, decoded: Decoded) -> pd.DataFrame:
    """One row per request row, the columns by input kind (docs/data-collection.md):

    * named features (``spec.names``): one column per name, the values as the client sent them;
    * a flat row of at most ``MAX_FEATURE_COLUMNS`` numbers without names: columns ``f0`` .. ``fN``;
    * anything larger or shaped (an image as numbers, ``(channels, height, width)``): summary statistics of the
      row's values as sent (``mean``, ``std``, ``min``, ``max``), and per channel means when there are several;
    * what a row that was not numbers held (``decoded.item_facts``: an image's format, size and mode; a text's
      length and token count), one column per fact; then the statistics above only for an image.
    """
    rows = batch_rows(decoded.batch)  # a text model's batch is its inputs by name
    columns: dict[str, Any] = {}
    facts = decoded.item_facts
    if facts:
        names = list(dict.fromkeys(key for fact in facts for key in fact))
        for name in names:
            columns[name] = [_scalar(fact.get(name)) for fact in facts]
    shape = spec.shape
    if facts and len(shape) < 2:
        return frame(columns, rows)  # a text's token ids: its facts describe it, not the ids
    raw = sent_values(spec, decoded.batch)  # (rows, *shape) float64, as the client sent them
    if spec.names:
        for index, name in enumerate(spec.names):
            columns[name] = raw[:, index]
    elif len(shape) == 1 and shape[0] <= MAX_FEATURE_COLUMNS:
        for index in range(shape[0]):
            columns[f"f{index}"] = raw[:, index]
    else:
        flat = raw.reshape(rows, -1)
        columns.update(mean=flat.mean(axis=1), std=flat.std(axis=1), min=flat.min(axis=1), max=flat.max(axis=1))
        if len(shape) == 3 and shape[0] > 1:  # (channels, height, width): each channel's mean
            per_channel = raw.reshape(rows, shape[0], -1).mean(axis=2)
            for channel in range(shape[0]):
                columns[f"c{channel}_mean"] = per_channel[:, channel]
    return frame(columns, rows)


def output_frame(spec: OutputSpec, prediction: Prediction) -> pd.DataFrame:
    """One row per request row: classification ``label`` and ``score`` (its probability); multilabel ``labels``
    (those at or over the threshold, joined by ``|``), and the top ``label`` and ``score``; regression one column
    per output name; embedding the vector's ``norm``."""
    values = prediction.values
    if spec.kind == "embedding":  # a vector per row: its length, what drifts when the inputs do
        return frame({"norm": np.linalg.norm(values.astype(np.float64), axis=1).round(7)}, len(values))
    if spec.kind == "regression":
        return frame({name: values[:, i] for i, name in enumerate(spec.names)}, len(values))
    best = values.argmax(axis=1)
    labels = spec.labels
    columns: dict[str, Any] = {
        "label": [labels[i] for i in best.tolist()],
        "score": values.max(axis=1).astype(np.float64).round(7),  # the probability of the label at argmax
    }
    if spec.kind == "multilabel":
        columns["labels"] = ["|".join(map(str, row)) for row in prediction.labels()]
    return frame(columns, len(values))


def frame(columns: dict[str, Any], rows: int) -> pd.DataFrame:
    """A DataFrame of ``columns`` (name -> one value per row), built the cheap way (one 2-D array), that serialises
    itself for the Collector without pandas' ``to_json`` (``_CollectedFrame``)."""
    names = list(columns)
    lists = [v.tolist() if isinstance(v, np.ndarray) else list(v) for v in columns.values()]
    numeric = all(isinstance(v, np.ndarray) and v.dtype.kind == "f" for v in columns.values())
    values = np.empty((rows, len(names)), dtype=np.float64 if numeric else object)
    for index, column in enumerate(lists):
        values[:, index] = column
    collected = _frame_class()(values, columns=_column_index(tuple(names)), copy=False)
    object.__setattr__(collected, "_collected", (names, lists))  # past pandas' own __setattr__, which costs more
    return collected


def sent_values(spec: InputSpec, batch: np.ndarray) -> np.ndarray:
    """The model batch back in the units the client sent (the spec's ``subtract``/``divide`` undone), each value
    rounded to the decimals that the float32 model input still holds for it, so that 5.1 sent through a standardised
    input is collected as 5.1 and not 5.099998 (a value sent with more digits than float32 keeps loses those)."""
    subtract, divide = spec._offsets
    x = batch.astype(np.float64)
    error = np.abs(x)  # bound of float32's rounding in raw units: |model value| * |divide| + |subtract|, times 2**-23
    if divide is not None:
        x = x * divide
        error = error * np.abs(divide)
    if subtract is not None:
        x = x + subtract
        error = error + np.abs(subtract)
    error = (error + np.abs(x)) * 2.0**-23
    decimals = np.clip(np.floor(-np.log10(np.maximum(4 * error, 1e-300))), 0, 15)
    scale = 10.0**decimals
    return np.round(x * scale) / scale


def _scalar(value: Any) -> Any:
    """A fact as one DataFrame cell: numbers and strings as they are, anything else as JSON text."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    return json.dumps(value, default=str)


@functools.lru_cache(maxsize=64)
def _column_index(names: tuple[str, ...]) -> pd.Index:
    """The columns' Index, made once per set of names (pandas shares Indexes between frames; making one costs more
    than the rest of a one-row frame)."""
    import pandas as pd

    return pd.Index(names, dtype=object)


_FRAME_CLASS: type | None = None


def _frame_class() -> type:
    """``_CollectedFrame``: a DataFrame that remembers the plain lists it was built from and turns them into the
    Collector's JSON records itself. The SDK calls ``to_json(orient="records")`` on every payload (in its sending
    thread), and pandas' own costs more than building and sending the record together (docs/data-collection.md,
    "Cost"); the JSON is the same records. It reports itself as ``pandas.DataFrame``, the type the SDK names in the
    ``ce-collect-data-type`` header, which it is. Made on first use, so that this module imports without pandas."""
    global _FRAME_CLASS
    if _FRAME_CLASS is None:
        import pandas as pd

        class _CollectedFrame(pd.DataFrame):
            _metadata = ["_collected"]  # noqa: RUF012  (pandas' own convention for subclass attributes)

            @property
            def _constructor(self) -> type:
                return pd.DataFrame  # what pandas operations on it make: plain frames, without the lists

            def to_json(self, path_or_buf: Any = None, *args: Any, **kwargs: Any) -> Any:
                collected = getattr(self, "_collected", None)
                if collected is not None and path_or_buf is None and not args and kwargs == {"orient": "records"}:
                    names, lists = collected
                    try:  # NaN or infinity (a model's fault): pandas' own, which writes null
                        return json.dumps(
                            [dict(zip(names, row, strict=True)) for row in zip(*lists, strict=True)], allow_nan=False
                        )
                    except (TypeError, ValueError):
                        pass
                return super().to_json(path_or_buf, *args, **kwargs)

        _CollectedFrame.__module__, _CollectedFrame.__qualname__ = "pandas", "DataFrame"
        _FRAME_CLASS = _CollectedFrame
    return _FRAME_CLASS


# ---------------------------------------------------------------------------------------------- the SDK's parts


def _collect_everything(config: Any) -> None:
    """Set the Collector's own sampling to 100% (the template has sampled the request already), for both ways the
    SDK is configured: the data_collector's file (per collection) and ``AZUREML_MDC_SAMPLE_RATE``."""
    for settings in config.collections().values():
        settings["sampleRatePercentage"] = 100
    config._sample_rate_percentage = 100


def _bounded_sender(host: str, port: int) -> Any:
    """The SDK's ``MdcSender`` (same URL, headers and body: its ``send`` builds them) with its one post replaced:
    over one kept-alive ``AgentConnection`` instead of a new ``requests`` connection per payload, with
    ``SEND_TIMEOUT_S``; after a failed post it pauses ``PAUSE_AFTER_FAILURE_S``, doubled per failure in a row up to
    ``LONGEST_PAUSE_S`` (the queue meanwhile fills and
    ``DataCollection.collect`` drops before building anything). A failure is raised as the ``requests`` error the
    SDK handles. Defined in a function so that this module imports without the SDK."""
    import requests
    from azureml.ai.monitoring.worker.sender import MdcSender

    class BoundedSender(MdcSender):
        def __init__(self) -> None:
            super().__init__(host, port)
            self.connection = AgentConnection(host, port, SEND_TIMEOUT_S)
            self.failures = _Counter("data collection: sending to the agent failed", "time(s)")
            self.posting_since: float | None = None  # time.monotonic() when the post under way began
            self.paused_until = 0.0
            self.pause = PAUSE_AFTER_FAILURE_S

        def unavailable(self) -> str | None:
            """Why records should be dropped now without being built, or None: sending is paused after a failure,
            or a post has waited more than ``STALLED_AFTER_S`` for the agent's answer."""
            now, since = time.monotonic(), self.posting_since
            if now < self.paused_until:
                return "sending is paused after a failed post to the agent at " + f"{host}:{port}"
            if since is not None and now - since > STALLED_AFTER_S:
                return f"the agent at {host}:{port} has not answered a post for {now - since:.1f} s"
            return None

        def _post_request(self, url: str, payload: Any, headers: dict[str, str] | None = None) -> tuple[int, str]:
            self.posting_since = time.monotonic()
            try:
                return self._post(payload, headers)
            finally:
                self.posting_since = None

        def _post(self, payload: Any, headers: dict[str, str] | None) -> tuple[int, str]:
            body = payload.encode() if isinstance(payload, str) else payload
            for attempt in (1, 2):  # a kept-alive connection the agent closed while idle: once more on a new one
                reused = self.connection.open
                try:
                    status, answer = self.connection.post(self.path, headers or {}, body)
                    break
                except (OSError, ValueError) as err:
                    self.connection.close()
                    if reused and attempt == 1 and not isinstance(err, TimeoutError):
                        continue
                    pause, self.pause = self.pause, min(self.pause * 2, LONGEST_PAUSE_S)
                    self.failures.add(f"{type(err).__name__}: {err}; pausing {pause:g} s")
                    self.paused_until = time.monotonic() + pause
                    self.posting_since = None
                    time.sleep(pause)
                    raise requests.exceptions.ConnectionError(f"{type(err).__name__}: {err}") from err
            self.pause = PAUSE_AFTER_FAILURE_S  # the agent answered: the next failure pauses briefly again
            text = answer.decode("utf-8", "replace")
            if not 200 <= status < 300:
                self.failures.add(f"the agent answered {status}: {text[:200]}")
            return status, text

    return BoundedSender()


class AgentConnection:
    """One kept-alive HTTP/1.1 connection to the agent: each post is one write (headers and body together, with
    TCP_NODELAY), its answer read by Content-Length, chunks, or to the connection's end. A fraction of what
    ``requests`` or ``http.client`` spend per post (docs/data-collection.md, "Cost"), and they would be spent on every
    collected record, in the scoring worker.

    Raises (from ``post``): OSError (refused, reset, ``TimeoutError``), ValueError (an answer that is not HTTP).
    """

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._socket: socket.socket | None = None
        self._buffer = b""

    @property
    def open(self) -> bool:
        return self._socket is not None

    def post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        """POST ``body`` to ``path``; returns the answer's status and body."""
        if self._socket is None:
            self._socket = socket.create_connection((self.host, self.port), self.timeout)
            self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._buffer = b""
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items() if name.lower() != "content-length")
        head = f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Length: {len(body)}\r\n{lines}\r\n"
        self._socket.sendall(head.encode("latin-1") + body)
        status_line, fields = self._read_head()
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise ValueError(f"the agent's answer does not start like HTTP: {status_line[:80]!r}")
        keep = parts[0] == b"HTTP/1.1" and fields.get(b"connection", b"").lower() != b"close"
        if b"chunked" in fields.get(b"transfer-encoding", b"").lower():
            answer = self._read_chunks()
        elif b"content-length" in fields:
            answer = self._read_exactly(int(fields[b"content-length"]))
        else:
            answer, keep = self._read_to_end(), False
        if not keep:
            self.close()
        return int(parts[1]), answer

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._buffer = b""

    def _fill(self) -> None:
        data = self._socket.recv(65536)
        if not data:
            raise ConnectionResetError("the agent closed the connection before it answered")
        self._buffer += data

    def _read_line(self, end: bytes = b"\r\n") -> bytes:
        while (at := self._buffer.find(end)) < 0:
            self._fill()
        line, self._buffer = self._buffer[:at], self._buffer[at + len(end) :]
        return line

    def _read_head(self) -> tuple[bytes, dict[bytes, bytes]]:
        status_line, *lines = self._read_line(b"\r\n\r\n").split(b"\r\n")
        fields = {}
        for line in lines:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip()
        return status_line, fields

    def _read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _read_chunks(self) -> bytes:
        pieces = []
        while size := int(self._read_line().split(b";", 1)[0] or b"0", 16):
            pieces.append(self._read_exactly(size))
            self._read_line()  # the chunk's closing CRLF
        while self._read_line():  # trailers, up to the empty line
            pass
        return b"".join(pieces)

    def _read_to_end(self) -> bytes:
        while data := self._socket.recv(65536):
            self._buffer += data
        data, self._buffer = self._buffer, b""
        return data


class _Counter:
    """Counts events of one kind and logs at most one warning per ``LOG_EVERY_S`` with the count since the last."""

    def __init__(self, what: str, unit: str) -> None:
        self.what, self.unit = what, unit
        self.total = 0
        self._unlogged = 0
        self._next_log = 0.0
        self._lock = threading.Lock()  # the sender thread and the request thread both count

    def add(self, reason: str, count: int = 1) -> None:
        with self._lock:
            self.total += count
            self._unlogged += count
            now = time.monotonic()
            if now < self._next_log:
                return
            unlogged, self._unlogged, self._next_log = self._unlogged, 0, now + LOG_EVERY_S
        logger.warning("%s %d %s (%d in all); latest: %s", self.what, unlogged, self.unit, self.total, reason)

    def add_error(self, err: Exception) -> None:
        """The Collectors' ``on_error``: a record the SDK dropped (a full queue, sampling off, a closed queue)."""
        self.add(str(err))


def _limit_logger(target: logging.Logger) -> None:
    """Let at most one record per ``LOG_EVERY_S`` through ``target`` at WARNING and above (the SDK's own failed-send
    lines, one per payload); INFO and below pass."""
    if any(isinstance(f, _RateLimit) for f in target.filters):
        return
    target.addFilter(_RateLimit())


class _RateLimit(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self._next = 0.0
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        now = time.monotonic()
        if now < self._next:
            self._suppressed += 1
            return False
        if self._suppressed:
            record.msg = f"{record.msg} ({self._suppressed} like it suppressed)"
            self._suppressed = 0
        self._next = now + LOG_EVERY_S
        return True
