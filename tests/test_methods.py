"""Every HTTP method on ``/score``, on a real server and in process: POST scores, GET describes, HEAD is GET without
the body, OPTIONS lists the methods; the server answers the methods it does not route with its own 405, and a
method that does reach ``score.py`` unserved gets the template's JSON 405 (``serving.http.handle``)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import flask
import pytest

from harness.client import request
from harness.layout import lay_out_like_azure
from harness.server import InferenceServer
from serving import http
from serving.settings import Settings
from tests.helpers import SAMPLE_LABELS, SAMPLE_REQUEST, scoring_app_client

ALLOWED = "GET, HEAD, POST, OPTIONS"
SERVER_405 = {"message": "The method is not allowed for the requested URL."}  # azmlinfsrv's own, for unrouted ones
UNROUTED = ["PUT", "DELETE", "PATCH", "TRACE", "PROPFIND"]


def check_answer(method: str, status: int, headers: dict[str, str], body: bytes) -> None:
    """What each method gets, whoever (the real server, the in-process app) answered it."""
    headers = {name.lower(): value for name, value in headers.items()}
    if method == "POST":
        assert (status, json.loads(body)["predictions"]) == (200, SAMPLE_LABELS)
    elif method in ("GET", "HEAD"):
        assert (status, headers["content-type"], headers["x-model-name"]) == (200, "application/json", "digits-cnn")
        assert int(headers["content-length"]) > 500  # HEAD: the length GET's body has, and no body
        if method == "GET":
            assert json.loads(body)["request"]["method"] == "POST"
        else:
            assert body == b""
    elif method == "OPTIONS":
        assert (status, headers["allow"], body) == (200, ALLOWED, b"")
    else:
        assert (status, json.loads(body)) == (405, SERVER_405)


@pytest.mark.server
@pytest.mark.parametrize("method", ["POST", "GET", "HEAD", "OPTIONS", *UNROUTED])
def test_each_method_on_the_real_server(served: InferenceServer, method: str) -> None:
    body = SAMPLE_REQUEST.read_bytes() if method in ("POST", "PUT", "PATCH") else None

    reply = request(served.url + "/score", body, method=method)

    check_answer(method, reply.status, reply.headers, reply.body)
    after = request(served.url + "/score", SAMPLE_REQUEST.read_bytes(), method="POST")
    assert (after.status, after.json()["predictions"]) == (200, SAMPLE_LABELS)


@pytest.fixture(scope="module")
def app_client(trained_folder: Path, tmp_path_factory: pytest.TempPathFactory):
    """The server's app for score.py, in process, built once for every method."""
    model_dir = lay_out_like_azure(trained_folder, tmp_path_factory.mktemp("azureml-models"))
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield scoring_app_client(monkeypatch, model_dir)


@pytest.mark.parametrize("method", ["POST", "GET", "HEAD", "OPTIONS", *UNROUTED])
def test_each_method_in_process(app_client, method: str) -> None:
    body = SAMPLE_REQUEST.read_bytes() if method in ("POST", "PUT", "PATCH") else None

    response = app_client.open("/score", method=method, data=body, content_type="application/json")

    check_answer(method, response.status_code, dict(response.headers), response.get_data())


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PROPFIND"])
def test_a_method_that_reaches_score_py_unserved_gets_a_json_405_with_allow(method: str) -> None:
    predictor = SimpleNamespace(name="digits-cnn", version="1")
    with flask.Flask(__name__).test_request_context("/score", method=method, data=b"{}"):
        response = http.handle(flask.request, predictor, Settings(model_dir=None))

    assert (response.status_code, response.headers["Allow"], response.mimetype) == (405, ALLOWED, "application/json")
    assert response.get_json()["code"] == "method_not_allowed"
    assert f"{method} is not served here" in response.get_json()["message"]
    assert (response.headers["x-model-name"], response.headers["x-model-version"]) == ("digits-cnn", "1")
