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
* Its ``collect()`` builds the DataFrame and the payload in the request's thread, and its sending thread posts with
  ``requests``, a new connection per record, without a timeout, waking for every record: each costs the worker
  CPU, and an agent that accepts and never answers would stop the thread for good. The template starts the SDK
  without that thread (``_start_sdk_without_its_sender``). A request's thread copies what it collects (a small
  input and its answer; ``DataCollection.collect``) and hands it over; the template's own thread (``AgentSender``)
  every ``LINGER_S`` works out the columns of all the requests handed over at once, builds their DataFrames
  through the real Collectors, and posts the payloads with the SDK's headers and body, pipelined over one
  kept-alive connection, with a timeout, pausing after failures. Pandas and the SDK cost several times less per
  record in one run of many than spread between requests (docs/data-collection.md, "Cost").
* A full queue drops the record only after the DataFrame was built and serialised. The template looks first (at
  the queue, at a paused sender, at a post unanswered for ``STALLED_AFTER_S``), and drops the request's records
  before anything is built.
* It accepts only pandas DataFrames, and of each asks only for ``to_json(orient="records")``; for a one-row record
  pandas' construction and ``to_json`` cost more than all the rest. The template's frames write the same records
  (floats at full precision) from the plain lists they keep, and build pandas' own parts only if something else
  is asked of them (``frame``).
* Its default ``on_error`` raises, and it logs every failed send. The template's ``on_error`` counts the drop, and
  drops and send failures are logged at most once a minute each, with counts.

