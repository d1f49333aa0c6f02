"""Pictures as clients send them, to the shapes example (RGB 32×32, per-channel normalisation) on a real server: every
request form answered as in process and as training's own decode would answer; top_k; the table of odd and
hostile pictures, each with its documented answer and the next good request still answered."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from urllib3 import encode_multipart_formdata

from harness.client import Reply, post_json, request
from harness.layout import lay_out_like_azure
from harness.server import InferenceServer
from model_arch.images import decode_image
from model_folder.manifest import read_manifest
from model_folder.onnx_export import export_onnx
from model_folder.weights import load_model
from tests.helpers import REPO_ROOT, scoring_app_client
from tests.image_files import ODD_IMAGES, OddImage, encode, photo
from training.data import SHAPES, shapes_images
from training.train import train_shapes

pytestmark = [pytest.mark.server, pytest.mark.slow]
PNGS, PNG_LABELS = shapes_images(6, seed=7)
JPEGS, JPEG_LABELS = shapes_images(6, seed=8, image_format="JPEG")


@pytest.fixture(scope="module")
def shapes_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("shapes") / "model"
    train_shapes(folder)
    export_onnx(folder)
    return folder


@pytest.fixture(scope="module")
def shapes_dir(shapes_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lay_out_like_azure(shapes_folder, tmp_path_factory.mktemp("azureml-models"), "shapes-cnn")


@pytest.fixture(scope="module")
def server(shapes_dir: Path):
    with InferenceServer(shapes_dir, workers=2, env={"MAX_IMAGES": "8"}) as served:
        yield served


def reference(folder: Path, blobs: list[bytes]) -> np.ndarray:
    """Probabilities as training computes them: the spec's own decode, then the PyTorch model (no server code)."""
    manifest = read_manifest(folder)
    model = load_model(manifest, folder / manifest.weights_file, torch.device("cpu"))
    with torch.inference_mode():
        return torch.softmax(model(torch.from_numpy(manifest.input.decode_images(blobs))), dim=1).numpy()


def b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode()


def multipart(blobs: list[bytes], **fields: str) -> tuple[bytes, str]:
    parts = [("file", (f"picture{i}.png", blob, "image/png")) for i, blob in enumerate(blobs)]
    return encode_multipart_formdata([*parts, *fields.items()])


def pixel_rows(folder: Path, blobs: list[bytes]) -> np.ndarray:
    """The pictures decoded by the spec but not normalised: what a client that preprocesses itself sends."""
    spec = read_manifest(folder).input
    return np.stack([decode_image(blob, spec.image, spec.shape) for blob in blobs])


def forms(folder: Path) -> dict[str, tuple[list[bytes], bytes, str]]:
    """Every request form: (the pictures it carries, body, Content-Type)."""
    one, three = PNGS[:1], PNGS[:3]
    body, content_type = multipart(three)
    single, single_type = multipart(one)
    npy = io.BytesIO()
    np.save(npy, pixel_rows(folder, three))
    strings = [b64(b) for b in three]
    v2_tensor = {"name": "image", "shape": [3], "datatype": "BYTES", "data": strings}
    document = {
        "data-base64": {"data": [b64(b) for b in three]},
        "data-encodebytes": {"data": [base64.encodebytes(b).decode() for b in three]},  # a newline every 76
        "data-url-prefix": {"data": ["data:image/png;base64," + b64(b) for b in three]},
        "input-data-list": {"input_data": [b64(b) for b in three]},
        "input-data-columns": {"input_data": {"columns": ["image"], "data": [[b64(b)] for b in three]}},
        "input-data-automl": {"input_data": {"columns": ["image"], "index": [0, 1, 2], "data": strings}},
        "v2-bytes": {"id": "req-1", "inputs": [v2_tensor]},
        "pixels-json": {"data": pixel_rows(folder, three).tolist()},
    }  # fmt: skip
    cases = {name: (three, json.dumps(doc).encode(), "application/json") for name, doc in document.items()}
    cases |= {
        "raw-png": (one, PNGS[0], "image/png"),
        "raw-jpeg": (JPEGS[:1], JPEGS[0], "image/jpeg"),
        "raw-octet-stream": (one, PNGS[0], "application/octet-stream"),
        "multipart-one": (one, single, single_type),
        "multipart-three": (three, body, content_type),
        "pixels-npy": (three, npy.getvalue(), "application/x-npy"),
    }
    return cases


def probabilities(reply: Reply) -> np.ndarray:
    answer = reply.json()
    if "outputs" in answer:  # V2
        tensor = next(t for t in answer["outputs"] if t["name"] == "probabilities")
        return np.asarray(tensor["data"]).reshape(tensor["shape"])
    return np.asarray(answer["probabilities"])


