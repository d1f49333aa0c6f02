"""Text models on the real server: every request form a text model takes is answered as the model answers in
process, every bad text request gets its documented 4xx and code (and the next good request is still answered),
GET /score describes the contract, and embeddings come back in JSON, V2 and .npy."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from harness.client import post_json, request
from harness.layout import lay_out_like_azure
from harness.server import InferenceServer
from model_folder.onnx_export import export_onnx
from serving.settings import Settings
from serving.startup import load_predictor
from training.train import train_topics, train_transformers

pytestmark = [pytest.mark.server, pytest.mark.slow]

TEXTS = [
    "The striker scored twice in the derby.",
    "Heavy rain flooded the valley tonight. Nobody saw it coming.",
    "My laptop crashed right after the software update.",
    "Fresh pasta with garlic butter",
    "Ünïcödé 😀 中文: the new phone ships with a bigger battery",
]
LIMITS = {"MAX_TEXTS": "8", "MAX_TEXT_CHARS": "400"}


@pytest.fixture(scope="module")
def topics_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """AZUREML_MODEL_DIR holding the text example, trained and exported, as Azure lays a registered folder out."""
    folder = tmp_path_factory.mktemp("topics") / "model"
    train_topics(folder, epochs=20)
    export_onnx(folder)
    return lay_out_like_azure(folder, tmp_path_factory.mktemp("azureml-models"), "topics")


@pytest.fixture(scope="module")
def served_topics(topics_dir: Path):
    """The text example on a real azmlinfsrv, 2 workers, small text limits."""
    with InferenceServer(topics_dir, workers=2, env=LIMITS) as server:
        yield server


@pytest.fixture(scope="module")
def in_process(topics_dir: Path):
    """The same model folder, loaded in this process as a worker loads it."""
    return load_predictor(Settings(model_dir=str(topics_dir)))


def v2_body(texts: list[str], **tensor) -> dict:
    return {
        "id": "r-1",
        "inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts, **tensor}],
    }


GOOD_FORMS = [
    ("data", lambda t: (json.dumps({"data": t}).encode(), "application/json")),
    ("data rows", lambda t: (json.dumps({"data": [[x] for x in t]}).encode(), "application/json")),
    ("input_data", lambda t: (json.dumps({"input_data": t}).encode(), "application/json")),
    ("input_data columns", lambda t: (json.dumps({"input_data": {"columns": ["text"], "data": [[x] for x in t]}})
                                      .encode(), "application/json")),
    ("v2 bytes", lambda t: (json.dumps(v2_body(t)).encode(), "application/json")),
    ("v2 bytes n×1", lambda t: (json.dumps(v2_body(t, shape=[len(t), 1])).encode(), "application/json")),
]  # fmt: skip


def test_every_text_form_is_answered_as_in_process(served_topics: InferenceServer, in_process) -> None:
    expected = in_process.predict_texts(TEXTS)

    for name, make in GOOD_FORMS:
        body, content_type = make(TEXTS)
        reply = request(served_topics.url + "/score", body, method="POST", content_type=content_type)
        assert reply.status == 200, (name, reply.body)
        answer = reply.json()
        if name.startswith("v2"):
            outputs = {o["name"]: o for o in answer["outputs"]}
            labels, probabilities = outputs["predictions"]["data"], outputs["probabilities"]["data"]
            probabilities = np.reshape(probabilities, outputs["probabilities"]["shape"])
            assert answer["id"] == "r-1"
        else:
            labels, probabilities = answer["predictions"], answer["probabilities"]
        assert labels == expected.labels(), name
        np.testing.assert_allclose(probabilities, expected.values, atol=1e-6, err_msg=name)
    assert expected.labels()[:4] == ["sport", "weather", "technology", "food"]


def test_one_text_as_text_plain_and_npy_answers(served_topics: InferenceServer, in_process) -> None:
    text = TEXTS[4]
    plain = request(
        served_topics.url + "/score", text.encode(), method="POST", content_type="text/plain; charset=utf-8"
    )
    npy = request(
        served_topics.url + "/score",
        json.dumps({"data": TEXTS}).encode(),
        method="POST",
        headers={"Accept": "application/x-npy"},
    )

    assert plain.status == 200 and plain.json()["predictions"] == in_process.predict_texts([text]).labels()
    assert npy.status == 200 and npy.headers["Content-Type"] == "application/x-npy"
    values = np.load(io.BytesIO(npy.body), allow_pickle=False)
    np.testing.assert_allclose(values, in_process.predict_texts(TEXTS).values, atol=1e-6)


BAD_TEXT_REQUESTS = [
    # name, body, content type, status, code
    ("empty body", b"", "application/json", 400, "empty_body"),
    ("not json", b'{"data": ["a"', "application/json", 400, "invalid_json"),
    ("invalid utf-8 in json", b'{"data": ["caf\xe9"]}', "application/json", 400, "invalid_json"),
    ("invalid utf-8 in text/plain", b"caf\xe9 au lait", "text/plain", 400, "invalid_utf8"),
    ("no data key", b'{"text": ["a"]}', "application/json", 400, "missing_data"),
    ("a bare string", b'{"data": "one text"}', "application/json", 422, "invalid_texts"),
    ("an object", b'{"data": {"text": "a"}}', "application/json", 422, "invalid_texts"),
    ("empty list", b'{"data": []}', "application/json", 422, "empty_batch"),
    ("a number among texts", b'{"data": ["a text", 3]}', "application/json", 422, "not_text"),
    ("null", b'{"data": [null]}', "application/json", 422, "not_text"),
    ("boolean", b'{"input_data": [true]}', "application/json", 422, "not_text"),
    ("nested list", b'{"data": [["a", "b"]]}', "application/json", 422, "not_text"),
    ("mixed rows", b'{"input_data": {"columns": ["text"], "data": [["a"], 7]}}', "application/json", 422, "not_text"),
    ("two columns", b'{"input_data": {"columns": ["a", "b"], "data": [["x", "y"]]}}', "application/json", 422,
     "wrong_columns"),
    ("empty text", b'{"data": ["a text", ""]}', "application/json", 422, "empty_text"),
    ("spaces only", b'{"data": ["   \\n"]}', "application/json", 422, "empty_text"),
    ("empty text/plain", b" ", "text/plain", 422, "empty_text"),
    ("lone surrogate", b'{"data": ["bad \\ud800 half"]}', "application/json", 400, "invalid_json"),  # no character
    ("too long", json.dumps({"data": ["word " * 100]}).encode(), "application/json", 413, "text_too_long"),
    ("too many", json.dumps({"data": ["a text"] * 9}).encode(), "application/json", 413, "too_many_texts"),
    ("v2 numbers", json.dumps(v2_body([1.0], datatype="FP32")).encode(), "application/json", 422,
     "unsupported_datatype"),
    ("v2 base64", json.dumps(v2_body(["YQ=="], parameters={"content_type": "base64"})).encode(), "application/json",
     422, "unsupported_datatype"),
    ("v2 wrong shape", json.dumps(v2_body(["a", "b"], shape=[3])).encode(), "application/json", 422, "shape_mismatch"),
    ("v2 two tensors", json.dumps({"inputs": [v2_body(["a"])["inputs"][0]] * 2}).encode(), "application/json", 422,
     "invalid_v2_request"),
    ("npy body", b"\x93NUMPY\x01\x00", "application/x-npy", 415, "unsupported_content_type"),
    ("form data", b"data=hello", "application/x-www-form-urlencoded", 415, "unsupported_content_type"),
]  # fmt: skip


def test_bad_text_requests_get_their_4xx_and_code_and_the_next_good_request_works(
    served_topics: InferenceServer,
) -> None:
    good = json.dumps({"data": TEXTS[:2]}).encode()
    for name, body, content_type, status, code in BAD_TEXT_REQUESTS:
        reply = request(served_topics.url + "/score", body, method="POST", content_type=content_type)
        assert (reply.status, reply.json().get("code")) == (status, code), (name, reply.body[:300])
        assert reply.json()["message"], name
        after = request(served_topics.url + "/score", good, method="POST")
        assert after.status == 200, name
    assert len(BAD_TEXT_REQUESTS) >= 15


def test_top_k_is_answered_for_texts_in_every_way_it_can_be_asked(served_topics: InferenceServer, in_process) -> None:
    expected = in_process.predict_texts(TEXTS).top_k(2)
    url = served_topics.url + "/score"

    by_query = post_json(url + "?top_k=2", {"data": TEXTS}).json()
    by_field = post_json(url, {"input_data": TEXTS, "top_k": 2}).json()
    by_v2 = post_json(url, {**v2_body(TEXTS), "parameters": {"top_k": 2}}).json()
    disagreeing = post_json(url + "?top_k=3", {"data": TEXTS, "top_k": 2})

    assert by_query["predictions"] == by_field["predictions"]
    assert [[item["label"] for item in row] for row in by_query["predictions"]] == [
        [item["label"] for item in row] for row in expected
    ]
    labels = {o["name"]: o for o in by_v2["outputs"]}["labels"]
    assert labels["shape"] == [len(TEXTS), 2] and labels["data"][::2] == [row[0]["label"] for row in expected]
    assert (disagreeing.status, disagreeing.json()["code"]) == (422, "invalid_top_k")


def test_get_score_describes_the_text_contract(served_topics: InferenceServer) -> None:
    described = request(served_topics.url + "/score").json()

    assert described["request"]["content_types"] == ["application/json", "text/plain"]
    assert described["request"]["max_texts"] == 8 and described["request"]["max_tokens"] == 64
    assert described["tokenizer"]["file"] == "tokenizer.json" and described["tokenizer"]["vocab_size"] > 100
    assert [s["name"] for s in described["inputs"]] == ["input_ids", "attention_mask"]
    assert described["output"]["labels"] == ["sport", "weather", "food", "technology"]


def test_the_openapi_documents_of_a_text_model_describe_what_the_server_takes_and_answers(
    served_topics: InferenceServer,
) -> None:
    import jsonschema

    from serving.openapi import openapi_documents

    document = openapi_documents("topics_text", Settings.from_env(LIMITS))["3"]

    def valid(name: str, instance: object) -> bool:
        schema = {**document["components"]["schemas"][name], "components": document["components"]}
        return jsonschema.Draft7Validator(schema).is_valid(instance)

    post = document["paths"]["/score"]["post"]
    answer = post_json(served_topics.url + "/score", post["requestBody"]["content"]["application/json"]["example"])
    ranked = post_json(served_topics.url + "/score?top_k=2", {"data": TEXTS})

    assert set(post["requestBody"]["content"]) == {"application/json", "text/plain"}
    assert valid("DataRequest", {"data": TEXTS}) and valid("InputDataRequest", {"input_data": {"data": [[TEXTS[0]]]}})
    assert valid("V2Request", v2_body(TEXTS))
    assert not valid("DataRequest", {"data": ["a", 3]}) and not valid("DataRequest", {"data": ["a"] * 9})
    assert answer.status == 200 and valid("Prediction", answer.json())
    assert valid("RankedPrediction", ranked.json())


def test_make_smoke_sends_a_text_model_the_sample_texts(served_topics: InferenceServer) -> None:
    from harness import smoke

    assert smoke.sample_for(request(served_topics.url + "/score").json()) == smoke.SAMPLE_TEXTS
    assert smoke.main(["--url", served_topics.url + "/score"]) == 0


def test_the_score_line_records_texts_tokens_and_tokenization_time(served_topics: InferenceServer) -> None:
    post_json(served_topics.url + "/score", {"data": TEXTS}, headers={"x-request-id": "text-log-1"})

    line = next(line for line in served_topics.log().splitlines() if "text-log-1" in line and "score " in line)
    record = json.loads(line.split("score ", 1)[1])

    assert record["rows"] == len(TEXTS) and record["status"] == 200 and "tokenize_ms" in record


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embeddings example: the tiny BERT's encoder, saved by save_pretrained, exported, laid out as Azure does."""
    folder = tmp_path_factory.mktemp("encoder") / "model"
    train_transformers(folder, embeddings=True)
    export_onnx(folder)
    return lay_out_like_azure(folder, tmp_path_factory.mktemp("azureml-models"), "encoder")