What is collected per input kind is in ``docs/data-collection.md`` (``input_columns``, ``output_columns``).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import importlib
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
SUMMARISE_LATER_BYTES = 64 * 1024  # a model input this small is copied and summarised in the sending thread
LINGER_S = 0.2  # after a record arrives, the sender waits this long for more, and sends them together
MOST_PER_WRITE = 256  # records in one pipelined write at most (their answers fit in the sockets' buffers)
SEND_TIMEOUT_S = 5.0  # an exchange's write, then its answers; past it the exchange fails and sending pauses
ANSWER_POLL_S = 0.002  # the sender looks for the agent's answers after this long, not as each one arrives...
LONGEST_POLL_S = 0.1  # ...then twice as long each time nothing has, up to this
PAUSE_AFTER_FAILURE_S = 5.0  # after a failed post the sender waits this long, doubled per failure in a row...
LONGEST_PAUSE_S = 60.0  # ...up to this; a post that succeeds resets it
STALLED_AFTER_S = 0.5  # a post unanswered this long (an agent answers in milliseconds): records are dropped unbuilt
LOG_EVERY_S = 60.0  # drops and send failures: at most one line per this many seconds, each with its count
MDC_LOGGERS = ("mdc", "mdc.worker", "mdc.sender", "mdc.collector")
SENDER_THREAD_NAME = "mdc-sender"  # the sending thread's name to the OS (top -H, /proc/<pid>/task/*/comm)

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
        input_spec: what a row means, for ``input_columns``.
        output_spec: what the values mean, for ``output_columns``.
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
        from azureml.ai.monitoring.queue import get_queue
        from azureml.ai.monitoring.worker import get_worker

        collection = cls(None, None, 1.0, input_spec, output_spec)
        on_error = collection.drops.add_error
        _start_sdk_without_its_sender()  # the template's AgentSender sends instead (its docstring says why)
        if get_worker() is not None:
            raise RuntimeError("the SDK's sending thread runs already: the Collector was started before score.init()")
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
        collection.sender = _sender_for(collection.queue, config)
        collection.target = "local capture (the log)" if config.local_capture() else f"{config.host()}:{config.port()}"
        for name in MDC_LOGGERS:  # the SDK logs each failed send; once a minute is enough
            _limit_logger(logging.getLogger(name))
        logger.info(
            "data collection on: %s to %s, %g%% of requests (both records of a sampled request), queue %d, "
            "sent in batches",
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
        """Take one request's records, if it is sampled and there is room; a failure is counted and logged
        (rate-limited), never raised: the answer has been computed and must go out unchanged.

        The request's thread only copies a small input and its answer (at most ``SUMMARISE_LATER_BYTES``; a larger
        input's few columns are worked out here, so that it is not kept) and hands them to the sending thread,
        which builds the records of many requests in one run (``build``): pandas and the SDK cost far less per
        record that way than spread between requests."""
        rate = self.rate
        if rate < 1.0 and random.random() >= rate:
            return
        wanted = (self.inputs is not None) + (self.outputs is not None)
        sender = self.sender
        if sender.backlog(wanted) + wanted > self.queue.capacity():
            self.drops.add("the queue is full: the agent at " + self.target + " is not keeping up", wanted)
            return
        unavailable = sender.unavailable()
        if unavailable:
            self.drops.add(unavailable, wanted)
            return
        if _nbytes(decoded.batch) <= SUMMARISE_LATER_BYTES:  # copied: its columns are worked out with others'
            decoded = dataclasses.replace(decoded, batch=_copied(decoded.batch))
            prediction = dataclasses.replace(prediction, values=prediction.values.copy())
            sender.hand(self, Handed(request_id, int(time.time()), decoded, prediction))
            return
        try:  # a large input is not kept: its few columns are worked out now
            inputs, outputs = self.columns(decoded, prediction)
        except Exception as err:  # a fault here, not in the request
            self.drops.add(f"{type(err).__name__}: {err}", wanted)
            return
        sender.hand(self, Handed(request_id, int(time.time()), inputs=inputs, outputs=outputs))

    def build(self, requests: list[Handed]) -> None:
        """In the sending thread: the requests' columns (``work_out_columns``), then each one's DataFrames through
        the Collectors onto the SDK's queue, correlated by its id and stamped with the time it was answered. A
        request whose records cannot be built is counted as dropped; the others go on."""
        from azureml.ai.monitoring.context import BasicCorrelationContext

        self.work_out_columns(requests)
        wanted = (self.inputs is not None) + (self.outputs is not None)
        for request in requests:
            if request.failed:
                self.drops.add(request.failed, wanted)
                continue
            try:
                context = BasicCorrelationContext(id=request.request_id, timestamp=request.answered_at)
                if self.inputs is not None:
                    self.inputs.collect(frame(*request.inputs), context)
                if self.outputs is not None:
                    self.outputs.collect(frame(*request.outputs), context)
            except Exception as err:  # a fault here, not in the request
                self.drops.add(f"{type(err).__name__}: {err}", wanted)

    def work_out_columns(self, requests: list[Handed]) -> None:
        """The columns of the requests handed over with their input: those of numbers (one array each) in one
        ``input_columns`` and one ``output_columns`` call over all their rows, then split per request (a call costs
        about the same for one row as for a hundred); texts one by one."""
        later = [r for r in requests if r.decoded is not None]
        together = [r for r in later if isinstance(r.decoded.batch, np.ndarray)]
        for group in ([r for r in together if r.decoded.item_facts], [r for r in together if not r.decoded.item_facts]):
            if len(group) > 1:
                try:
                    self._columns_together(group)
                    continue
                except Exception:  # one request's fault must not drop the others': each on its own below
                    pass
            for request in group:
                self._columns_alone(request)
        for request in later:
            if request.decoded is not None and not isinstance(request.decoded.batch, np.ndarray):
                self._columns_alone(request)

    def _columns_together(self, group: list[Handed]) -> None:
        first = group[0]
        decoded = dataclasses.replace(
            first.decoded,
            batch=np.concatenate([r.decoded.batch for r in group]),
            item_facts=tuple(fact for r in group for fact in r.decoded.item_facts),
        )
        prediction = dataclasses.replace(first.prediction, values=np.concatenate([r.prediction.values for r in group]))
        inputs, outputs = self.columns(decoded, prediction)
        start = 0
        for request in group:
            stop = start + len(request.decoded.batch)
            request.inputs = _rows(inputs, start, stop)
            request.outputs = _rows(outputs, start, stop)
            request.decoded = request.prediction = None
            start = stop

    def _columns_alone(self, request: Handed) -> None:
        try:
            request.inputs, request.outputs = self.columns(request.decoded, request.prediction)
        except Exception as err:
            request.failed = f"{type(err).__name__}: {err}"
        request.decoded = request.prediction = None

    def columns(self, decoded: Decoded, prediction: Prediction) -> tuple[Columns | None, Columns | None]:
        """A request's (or a group's) ``model_inputs`` and ``model_outputs`` columns; None for a collection that is
        not enabled."""
        inputs = input_columns(self.input_spec, decoded) if self.inputs is not None else None
        outputs = output_columns(self.output_spec, prediction) if self.outputs is not None else None
        return inputs, outputs


@dataclass(slots=True)
class Handed:
    """One collected request, handed from its thread to the sending thread.

    Attributes:
        request_id: the correlation id of its records.
        answered_at: when it was answered, in seconds since the epoch (the records' ``ce-time``).
        decoded: a copy of its input, while its columns are still to be worked out (a small input), else None.
        prediction: a copy of its answer, likewise.
        inputs: its ``model_inputs`` columns, once worked out.
        outputs: its ``model_outputs`` columns, once worked out.
        failed: why its columns could not be worked out, if they could not.
    """

    request_id: str
    answered_at: int
    decoded: Decoded | None = None
    prediction: Prediction | None = None
    inputs: Columns | None = None
    outputs: Columns | None = None
    failed: str = ""


def _rows(columns: Columns | None, start: int, stop: int) -> Columns | None:
    """Rows ``start`` to ``stop`` of ``columns``."""
    if columns is None:
        return None
    return {name: values[start:stop] for name, values in columns[0].items()}, stop - start


# ---------------------------------------------------------------------------------------------- what is collected


Columns = tuple[dict[str, Any], int]  # a frame to be: column name -> one value per row, and the number of rows


def _nbytes(batch: np.ndarray | dict[str, np.ndarray]) -> int:
    return batch.nbytes if isinstance(batch, np.ndarray) else sum(array.nbytes for array in batch.values())


def _copied(batch: np.ndarray | dict[str, np.ndarray]) -> np.ndarray | dict[str, np.ndarray]:
    return batch.copy() if isinstance(batch, np.ndarray) else {name: array.copy() for name, array in batch.items()}


def input_frame(spec: InputSpec, decoded: Decoded) -> pd.DataFrame:
    """The ``model_inputs`` DataFrame of a request (``input_columns``)."""
    return frame(*input_columns(spec, decoded))


def output_frame(spec: OutputSpec, prediction: Prediction) -> pd.DataFrame:
    """The ``model_outputs`` DataFrame of a request (``output_columns``)."""
    return frame(*output_columns(spec, prediction))


def input_columns(spec: InputSpec, decoded: Decoded) -> Columns:
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
        return columns, rows  # a text's token ids: its facts describe it, not the ids
    if spec.names or (len(shape) == 1 and shape[0] <= MAX_FEATURE_COLUMNS):
        raw = sent_values(spec, decoded.batch)  # (rows, *shape) float64, each value as the client sent it
        names = spec.names or tuple(f"f{index}" for index in range(shape[0]))
        for index, name in enumerate(names):
            columns[name] = raw[:, index]
        return columns, rows
    columns.update(summary(spec, decoded.batch))
    return columns, rows


def summary(spec: InputSpec, batch: np.ndarray) -> dict[str, np.ndarray]:
    """Per row, ``mean``, ``std``, ``min`` and ``max`` of its values in the units the client sent (the spec's
    ``subtract``/``divide`` undone), and each channel's mean (``c0_mean`` ..) when the row is ``(channels, height,
    width)`` with several; each to 7 significant digits, what the float32 model input holds."""
    rows = len(batch)
    raw = in_sent_units(spec, batch)
    flat = raw.reshape(rows, -1)
    mean = np.add.reduce(flat, axis=1) / flat.shape[1]
    spread = flat - mean[:, None]
    std = np.sqrt(np.add.reduce(spread * spread, axis=1) / flat.shape[1])
    stats = [mean, std, np.minimum.reduce(flat, axis=1), np.maximum.reduce(flat, axis=1)]
    names = ["mean", "std", "min", "max"]
    shape = spec.shape
    if len(shape) == 3 and shape[0] > 1:  # (channels, height, width): each channel's mean
        per_channel = np.add.reduce(raw.reshape(rows, shape[0], -1), axis=2) / (raw[0, 0].size)
        stats += list(per_channel.T)
        names += [f"c{channel}_mean" for channel in range(shape[0])]
    table = significant(np.stack(stats, axis=1), 7)
    return {name: table[:, index] for index, name in enumerate(names)}


def significant(values: np.ndarray, digits: int) -> np.ndarray:
    """``values`` rounded to ``digits`` significant digits (so that 10 sent through ``/ 255`` in float32 is 10.0
    again, not 9.9999998)."""
    magnitude = np.floor(np.log10(np.abs(values), where=values != 0, out=np.zeros_like(values)))
    scale = 10.0 ** (digits - 1 - magnitude)
    return np.round(values * scale) / scale


def output_columns(spec: OutputSpec, prediction: Prediction) -> Columns:
    """One row per request row: classification ``label`` and ``score`` (its probability); multilabel ``labels``
    (those at or over the threshold, joined by ``|``), and the top ``label`` and ``score``; regression one column
    per output name; embedding the vector's ``norm``."""
    values = prediction.values
    if spec.kind == "embedding":  # a vector per row: its length, what drifts when the inputs do
        return {"norm": np.linalg.norm(values.astype(np.float64), axis=1).round(7)}, len(values)
    if spec.kind == "regression":
        return {name: values[:, i] for i, name in enumerate(spec.names)}, len(values)
    best = values.argmax(axis=1)
    labels = spec.labels
    columns: dict[str, Any] = {
        "label": [labels[i] for i in best.tolist()],
        "score": values.max(axis=1).astype(np.float64).round(7),  # the probability of the label at argmax
    }
    if spec.kind == "multilabel":
        columns["labels"] = ["|".join(map(str, row)) for row in prediction.labels()]
    return columns, len(values)


def frame(columns: dict[str, Any], rows: int) -> pd.DataFrame:
    """A DataFrame of ``columns`` (name -> one value per row) for the Collector, which asks it only for its JSON
    records: it writes them from the plain lists it keeps, and builds pandas' own parts only if something else is
    asked of it (``_CollectedFrame``)."""
    lists = [v.tolist() if isinstance(v, np.ndarray) else list(v) for v in columns.values()]
    numeric = all(isinstance(v, np.ndarray) and v.dtype.kind == "f" for v in columns.values())
    return _frame_class()(list(columns), lists, rows, numeric)


def in_sent_units(spec: InputSpec, batch: np.ndarray) -> np.ndarray:
    """The model batch as float64 in the units the client sent: the spec's ``subtract``/``divide`` undone."""
    subtract, divide = spec._offsets
    raw = batch.astype(np.float64)
    if divide is not None:
        raw *= divide
    if subtract is not None:
        raw += subtract
    return raw


def sent_values(spec: InputSpec, batch: np.ndarray) -> np.ndarray:
    """The model batch back in the units the client sent (the spec's ``subtract``/``divide`` undone), each value
    rounded to the decimals that the float32 model input still holds for it, so that 5.1 sent through a standardised
    input is collected as 5.1 and not 5.099998 (a value sent with more digits than float32 keeps loses those)."""
    subtract, divide = spec._offsets
    x = in_sent_units(spec, batch)
    error = np.abs(batch.astype(np.float64))  # float32's rounding in sent units: |model value| * |divide| ...
    if divide is not None:
        error *= np.abs(divide)
    if subtract is not None:
        error += np.abs(subtract)  # ... + |subtract| + |x|, times 2**-23
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
_PANDAS_OWN = frozenset({"_mgr", "_attrs", "_flags"})  # what pandas' NDFrame.__init__ sets on every frame
_RECORDS_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"))  # as compact as pandas' to_json; made once


def _frame_class() -> type:
    """``_CollectedFrame``: a pandas DataFrame that keeps the plain lists it was made of, writes the Collector's JSON
    records from them itself, and builds pandas' own parts of itself (its block manager) only when first asked for
    anything else.

    The SDK's ``collect()`` accepts only DataFrames, and of a frame it uses only its type and ``to_json(
    orient="records")`` (``azureml/ai/monitoring/payload/logdata.py``). For a one-row record pandas' construction
    and its ``to_json`` cost more than the rest of the record together (docs/data-collection.md, "Cost"), so the
    frames the template hands the Collector skip both; anything else asked of one (its repr, ``to_dict``, the SDK's
    compact format's ``to_string``) first builds it as ``pd.DataFrame(values, columns=...)`` would, and from then on
    it is an ordinary DataFrame, written by pandas. Its own records hold the same values as pandas' but floats at
    full precision (pandas rounds them to 10 decimals: 1.5e-12 would be 0.0). It reports itself as
    ``pandas.DataFrame``, the type the SDK names in the ``ce-collect-data-type`` header. Made on first use, so that
    this module imports without pandas."""
    global _FRAME_CLASS
    if _FRAME_CLASS is None:
        import pandas as pd

        class _CollectedFrame(pd.DataFrame):
            _metadata = ["_collected"]  # noqa: RUF012  (pandas' own convention for subclass attributes)

            def __init__(self, names: list[str], lists: list[list], rows: int, numeric: bool) -> None:
                # not pandas' __init__: pandas' parts are built on first use (__getattr__)
                object.__setattr__(self, "_collected", (names, lists, rows, numeric))

            def __getattr__(self, name: str) -> Any:
                if name in _PANDAS_OWN and "_mgr" not in self.__dict__:  # the first use as a DataFrame
                    names, lists, rows, numeric = self._collected
                    values = np.empty((rows, len(names)), dtype=np.float64 if numeric else object)
                    for index, column in enumerate(lists):
                        values[:, index] = column
                    # the dtype given: pandas would otherwise look into each object column for dates
                    pd.DataFrame.__init__(
                        self, values, columns=_column_index(tuple(names)), dtype=values.dtype, copy=False
                    )
                    return object.__getattribute__(self, name)
                return super().__getattr__(name)

            @property
            def _constructor(self) -> type:
                return pd.DataFrame  # what pandas operations on it make: plain frames, without the lists

            def __reduce__(self) -> Any:  # not __reduce_ex__: pickle refuses a plain frame's __newobj__ for this class
                return pd.DataFrame(self).__reduce__()  # pickled as the plain DataFrame it is

            def to_json(self, path_or_buf: Any = None, *args: Any, **kwargs: Any) -> Any:
                names, lists, _, _ = self._collected
                built = "_mgr" in self.__dict__  # then it may have been changed since: pandas writes it
                if not built and path_or_buf is None and not args and kwargs == {"orient": "records"}:
                    try:  # NaN or infinity (a model's fault): pandas' own, which writes null
                        return _RECORDS_JSON.encode(
                            [dict(zip(names, row, strict=True)) for row in zip(*lists, strict=True)]
                        )
                    except (TypeError, ValueError):
                        pass
                return super().to_json(path_or_buf, *args, **kwargs)

        _CollectedFrame.__module__ = "pandas"
        _CollectedFrame.__name__ = _CollectedFrame.__qualname__ = "DataFrame"
        _FRAME_CLASS = _CollectedFrame
    return _FRAME_CLASS


# ---------------------------------------------------------------------------------------------- the SDK's parts


def _collect_everything(config: Any) -> None:
    """Set the Collector's own sampling to 100% (the template has sampled the request already), for both ways the
    SDK is configured: the data_collector's file (per collection) and ``AZUREML_MDC_SAMPLE_RATE``."""
    for settings in config.collections().values():
        settings["sampleRatePercentage"] = 100
    config._sample_rate_percentage = 100


def _start_sdk_without_its_sender() -> None:
    """What the SDK's ``init()`` (``azureml/ai/monitoring/init.py``) does, up to its last step: its logging, its
    configuration (the data_collector's file or the ``AZUREML_MDC_*`` environment) and its queue, but not its sending
    thread, which ``AgentSender`` replaces. (Its ``AZUREML_MDC_WORKER_DISABLED`` switch would do the same, but the
    SDK reads it only when configured by environment, not from the file a deployment's data_collector gives.)"""
    from azureml.ai.monitoring.config import get_config, init_config
    from azureml.ai.monitoring.logger import init_logging
    from azureml.ai.monitoring.queue import init_queue

    sdk = importlib.import_module("azureml.ai.monitoring.init")  # the module; the package exports its function
    if sdk.is_sdk_ready():
        return
    init_logging()
    init_config("default")
    config = get_config()
    if config.enabled():
        init_queue(config.queue_capacity())
        sdk.sdk_ready = True  # what init() sets last: the Collectors then use this configuration and queue


_sender: AgentSender | None = None  # the SDK queue's one reader, however often open() runs in this process


def _sender_for(queue: Any, config: Any) -> AgentSender:
    global _sender
    if _sender is None or _sender.queue is not queue or not _sender.thread.is_alive():
        _sender = AgentSender(queue, config)
    return _sender


class AgentSender:
    """The worker's one sending thread, in place of the SDK's (which ``_start_sdk_without_its_sender`` does not
    start). Requests' threads hand it what they collect (``hand``); it builds their records through the Collectors
    (``DataCollection.build``) and posts the payloads to the agent as the SDK would (same path, headers and body,
    ``RequestWriter``), with three differences that matter in a scoring worker:

    * **Batches.** After a request is handed over it waits ``LINGER_S``, so the requests answered meanwhile go with
      it: one wake-up of this thread, one run of pandas and the SDK, and one write per batch, instead of two of each
      per request.
    * **Pipelined posts over one kept-alive connection.** A batch's posts go out in one write and their answers are
      read back in order (HTTP/1.1 pipelining): a few system calls per batch instead of a new connection per
      record. An agent that closes the connection after an answer has not read the posts after it, so those are
      sent again, and from then on one post at a time. Posts are never retried once the agent may have read them,
      so a record is never stored twice; one lost to a failure is counted and logged.
    * **Bounded.** Each exchange has ``SEND_TIMEOUT_S``; after a failure sending pauses ``PAUSE_AFTER_FAILURE_S``,
      doubled per failure in a row up to ``LONGEST_PAUSE_S``. Meanwhile ``unavailable()`` tells
      ``DataCollection.collect`` to drop records before building them.

    With the SDK's local capture (``AZUREML_MDC_LOCAL_CAPTURE=true``) each payload goes to its ``LocalCapture``, which
    logs it, instead.
    """

    def __init__(self, queue: Any, config: Any) -> None:
        from azureml.ai.monitoring.worker.sender import LocalCapture

        self.queue = queue
        self.host, self.port = config.host(), config.port()
        self.local = LocalCapture() if config.local_capture() else None
        self.writer = RequestWriter(self.host, self.port)
        self.connection = AgentConnection(self.host, self.port, SEND_TIMEOUT_S)
        self.failures = _Counter("data collection: sending to the agent failed", "time(s)")
        self.one_at_a_time = False  # set once the agent shows it closes the connection after an answer
        self.posting_since: float | None = None  # time.monotonic() when the exchange under way began
        self.paused_until = 0.0
        self.pause = PAUSE_AFTER_FAILURE_S
        self.pending: collections.deque[tuple[DataCollection, Handed]] = collections.deque()  # handed over, not built
        self.work = threading.Event()  # set when a request is handed over to an idle thread
        self.thread = threading.Thread(target=self._run, name=SENDER_THREAD_NAME, daemon=True)
        self.thread.start()

    def unavailable(self) -> str | None:
        """Why records should be dropped now without being built, or None: sending is paused after a failure, or
        an exchange has waited more than ``STALLED_AFTER_S`` for the agent's answers."""
        now, since = time.monotonic(), self.posting_since
        if now < self.paused_until:
            return f"sending is paused after a failed post to the agent at {self.host}:{self.port}"
        if since is not None and now - since > STALLED_AFTER_S:
            return f"the agent at {self.host}:{self.port} has not answered a post for {now - since:.1f} s"
        return None

    def backlog(self, per_request: int) -> int:
        """Records waiting in this worker, built or not (``per_request`` records for each request not built yet)."""
        return len(self.pending) * per_request + self.queue.length()

    def hand(self, collection: DataCollection, request: Handed) -> None:
        """Take one request's columns from its thread (``DataCollection.collect``); wakes this thread if idle."""
        self.pending.append((collection, request))
        if not self.work.is_set():
            self.work.set()

    def _run(self) -> None:
        _name_this_thread(SENDER_THREAD_NAME)
        while True:
            self.work.wait()  # a request was handed over
            time.sleep(LINGER_S)  # the requests answered meanwhile go in the same batch
            self.work.clear()  # before taking: a request handed over from now on wakes the next round
            try:
                handed: dict[int, tuple[DataCollection, list[Handed]]] = {}
                while self.pending:
                    collection, request = self.pending.popleft()
                    handed.setdefault(id(collection), (collection, []))[1].append(request)
                for collection, requests in handed.values():
                    collection.build(requests)  # their frames through the Collectors, onto the SDK's queue
                while self.queue.length() > 0:  # the only reader: dequeue won't wait
                    batch = []
                    while len(batch) < MOST_PER_WRITE and self.queue.length() > 0:
                        batch.append(self.queue.dequeue()[0])
                    self.send(batch)
            except Exception as err:  # this thread must outlive any one batch
                self.failures.add(f"a batch was lost: {type(err).__name__}: {err}")

    def send(self, batch: list[Any]) -> None:
        """Post ``batch``'s payloads (or hand them to local capture); failures are counted, never raised."""
        if self.local is not None:
            for payload in batch:
                self.local.send(payload)
            return
        pending = [self.writer.request(payload) for payload in batch]
        retried = False
        while pending:
            chunk = pending[:1] if self.one_at_a_time else pending
            reused = self.connection.open
            self.posting_since = time.monotonic()
            try:
                answers = self.connection.exchange(chunk)
            except AgentError as err:
                self._check(err.answers)
                pending = pending[len(err.answers) :]
                if reused and not err.answers and not retried and not isinstance(err.__cause__, TimeoutError):
                    retried = True  # the agent closed the kept-alive connection while it was idle: once more
                    continue
                self._fail(err, len(pending))
                return
            finally:
                self.posting_since = None
            self._check(answers)
            if len(answers) < len(chunk) and not self.one_at_a_time:
                self.one_at_a_time = True
                logger.warning(
                    "data collection: the agent at %s:%d closes the connection after an answer; "
                    "posting one record at a time from now on",
                    self.host,
                    self.port,
                )
            pending = pending[len(answers) :]
        self.pause = PAUSE_AFTER_FAILURE_S  # the agent answered: the next failure pauses briefly again

    def _check(self, answers: list[tuple[int, bytes]]) -> None:
        for status, text in answers:
            if not 200 <= status < 300:
                self.failures.add(f"the agent answered {status}: {text[:200].decode('utf-8', 'replace')}")

    def _fail(self, err: AgentError, lost: int) -> None:
        pause, self.pause = self.pause, min(self.pause * 2, LONGEST_PAUSE_S)
        self.failures.add(f"{err}; {lost} record(s) lost; pausing {pause:g} s")
        self.paused_until = time.monotonic() + pause
        time.sleep(pause)


# RequestWriter's own headers: as in MdcSender, they win over the context's of the same name
_WRITTEN = {"accept", "content-type", "content-length", "trace-id", "ce-time", "ce-type", "ce-collect-data-type"}
_WRITTEN |= {"ce-agent", "ce-model-version", "host"}


class RequestWriter:
    """A payload as the bytes of the POST the SDK's ``MdcSender.send`` makes of it: the same path, headers and body
    (``tests/test_collection.py`` holds the two equal). The headers that are the same for every payload of a
    collection are written once; per payload only its id, time, request id and length. ``MdcSender.send`` builds
    them all again for each record, in the scoring worker."""

    path = "/modeldata/log"  # MdcSender.path

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._fixed: dict[tuple, str] = {}

    def request(self, payload: Any) -> bytes:
        body = payload.content()
        body = body.encode() if isinstance(body, str) else body
        kind = (payload.designation(), payload.contenttype(), payload.type(), payload.agent(), payload.model_version())
        fixed = self._fixed.get(kind)
        if fixed is None:
            fixed = self._fixed[kind] = self._fixed_lines(*kind)
        lines = [f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n", fixed]
        lines.append(f"Content-Length: {len(body)}\r\ntrace-id: {payload.id()}\r\nce-time: {payload.time()}\r\n")
        own = {f"ce-{key}": str(value) for key, value in payload.headers().items()}  # the context's headers
        if payload.correlation_id() is not None:
            own["ce-x-request-id"] = payload.correlation_id()
        lines += [f"{name}: {value}\r\n" for name, value in own.items() if name.lower() not in _WRITTEN]
        lines.append("\r\n")
        return "".join(lines).encode("latin-1") + body

    @staticmethod
    def _fixed_lines(designation: str, content_type: str, data_type: str, agent: str, version: str | None) -> str:
        lines = f"Accept: */*\r\nContent-Type: {content_type}\r\nce-type: azureml.inference.{designation}\r\n"
        lines += f"ce-collect-data-type: {data_type}\r\nce-agent: {agent}\r\n"
        return lines + (f"ce-model-version: {version}\r\n" if version is not None else "")


class AgentError(Exception):
    """An exchange with the agent failed; ``answers`` are those read before it did (their posts were received)."""

    def __init__(self, message: str, answers: list[tuple[int, bytes]]) -> None:
        super().__init__(message)
        self.answers = answers


class AgentConnection:
    """One kept-alive HTTP/1.1 connection to the agent: the posts of an exchange go out in one write (with
    TCP_NODELAY), each answer read by Content-Length, chunks, or to the connection's end. A fraction of what
    ``requests`` or ``http.client`` spend per post, and that would be spent in the scoring worker.
    """

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._socket: socket.socket | None = None
        self._buffer = b""
        self._fills = 0  # reads that added to the buffer, so far
        self._last_answer: tuple[bytes, tuple[int, bytes, bool]] | None = None  # its bytes, and what they said
        self._deadline = 0.0

    @property
    def open(self) -> bool:
        return self._socket is not None

    def exchange(self, requests: list[bytes]) -> list[tuple[int, bytes]]:
        """Send ``requests`` (each a whole HTTP request, ``RequestWriter.request``) in one write, and read their
        answers in order. Stops early when an answer closes the connection: the agent has not read the requests
        after it.

        Returns:
            ``(status, body)`` of each request answered, in order: all of them, or those before the connection
            closed.

        Raises:
            AgentError: the exchange failed (refused, reset, timed out, an answer that is not HTTP), with the answers
                read before it.
        """
        answers: list[tuple[int, bytes]] = []
        try:
            if self._socket is None:
                self._socket = socket.create_connection((self.host, self.port), self.timeout)
                self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._buffer = b""
            self._socket.settimeout(self.timeout)
            self._socket.sendall(b"".join(requests))
            self._socket.setblocking(False)  # answers are read as they have arrived, every ANSWER_POLL_S (_receive)
            self._deadline = time.monotonic() + self.timeout
            while len(answers) < len(requests):
                status, answer, keep = self._read_answer()
                answers.append((status, answer))
                if not keep:
                    self.close()
                    break
        except (OSError, ValueError) as err:
            self.close()
            raise AgentError(f"{type(err).__name__}: {err}", answers) from err
        return answers

    def _read_answer(self) -> tuple[int, bytes, bool]:
        """The next answer: ``(status, body, whether the connection stays open)``. An agent answers its posts alike,
        so an answer the same, byte for byte, as the one before is taken whole without parsing it again."""
        same = self._last_answer
        if same is not None and self._buffer.startswith(same[0]):
            self._buffer = self._buffer[len(same[0]) :]
            return same[1]
        buffer, fills = self._buffer, self._fills
        answer = self._parse_answer()
        if self._fills == fills and answer[2]:  # read whole from what had arrived, and kept open: it can repeat
            self._last_answer = (buffer[: len(buffer) - len(self._buffer)], answer)
        return answer

    def _parse_answer(self) -> tuple[int, bytes, bool]:
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
        return int(parts[1]), answer, keep

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._buffer = b""

    def _receive(self) -> bytes:
        """What has arrived, waiting for something to in steps from ``ANSWER_POLL_S``, doubled each time nothing
        has, to ``LONGEST_POLL_S``: a few wake-ups of the sending thread per batch however the agent splits its
        answers, and ten a second while it hangs (each wake-up contends for the worker's GIL).

        Raises:
            TimeoutError: nothing arrived by the exchange's deadline (``timeout`` seconds after its write).
        """
        wait = ANSWER_POLL_S
        while True:
            try:
                return self._socket.recv(65536)
            except BlockingIOError:
                left = self._deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"the agent did not answer within {self.timeout:g} s") from None
                time.sleep(min(wait, left))
                wait = min(wait * 2, LONGEST_POLL_S)  # a slow or hung agent: fewer wake-ups while it is

    def _fill(self) -> None:
        data = self._receive()
        if not data:
            raise ConnectionResetError("the agent closed the connection before it answered")
        self._buffer += data
        self._fills += 1

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
        while data := self._receive():
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


def _name_this_thread(name: str) -> None:
    """Give the calling thread ``name`` where the OS shows it (Linux: its ``comm``, at most 15 bytes), so that
    ``top -H`` and the benchmark can tell its CPU from the requests'; nothing where that cannot be done."""
    with contextlib.suppress(OSError), open(f"/proc/self/task/{threading.get_native_id()}/comm", "w") as comm:
        comm.write(name[:15])


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
