"""Model data collection (serving/collection.py): what a request's records hold, per input kind, and the real
Collector under a real azmlinfsrv sending to a loopback receiver (harness/collector_receiver.py): on, off, sampled,
with the receiver dead and with it stalled."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import pickle
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.client import request
from harness.collector_receiver import CollectorReceiver
from harness.server import InferenceServer, free_port
from model_arch.digits_cnn import INPUT_SPEC as DIGITS_INPUT
from model_arch.spec import InputSpec, OutputSpec
from serving import codecs, collection
from serving.codecs import JSON
from serving.predictor import Prediction
from serving.settings import Settings, SettingsError
from tests.helpers import SAMPLE_LABELS, SAMPLE_REQUEST

SAMPLE = json.loads(SAMPLE_REQUEST.read_text())["data"]  # two digits, 64 pixel values 0-16 each
NAMES = (collection.INPUTS, collection.OUTPUTS)


def decoded_rows(spec: InputSpec, rows: list, **extra):
    """A request's rows through the real JSON codec: the model batch, as serving.http has it."""
    decoded = codecs.decode(json.dumps({"data": rows}).encode(), JSON, spec, 1024)
    return dataclasses.replace(decoded, **extra) if extra else decoded


# ---------------------------------------------------------------------------------------------- what is collected


def test_input_frame_named_features_are_the_values_the_client_sent() -> None:
    spec = InputSpec(name="x", shape=(3,), names=("age", "height", "weight"), subtract=(40, 170, 70), divide=(9, 7, 3))
    frame = collection.input_frame(spec, decoded_rows(spec, [[5.1, 180.25, 64.0], [77, 150, 101.5]]))

    assert list(frame.columns) == ["age", "height", "weight"]
    assert json.loads(frame.to_json(orient="records")) == [
        {"age": 5.1, "height": 180.25, "weight": 64.0},
        {"age": 77.0, "height": 150.0, "weight": 101.5},
    ]


def test_input_frame_unnamed_flat_rows_get_f_columns() -> None:
    spec = InputSpec(name="x", shape=(4,))
    frame = collection.input_frame(spec, decoded_rows(spec, [[1, 2, 3, 4]]))

    assert frame.to_dict(orient="records") == [{"f0": 1.0, "f1": 2.0, "f2": 3.0, "f3": 4.0}]