def test_every_request_form_is_answered_as_in_process_and_as_training_computes(
    server: InferenceServer, shapes_folder: Path, shapes_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = scoring_app_client(monkeypatch, shapes_dir, MAX_IMAGES="8")

    for name, (blobs, body, content_type) in forms(shapes_folder).items():
        reply = request(server.url + "/score", body, method="POST", content_type=content_type)
        in_process = client.post("/score", data=body, content_type=content_type)

        assert reply.status == 200, (name, reply.body[:300])
        assert reply.json() == in_process.get_json(), name
        np.testing.assert_allclose(probabilities(reply), reference(shapes_folder, blobs), atol=2e-5, err_msg=name)


def test_png_and_jpeg_files_get_the_answer_training_would_give_and_mostly_the_true_shape(
    server: InferenceServer, shapes_folder: Path
) -> None:
    for blobs, labels in ((PNGS, PNG_LABELS), (JPEGS, JPEG_LABELS)):
        answer = post_json(server.url + "/score", {"data": [b64(b) for b in blobs]}).json()

        np.testing.assert_allclose(answer["probabilities"], reference(shapes_folder, blobs), atol=2e-5)
        assert sum(p == SHAPES[t] for p, t in zip(answer["predictions"], labels, strict=True)) >= len(labels) - 1


def test_curl_uploads_the_deploy_samples_as_the_readme_shows(server: InferenceServer) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    url = server.url + "/score"
    calls = {
        "triangle": ["-F", f"file=@{REPO_ROOT / 'deploy' / 'sample-shape.png'}"],
        "circle": ["-H", "Content-Type: image/jpeg", "--data-binary", f"@{REPO_ROOT / 'deploy' / 'sample-shape.jpg'}"],
    }  # fmt: skip

    for label, arguments in calls.items():
        done = subprocess.run(["curl", "-s", "--max-time", "30", *arguments, url], capture_output=True, timeout=60)
        assert json.loads(done.stdout)["predictions"] == [label], done.stdout


@pytest.mark.parametrize(
    ("how", "body", "content_type", "query"),
    [
        ("query", json.dumps({"data": [b64(PNGS[0])]}).encode(), "application/json", "?top_k=2"),
        ("json-field", json.dumps({"data": [b64(PNGS[0])], "top_k": 2}).encode(), "application/json", ""),
        ("raw-body", PNGS[0], "image/png", "?top_k=2"),
        ("form-field", *multipart(PNGS[:1], top_k="2"), ""),
    ],
)
def test_top_k_answers_labels_and_scores_best_first(
    server: InferenceServer, shapes_folder: Path, how: str, body: bytes, content_type: str, query: str
) -> None:
    reply = request(server.url + "/score" + query, body, method="POST", content_type=content_type)

    expected = reference(shapes_folder, PNGS[:1])[0]
    order = np.argsort(-expected)[:2]
    [ranked] = reply.json()["predictions"]
    assert [item["label"] for item in ranked] == [SHAPES[i] for i in order], how
    np.testing.assert_allclose([item["score"] for item in ranked], expected[order], atol=2e-5)


def test_top_k_is_capped_at_the_labels_and_answered_in_v2(server: InferenceServer) -> None:
    v2 = {"inputs": [{"name": "image", "shape": [2], "datatype": "BYTES", "data": [b64(b) for b in PNGS[:2]]}]}
    v2["parameters"] = {"top_k": 10}

    answer = post_json(server.url + "/score", v2).json()

    labels, scores = (next(t for t in answer["outputs"] if t["name"] == name) for name in ("labels", "scores"))
    assert labels["shape"] == scores["shape"] == [2, len(SHAPES)]
    assert sorted(labels["data"][: len(SHAPES)]) == sorted(SHAPES)


@pytest.mark.parametrize(
    ("query", "body", "status", "code"),
    [
        ("?top_k=0", {}, 422, "invalid_top_k"),
        ("?top_k=two", {}, 422, "invalid_top_k"),
        ("?top_k=1&top_k=2", {}, 422, "invalid_top_k"),
        ("", {"top_k": True}, 422, "invalid_top_k"),
        ("", {"top_k": 1.5}, 422, "invalid_top_k"),
        ("?top_k=2", {"top_k": 3}, 422, "invalid_top_k"),
    ],
)
def test_a_bad_top_k_is_a_422_before_the_model_runs(
    server: InferenceServer, query: str, body: dict, status: int, code: str
) -> None:
    reply = post_json(server.url + "/score" + query, {"data": [b64(PNGS[0])], **body})

    assert (reply.status, reply.json()["code"]) == (status, code), reply.body


def test_top_k_with_a_npy_answer_is_refused_with_the_reason(server: InferenceServer) -> None:
    reply = request(
        server.url + "/score?top_k=1", PNGS[0], method="POST", content_type="image/png",
        headers={"Accept": "application/x-npy"},
    )  # fmt: skip

    assert (reply.status, reply.json()["code"]) == (422, "top_k_not_applicable")


def bad_requests() -> list[tuple[str, bytes, str, int, str]]:
    """Requests that are wrong as requests (not as pictures): (name, body, Content-Type, status, code)."""
    nine, nine_type = multipart(PNGS[:1] * 9)
    no_file, no_file_type = encode_multipart_formdata([("picture", ("a.png", PNGS[0], "image/png"))])
    return [
        ("not-base64", json.dumps({"data": ["this is not base64!"]}).encode(), "application/json", 400,
         "invalid_base64"),
        ("base64-of-text", json.dumps({"data": [b64(b"hello")]}).encode(), "application/json", 400, "invalid_image"),
        ("number-among-images", json.dumps({"data": [b64(PNGS[0]), 7]}).encode(), "application/json", 422,
         "invalid_image_item"),
        ("empty-list", json.dumps({"data": []}).encode(), "application/json", 422, "empty_batch"),
        ("too-many-images", nine, nine_type, 413, "too_many_images"),
        ("too-many-in-json", json.dumps({"data": [b64(PNGS[0])] * 9}).encode(), "application/json", 413,
         "too_many_images"),
        ("form-without-file", no_file, no_file_type, 422, "missing_file"),
        ("form-without-boundary", b"--x\r\n", "multipart/form-data", 400, "invalid_multipart"),
        ("form-cut-short", nine[:400], nine_type, 400, "invalid_multipart"),
        ("v2-bytes-wrong-count", json.dumps({"inputs": [{"name": "i", "shape": [2], "datatype": "BYTES",
         "data": [b64(PNGS[0])]}]}).encode(), "application/json", 422, "shape_mismatch"),
        ("text-plain", b"a photo of a cat", "text/plain", 415, "unsupported_content_type"),
    ]  # fmt: skip


def test_every_bad_image_request_gets_its_4xx_and_the_next_request_is_answered(server: InferenceServer) -> None:
    for name, body, content_type, status, code in bad_requests():
        reply = request(server.url + "/score", body, method="POST", content_type=content_type)
        assert (reply.status, reply.json()["code"]) == (status, code), (name, reply.body[:300])
        assert request(server.url + "/score", PNGS[0], method="POST", content_type="image/png").status == 200, name


@pytest.mark.parametrize("case", ODD_IMAGES, ids=lambda case: case.name)
def test_every_odd_picture_gets_its_documented_answer_from_the_real_server(
    server: InferenceServer, case: OddImage
) -> None:
    blob = case.build()

    reply = request(server.url + "/score", blob, method="POST", content_type="application/octet-stream")

    assert reply.status == case.status, reply.body[:300]
    if case.status != 200:
        assert reply.json()["code"] == case.code
        assert "the body" in reply.json()["message"]
    else:
        assert reply.json()["predictions"][0] in SHAPES
    as_json = post_json(server.url + "/score", {"data": [b64(PNGS[0]), b64(blob)]})
    assert as_json.status == case.status  # the same answer in a JSON batch, naming the picture's place
    if case.status != 200:
        assert '"data"[1]' in as_json.json()["message"]
    assert request(server.url + "/score", PNGS[0], method="POST", content_type="image/png").status == 200


def test_the_digits_demo_answers_a_png_of_a_digit(served: InferenceServer) -> None:
    blob = (REPO_ROOT / "deploy" / "sample-digit.png").read_bytes()

    raw = request(served.url + "/score", blob, method="POST", content_type="image/png").json()
    as_json = post_json(served.url + "/score", {"data": [b64(blob)]}).json()

    assert raw == as_json and raw["predictions"][0] in range(10)
    assert max(raw["probabilities"][0]) > 0.9


def test_a_model_of_rows_says_it_takes_no_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from training.train import train_linnerud

    train_linnerud(tmp_path / "model")
    client = scoring_app_client(monkeypatch, tmp_path)

    raw = client.post("/score", data=encode(photo(), "PNG"), content_type="image/png")
    top_k = client.post("/score?top_k=2", json={"data": [[5, 160, 60]]})

    assert (raw.status_code, raw.get_json()["code"]) == (415, "images_not_accepted")
    assert (top_k.status_code, top_k.get_json()["code"]) == (422, "top_k_not_applicable")


def test_the_doctor_prints_the_image_pipeline_and_the_labels(shapes_folder: Path) -> None:
    from serving import doctor

    ok, report = doctor.diagnose(str(shapes_folder), {"AZUREML_MODEL_DIR": str(shapes_folder)})

    assert ok, report
    assert "image pipeline: decode JPEG/PNG/WEBP" in report and "resize the shorter side to 32 (bilinear)" in report
    assert "subtract (" in report and "output: classification, 4 labels ['circle'" in report


def test_make_smoke_sends_the_sample_that_fits_each_model(
    server: InferenceServer, served: InferenceServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness import smoke

    assert smoke.main(["--url", server.url + "/score"]) == 0
    shapes = capsys.readouterr().out
    assert smoke.main(["--url", served.url + "/score"]) == 0
    digits = capsys.readouterr().out

    assert "sample-shape.jpg (image/jpeg): HTTP 200" in shapes and 'predictions: ["circle"]' in shapes
    assert "sample-request.json (application/json): HTTP 200" in digits and "predictions: [3, 7]" in digits