def test_embeddings_are_answered_in_json_v2_and_npy_as_in_process(encoder_dir: Path) -> None:
    expected = load_predictor(Settings(model_dir=str(encoder_dir))).predict_texts(TEXTS).values

    with InferenceServer(encoder_dir, workers=1) as server:
        as_json = post_json(server.url + "/score", {"input_data": TEXTS}).json()
        as_v2 = post_json(server.url + "/score", v2_body(TEXTS)).json()
        as_npy = request(
            server.url + "/score", json.dumps({"data": TEXTS}).encode(), method="POST",
            headers={"Accept": "application/x-npy"},
        )  # fmt: skip
        described = request(server.url + "/score").json()
        not_applicable = post_json(server.url + "/score?top_k=2", {"data": TEXTS})

    np.testing.assert_allclose(as_json["embeddings"], expected, atol=1e-6)
    tensor = as_v2["outputs"][0]
    assert tensor["name"] == "embeddings" and tensor["shape"] == [len(TEXTS), 32]
    np.testing.assert_allclose(np.reshape(tensor["data"], tensor["shape"]), expected, atol=1e-6)
    np.testing.assert_allclose(np.load(io.BytesIO(as_npy.body), allow_pickle=False), expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(expected, axis=1), 1.0, atol=1e-5)
    assert (not_applicable.status, not_applicable.json()["code"]) == (422, "top_k_not_applicable")
    assert described["runtime"] == "onnxruntime" and described["output"]["pooling"] == "mean"
    assert described["response"] == {"embeddings": "one vector of 32 numbers per text"}


def test_a_lone_surrogate_that_reaches_the_text_check_is_a_422() -> None:
    from serving.codecs.texts import TextLimits, _checked
    from serving.errors import ClientError

    with pytest.raises(ClientError) as caught:
        _checked(["fine", "bad \ud800 half"], "data", TextLimits())

    assert (caught.value.status, caught.value.code) == (422, "invalid_text") and "data[1]" in caught.value.message


def test_a_multilabel_text_model_answers_every_topic_a_text_mentions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers import scoring_app_client
    from training.train import train_topics_multilabel

    train_topics_multilabel(tmp_path / "model", epochs=8)
    client = scoring_app_client(monkeypatch, tmp_path)
    both = "The striker scored twice in the derby. Heavy rain flooded the valley tonight."

    answer = client.post("/score", json={"data": [both, TEXTS[3]]}).get_json()
    as_v2 = client.post("/score", json=v2_body([both])).get_json()

    assert sorted(answer["predictions"][0]) == ["sport", "weather"] and answer["predictions"][1] == ["food"]
    flags = {o["name"]: o for o in as_v2["outputs"]}["predictions"]
    assert flags["datatype"] == "BOOL" and flags["data"] == [True, True, False, False]