def test_input_frame_image_shaped_numbers_are_summarised_not_64_columns() -> None:
    frame = collection.input_frame(DIGITS_INPUT, decoded_rows(DIGITS_INPUT, SAMPLE))

    assert list(frame.columns) == ["mean", "std", "min", "max"]
    pixels = np.asarray(SAMPLE, dtype=np.float64)
    np.testing.assert_allclose(frame["mean"], pixels.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(frame["std"], pixels.std(axis=1), rtol=1e-6)
    assert frame["min"].tolist() == pixels.min(axis=1).tolist() and frame["max"].tolist() == pixels.max(axis=1).tolist()


def test_input_frame_images_add_their_facts_and_channel_means() -> None:
    spec = InputSpec(name="image", shape=(3, 2, 2), divide=255.0)
    rows = [[[[10, 10], [10, 10]], [[20, 20], [20, 20]], [[30, 30], [30, 30]]]]
    facts = ({"format": "PNG", "width": 640, "height": 480, "mode": "RGBA", "exif": {"orientation": 6}},)
    frame = collection.input_frame(spec, decoded_rows(spec, rows, item_facts=facts))

    record = frame.to_dict(orient="records")[0]
    assert {k: record[k] for k in ("format", "width", "height", "mode")} == {
        "format": "PNG",
        "width": 640,
        "height": 480,
        "mode": "RGBA",
    }
    assert json.loads(record["exif"]) == {"orientation": 6}  # a fact that is not a number or text: JSON text
    assert (record["mean"], record["c0_mean"], record["c1_mean"], record["c2_mean"]) == (20.0, 10.0, 20.0, 30.0)


def test_input_frame_texts_are_their_facts_not_their_token_ids() -> None:
    spec = InputSpec(name="tokens", shape=(8,))
    facts = ({"chars": 12, "tokens": 5, "truncated": False}, {"chars": 900, "tokens": 8, "truncated": True})
    frame = collection.input_frame(spec, decoded_rows(spec, [[1] * 8, [2] * 8], item_facts=facts))

    assert frame.to_dict(orient="records") == list(facts)


@pytest.mark.parametrize(
    ("output", "values", "expected"),
    [
        (
            OutputSpec(kind="classification", labels=("cat", "dog", "fox")),
            [[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]],
            [{"label": "dog", "score": 0.7}, {"label": "cat", "score": 0.6}],
        ),
        (
            OutputSpec(kind="multilabel", labels=("red", "round", "big"), threshold=0.5),
            [[0.9, 0.6, 0.1]],
            [{"label": "red", "score": 0.9, "labels": "red|round"}],
        ),
        (
            OutputSpec(kind="regression", names=("weight", "waist")),
            [[181.5, 35.25]],
            [{"weight": 181.5, "waist": 35.25}],
        ),
    ],
    ids=["classification", "multilabel", "regression"],
)
def test_output_frame_per_output_kind(output: OutputSpec, values: list, expected: list) -> None:
    frame = collection.output_frame(output, Prediction(np.asarray(values, dtype=np.float32), output))

    assert json.loads(frame.to_json(orient="records")) == expected


def test_collected_frames_serialise_as_pandas_does_and_name_their_type_as_a_dataframe() -> None:
    from azureml.ai.monitoring.payload.logdata import PandasFrameData

    output = OutputSpec(kind="classification", labels=("cat", "dog"))
    frames = [
        collection.input_frame(DIGITS_INPUT, decoded_rows(DIGITS_INPUT, SAMPLE)),
        collection.output_frame(output, Prediction(np.asarray([[0.25, 0.75]], dtype=np.float32), output)),
        collection.frame({"label": ["x", "y"], "score": np.asarray([float("nan"), 1.0])}, 2),  # NaN: pandas' path
    ]
    for frame in frames[:2]:  # what the SDK asks of a frame builds none of pandas' own parts
        PandasFrameData(frame).to_json()
        assert "_mgr" not in vars(frame)
    for frame in frames:
        plain = pd.DataFrame(frame)  # the same data in a plain DataFrame, serialised by pandas
        ours, theirs = json.loads(frame.to_json(orient="records")), json.loads(plain.to_json(orient="records"))
        assert [list(row) for row in ours] == [list(row) for row in theirs]  # the same columns, in order
        for mine, pandas_row in zip(ours, theirs, strict=True):  # pandas writes 10 decimals; ours, every digit
            assert mine == {k: pytest.approx(v, rel=1e-9) if isinstance(v, float) else v for k, v in pandas_row.items()}
        assert PandasFrameData(frame).type() == PandasFrameData(plain).type() == "pandas.DataFrame"


def test_collected_frames_are_ordinary_dataframes_to_anything_else() -> None:
    columns = {"label": ["cat", "dog"], "score": np.asarray([0.75, 0.5]), "width": [640, 480]}
    frame = collection.frame(columns, 2)
    plain = pd.DataFrame({"label": ["cat", "dog"], "score": [0.75, 0.5], "width": [640, 480]}, dtype=object)

    assert frame.shape == (2, 3) and list(frame.columns) == ["label", "score", "width"]
    assert frame.to_string() == plain.to_string()  # the SDK's compact format: PandasFrameData.to_bytes
    assert frame.to_dict("records") == plain.to_dict("records")
    assert frame["score"].tolist() == [0.75, 0.5]
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        copied = pickle.loads(pickle.dumps(frame, protocol=protocol))
        assert type(copied) is pd.DataFrame and copied.equals(plain)
    frame.iloc[0, 1] = 0.25  # built, then changed: its records are pandas', with the change
    assert json.loads(frame.to_json(orient="records"))[0]["score"] == 0.25
    numbers = collection.frame({"mean": np.asarray([3.5]), "std": np.asarray([1.25])}, 1)
    assert numbers.dtypes.tolist() == [np.float64, np.float64] and numbers.iloc[0].tolist() == [3.5, 1.25]


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
CLOSE = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"


class CannedAgent:
    """A socket on loopback that reads each post, pipelined or not, keeps its body, and answers it with the same
    bytes (or each of a list in turn); with ``close``, it closes the connection after its first answer, as an agent
    that takes one post per connection does."""

    def __init__(self, answer: bytes | list[bytes] = OK, close: bool = False) -> None:
        self.answers = itertools.cycle(answer if isinstance(answer, list) else [answer])
        self.close, self.bodies = close, []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                connection, _ = self.listener.accept()
                with connection:
                    self.answer_posts(connection)

    def answer_posts(self, connection: socket.socket) -> None:
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                if not (data := connection.recv(65536)):
                    return
                buffer += data
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            length = int(parse_post(head + b"\r\n\r\n")[1]["content-length"])
            while len(buffer) < length:
                buffer += connection.recv(65536)
            self.bodies.append(buffer[:length])
            buffer = buffer[length:]
            connection.sendall(next(self.answers))
            if self.close:
                return


def post_bytes(host: str, port: int, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """One HTTP/1.1 POST, head and body, as it goes on the wire."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items() if name.lower() != "content-length")
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(body)}\r\n{lines}\r\n"
    return head.encode("latin-1") + body


def post(connection: collection.AgentConnection, headers: dict, body: bytes) -> tuple[int, bytes]:
    """One post over ``connection``: an exchange of one request."""
    request = post_bytes("127.0.0.1", connection.port, "/modeldata/log", headers, body)
    return connection.exchange([request])[0]


@pytest.mark.parametrize(
    ("answer", "close", "expected"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\naccepted", False, (200, b"accepted")),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nacc\r\n5\r\nepted\r\n0\r\n\r\n",
            False,
            (200, b"accepted"),
        ),
        (b"HTTP/1.0 503 Busy\r\n\r\ntoo busy", True, (503, b"too busy")),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", True, (200, b"ok")),
    ],
    ids=["content-length", "chunked", "to-the-end", "connection-close"],
)
def test_agent_connection_reads_each_way_an_answer_can_end(answer: bytes, close: bool, expected: tuple) -> None:
    agent = CannedAgent(answer, close)
    connection = collection.AgentConnection("127.0.0.1", agent.port, timeout=5)
    try:
        assert [post(connection, {"ce-type": "x"}, b"[]") for _ in range(3)] == [expected] * 3
    finally:
        connection.close()
        agent.listener.close()


def test_agent_connection_refuses_an_answer_that_is_not_http() -> None:
    agent = CannedAgent(b"SSH-2.0-OpenSSH\r\n\r\n", close=True)
    connection = collection.AgentConnection("127.0.0.1", agent.port, timeout=5)
    try:
        with pytest.raises(collection.AgentError, match="does not start like HTTP"):
            post(connection, {}, b"[]")
    finally:
        connection.close()
        agent.listener.close()


def sdk_payload(frame: pd.DataFrame, request_id: str | None, **headers: str):
    """A payload as the SDK's Collector makes it (``build_payload``), with the context's own headers."""
    from azureml.ai.monitoring.config.config import MdcConfig
    from azureml.ai.monitoring.context import BasicCorrelationContext
    from azureml.ai.monitoring.payload import PandasFrameData, build_payload

    with mock_config(MdcConfig(enabled=True)):
        context = BasicCorrelationContext(id=request_id, timestamp=1796294162, headers=headers)
        return build_payload("model_inputs", PandasFrameData(frame), model_version="default", context=context)


@contextlib.contextmanager
def mock_config(config):
    import azureml.ai.monitoring.config.config as sdk_config

    before, sdk_config.mdc_config = sdk_config.mdc_config, config
    try:
        yield
    finally:
        sdk_config.mdc_config = before


def parse_post(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    start, *lines = head.decode("latin-1").split("\r\n")
    return start, {n.strip().lower(): v.strip() for n, _, v in (line.partition(":") for line in lines)}, body


@pytest.mark.parametrize("context_headers", [{}, {"time": "0", "custom": "yes"}], ids=["plain", "own-headers"])
def test_request_writer_writes_the_post_the_sdks_sender_makes(context_headers: dict) -> None:
    from azureml.ai.monitoring.worker.sender import MdcSender

    class Capture(MdcSender):
        def _post_request(self, url, payload, headers=None):
            self.sent = (url, headers, payload.encode())
            return 200, "ok"

    frame = collection.frame({"mean": np.asarray([4.5]), "label": ["x"]}, 1)
    payload = sdk_payload(frame, "req-1", **context_headers)
    sdk = Capture("127.0.0.1", 50011)
    sdk.send(payload)
    url, sdk_headers, sdk_body = sdk.sent

    start, headers, body = parse_post(collection.RequestWriter("127.0.0.1", 50011).request(payload))

    assert start == "POST /modeldata/log HTTP/1.1" and url == "http://127.0.0.1:50011/modeldata/log"
    assert body == sdk_body
    assert headers.pop("host") == "127.0.0.1:50011" and headers.pop("content-length") == str(len(sdk_body))
    assert headers == {name.lower(): value for name, value in sdk_headers.items()}
    assert headers["ce-x-request-id"] == "req-1"


def test_agent_connection_takes_a_repeated_answer_whole_and_any_other_answer_as_it_is() -> None:
    busy = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"
    look_alike = b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nokay, twenty bytes!!"  # begins as OK does
    ours, agent = socket.socketpair()
    connection = collection.AgentConnection("127.0.0.1", 0, timeout=5)
    connection._socket, connection._deadline = ours, time.monotonic() + 5
    ours.setblocking(False)
    parsed = []
    parse = connection._parse_answer
    connection._parse_answer = lambda: parsed.append(1) or parse()
    try:
        agent.sendall(OK + OK + OK + OK[:12])

        def read(sent_before: bytes = b"") -> tuple[int, bytes, bool]:
            agent.sendall(sent_before)
            return connection._read_answer()

        assert [read(), read(), read()] == [(200, b"ok", True)] * 3
        assert len(parsed) == 2  # the first came with a read: not kept; the second kept, the third taken whole
        assert read(OK[12:]) == (200, b"ok", True) and len(parsed) == 3  # a repeat split across reads: parsed
        assert read(look_alike) == (200, b"okay, twenty bytes!!", True) and len(parsed) == 4  # OK's first bytes
        assert [read(busy * 3), read(), read()] == [(503, b"busy", True)] * 3 and len(parsed) == 6
        assert read(CLOSE + OK) == (200, b"ok", False) and read() == (200, b"ok", True)  # a closing one: not kept
        assert len(parsed) == 8 and connection._buffer == b""
    finally:
        connection.close()
        agent.close()


def test_agent_connection_pipelines_posts_and_reads_every_answer_in_order() -> None:
    agent = CannedAgent()
    connection = collection.AgentConnection("127.0.0.1", agent.port, timeout=5)
    posts = [post_bytes("127.0.0.1", agent.port, "/modeldata/log", {}, f"[{n}]".encode()) for n in range(5)]
    try:
        assert connection.exchange(posts) == [(200, b"ok")] * 5
        assert connection.exchange(posts[:2]) == [(200, b"ok")] * 2  # the same kept-alive connection
    finally:
        connection.close()
        agent.listener.close()
    assert agent.bodies == [f"[{n}]".encode() for n in range(5)] + [b"[0]", b"[1]"]


def test_the_sender_posts_one_at_a_time_to_an_agent_that_closes_after_each_answer(caplog) -> None:
    from azureml.ai.monitoring.config.config import MdcConfig
    from azureml.ai.monitoring.queue.queue import MdcQueue

    agent = CannedAgent(CLOSE, close=True)
    sender = collection.AgentSender(MdcQueue(100), MdcConfig(enabled=True, host="127.0.0.1", port=agent.port))
    frames = [collection.frame({"n": np.asarray([float(n)])}, 1) for n in range(4)]
    try:
        sender.send([sdk_payload(frame, f"r-{n}") for n, frame in enumerate(frames)])
        sender.send([sdk_payload(frames[0], "r-again")])
    finally:
        sender.connection.close()
        agent.listener.close()

    assert [json.loads(body) for body in agent.bodies] == [[{"n": float(n)}] for n in range(4)] + [[{"n": 0.0}]]
    assert sender.one_at_a_time and sender.failures.total == 0
    assert "closes the connection after an answer; posting one record at a time" in caplog.text


def test_columns_worked_out_together_are_each_requests_own() -> None:
    spec = InputSpec(name="image", shape=(3, 2, 2), divide=255.0)
    output = OutputSpec(kind="classification", labels=("cat", "dog"))
    rng = np.random.default_rng(0)
    requests, alone = [], []
    for n, rows in enumerate((1, 3, 2)):
        pixels = rng.integers(0, 256, size=(rows, 3, 2, 2)).tolist()
        facts = tuple({"format": "PNG", "width": 10 + n, "row": r} for r in range(rows))
        decoded = decoded_rows(spec, pixels, item_facts=facts)
        prediction = Prediction(rng.random((rows, 2)).astype(np.float32), output)
        requests.append(collection.Handed(f"r-{n}", 0, decoded, prediction))
        alone.append((collection.input_columns(spec, decoded), collection.output_columns(output, prediction)))
    dc = collection.DataCollection(object(), object(), 1.0, spec, output)

    dc.work_out_columns(requests)

    for handed, (inputs, outputs) in zip(requests, alone, strict=True):
        assert handed.decoded is None and not handed.failed
        assert collection.frame(*handed.inputs).to_dict("records") == collection.frame(*inputs).to_dict("records")
        assert collection.frame(*handed.outputs).to_dict("records") == collection.frame(*outputs).to_dict("records")


@pytest.mark.parametrize(
    ("env", "fragment"),
    [({"DATA_COLLECTION": "sometimes"}, "DATA_COLLECTION is 'sometimes'; expected one of 'auto', 'off'")],
)
def test_settings_refuse_an_unknown_data_collection_value(env: dict, fragment: str) -> None:
    with pytest.raises(SettingsError, match=fragment):
        Settings.from_env(env)


def test_collection_is_configured_only_by_the_deployment() -> None:
    assert not collection.configured({})
    assert not collection.configured({"AZUREML_MDC_ENABLED": "false", "AZUREML_MDC_PORT": "50011"})
    assert collection.configured({"AZUREML_MDC_ENABLED": "True"})
    assert collection.configured({"AZUREML_MDC_CONFIG_PATH": "/etc/mdc-config.json"})
    assert Settings.from_env({}).data_collection and not Settings.from_env({"DATA_COLLECTION": "off"}).data_collection


# ---------------------------------------------------------------------------------------------- on a real server


def score(server: InferenceServer, rows: list, request_id: str):
    body = json.dumps({"data": rows}).encode()
    return request(server.url + "/score", body, method="POST", headers={"x-request-id": request_id}, timeout=30)


@pytest.mark.server
def test_each_scored_request_sends_one_input_and_one_output_record_with_its_request_id(azure_model_dir: Path) -> None:
    with CollectorReceiver() as receiver, InferenceServer(azure_model_dir, env=receiver.env()) as server:
        replies = {f"req-{n}": score(server, SAMPLE[: 1 + n % 2], f"req-{n}") for n in range(4)}
        bad = request(server.url + "/score", b"{", method="POST", headers={"x-request-id": "bad-1"})
        records = receiver.wait_for(2 * len(replies))
        log = server.log()

    assert "data collection on: model_inputs and model_outputs to 127.0.0.1:" in log
    assert bad.status == 400
    assert {r.correlation_id for r in records} == set(replies)  # the 400 is not collected
    for request_id, reply in replies.items():
        mine = {r.collection: r for r in records if r.correlation_id == request_id}
        assert sorted(mine) == ["model_inputs", "model_outputs"]
        answer = reply.json()
        assert [row["label"] for row in mine["model_outputs"].rows] == answer["predictions"]
        assert [row["score"] for row in mine["model_outputs"].rows] == pytest.approx(
            [max(p) for p in answer["probabilities"]], abs=1e-6
        )
        sent = np.asarray(SAMPLE[: len(answer["predictions"])], dtype=np.float64)
        assert [row["mean"] for row in mine["model_inputs"].rows] == pytest.approx(sent.mean(axis=1).tolist())
        assert [row["max"] for row in mine["model_inputs"].rows] == sent.max(axis=1).tolist()
        assert mine["model_inputs"].headers["ce-agent"].startswith("azureml-ai-monitoring/")
    assert replies["req-1"].json()["predictions"] == SAMPLE_LABELS


@pytest.mark.server
def test_collection_off_sends_nothing(azure_model_dir: Path) -> None:
    with CollectorReceiver() as receiver:
        unset = {"AZUREML_MDC_HOST": "127.0.0.1", "AZUREML_MDC_PORT": str(receiver.port)}  # no AZUREML_MDC_ENABLED
        for env in (unset, receiver.env(DATA_COLLECTION="off")):
            with InferenceServer(azure_model_dir, env=env) as server:
                assert [score(server, SAMPLE, f"off-{n}").status for n in range(3)] == [200] * 3
                log = server.log()
            assert "data collection off" in log
        assert receiver.wait_for(1, timeout=1.0) == [] and receiver.posts == 0


def wait_for_log(server: InferenceServer, text: str, timeout: float = 10.0) -> str:
    """The server's log once ``text`` is in it, or as it is after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while text not in (log := server.log()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return log


def mdc_config_file(folder: Path, **collections: dict) -> str:
    """What Azure ML's data_collector gives the container: a JSON file at AZUREML_MDC_CONFIG_PATH (read by the SDK:
    per collection ``enabled`` and ``sampleRatePercentage``)."""
    path = folder / "mdc-config.json"
    path.write_text(json.dumps({"collections": collections, "runMode": "cloud"}))
    return str(path)


@pytest.mark.server
@pytest.mark.parametrize("configured_by", ["environment", "data_collector file"])
def test_sampling_sends_both_records_of_a_sampled_request_and_nothing_of_the_others(
    azure_model_dir: Path, tmp_path: Path, configured_by: str
) -> None:
    requests = 40
    with CollectorReceiver() as receiver:
        env = receiver.env(AZUREML_MDC_SAMPLE_RATE="50")
        if configured_by == "data_collector file":
            half = {"enabled": True, "sampleRatePercentage": 50}
            del env["AZUREML_MDC_ENABLED"], env["AZUREML_MDC_SAMPLE_RATE"]
            env["AZUREML_MDC_CONFIG_PATH"] = mdc_config_file(tmp_path, model_inputs=half, model_outputs=half)
        with InferenceServer(azure_model_dir, env=env) as server:
            assert all(score(server, SAMPLE[:1], f"s-{n}").status == 200 for n in range(requests))
            records = receiver.wait_for(2 * requests, timeout=3.0)  # about half arrive: wait out the rest
            log = server.log()

    assert "50% of requests" in log
    by_collection = {name: {r.correlation_id for r in records if r.collection == name} for name in NAMES}
    assert by_collection["model_inputs"] == by_collection["model_outputs"]  # pairs, never one half of a request
    assert 0 < len(by_collection["model_inputs"]) < requests  # 50%: all or none has odds of 2 in 2**40


@pytest.mark.server
def test_a_data_collector_with_only_outputs_enabled_sends_only_outputs(azure_model_dir: Path, tmp_path: Path) -> None:
    config = mdc_config_file(tmp_path, model_inputs={"enabled": False}, model_outputs={"enabled": True})
    with CollectorReceiver() as receiver:
        env = {
            "AZUREML_MDC_CONFIG_PATH": config,
            "AZUREML_MDC_HOST": "127.0.0.1",
            "AZUREML_MDC_PORT": str(receiver.port),
        }
        with InferenceServer(azure_model_dir, env=env) as server:
            assert [score(server, SAMPLE, f"o-{n}").status for n in range(3)] == [200] * 3
            records = receiver.wait_for(3)
            log = server.log()

    assert "data collection on: model_outputs to 127.0.0.1:" in log
    assert sorted((r.collection, r.correlation_id) for r in records) == [("model_outputs", f"o-{n}") for n in range(3)]


@pytest.mark.server
@pytest.mark.parametrize("agent", ["dead", "stalled"])
def test_a_dead_or_stalled_receiver_changes_no_answer_and_no_status(azure_model_dir: Path, agent: str) -> None:
    expected = {}
    with InferenceServer(azure_model_dir) as server:  # collection off: the answers to compare with
        for n in range(12):
            reply = score(server, SAMPLE[: 1 + n % 2], f"x-{n}")
            expected[n] = (reply.status, reply.json()["probabilities"])
    receiver = CollectorReceiver(stall=True).start() if agent == "stalled" else None
    port = receiver.port if receiver else free_port()  # dead: nothing listens there
    env = {"AZUREML_MDC_ENABLED": "true", "AZUREML_MDC_HOST": "127.0.0.1", "AZUREML_MDC_PORT": str(port)}
    env["AZUREML_MDC_QUEUE_CAPACITY"] = "4"  # the queue fills within the test: its drops are exercised too
    try:
        with InferenceServer(azure_model_dir, env=env) as server:
            got = {}
            for n in range(12):
                reply = score(server, SAMPLE[: 1 + n % 2], f"x-{n}")
                got[n] = (reply.status, reply.json()["probabilities"])
            expected_line = "has not answered a post" if agent == "stalled" else "sending to the agent failed"
            log = wait_for_log(server, expected_line)  # the sender tries within LINGER_S of the first record
    finally:
        if receiver is not None:
            receiver.stop()

    assert got == expected
    assert "data collection dropped" in log  # and why: a full queue, sending paused, or a post unanswered
    assert any(reason in log for reason in ("the queue is full", "sending is paused", "has not answered a post"))
    if agent == "stalled":
        assert receiver.posts >= 1 and receiver.records == []  # it took a post, and never answered it
    else:
        assert "data collection: sending to the agent failed" in log
    assert log.count("data collection dropped") == 1  # rate-limited: one line a minute, with its count


@pytest.mark.server
@pytest.mark.slow
def test_an_image_request_sends_its_facts_and_pixel_statistics_not_the_picture(tmp_path: Path) -> None:
    from harness.layout import lay_out_like_azure
    from training.data import SHAPES, shapes_images
    from training.train import train_shapes

    folder = tmp_path / "shapes"
    train_shapes(folder)  # the RGB 32×32 shapes example, trained in seconds from drawn pictures
    model_dir = lay_out_like_azure(folder, tmp_path / "azureml-models", "shapes-cnn")
    pngs, _ = shapes_images(2, seed=3)
    with CollectorReceiver() as receiver, InferenceServer(model_dir, env=receiver.env()) as server:
        headers = {"x-request-id": "picture-1"}
        reply = request(server.url + "/score", pngs[0], method="POST", content_type="image/png", headers=headers)
        records = {r.collection: r for r in receiver.wait_for(2)}

    assert reply.status == 200
    (inputs,), (outputs,) = records["model_inputs"].rows, records["model_outputs"].rows
    assert records["model_inputs"].correlation_id == records["model_outputs"].correlation_id == "picture-1"
    assert {k: inputs[k] for k in ("format", "width", "height", "mode")} == {
        "format": "PNG",
        "width": 64,
        "height": 64,
        "mode": "RGB",
    }
    assert {"mean", "std", "min", "max", "c0_mean", "c1_mean", "c2_mean"} <= set(inputs)
    assert len(inputs) < 20  # facts and statistics, not 3×32×32 pixels
    assert outputs["label"] == reply.json()["predictions"][0] and outputs["label"] in SHAPES


@pytest.mark.parametrize("name", ["blue", "green"])
def test_the_deployments_collect_inputs_and_outputs_of_a_share_of_requests(name: str) -> None:
    from azure.ai.ml import load_online_deployment

    from tests.helpers import REPO_ROOT

    collector = load_online_deployment(REPO_ROOT / "deploy" / f"{name}-deployment.yml").data_collector

    assert {key: c.enabled for key, c in collector.collections.items()} == {
        "model_inputs": "true",
        "model_outputs": "true",
    }
    assert 0 < collector.sampling_rate <= 1


@pytest.mark.server
def test_with_worker_preload_each_worker_starts_collecting_on_its_first_request(azure_model_dir: Path) -> None:
    with CollectorReceiver() as receiver:
        env = receiver.env(WORKER_PRELOAD="true", TORCH_NUM_THREADS="1")  # init() in the master, forked twice
        with InferenceServer(azure_model_dir, workers=2, env=env) as server:
            assert [score(server, SAMPLE[:1], f"p-{n}").status for n in range(6)] == [200] * 6
            records = receiver.wait_for(12)
            log = server.log()

    assert "data collection starts in each worker on its first request (WORKER_PRELOAD=true)" in log
    assert sorted(r.correlation_id for r in records if r.collection == "model_outputs") == [f"p-{n}" for n in range(6)]
