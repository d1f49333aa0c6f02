"""Batch scoring end to end: batch_score.py driven by the local runner over folders of good and bad files of every
input kind, each good item's prediction equal to the online endpoint's answer for it, each bad file reported with its
name and reason; and the runner's own contract (retries, timeout, error threshold, init failure)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from batch import output
from batch.runner import JobConfig, Summary, list_inputs, run_job, split
from harness.layout import lay_out_like_azure
from model_arch.wine_mlp import FEATURES as WINE_FEATURES
from tests.helpers import scoring_app_client
from tests.image_files import encode, photo
from training.data import wine_split
from training.train import train_wine

pytestmark = pytest.mark.slow

DIGIT_ROWS = np.asarray(
    [[0, 0, 5, 13, 9, 1, 0, 0] * 8, [0, 0, 0, 12, 13, 5, 0, 0] * 8, [16, 8, 0, 0, 0, 0, 8, 16] * 8], dtype=float
)


def _png_of(row: np.ndarray) -> bytes:
    from PIL import Image

    return encode(Image.fromarray((row.reshape(8, 8) * 255 / 16).astype(np.uint8), "L"), "PNG")


# Bad files of every kind: (name, content, expected code, a fragment of the reason)
DIGIT_BAD_FILES = [
    ("wrong-shape.npy", lambda: _npy(np.zeros((3, 5))), "wrong_row_shape", "got 3 row(s) of shape 5"),
    ("garbage.npy", lambda: b"not an array at all", "unreadable_file", "garbage.npy could not be read"),
    ("pickled.npy", lambda: _npy(np.array([{"a": 1}], dtype=object)), "unreadable_file", "pickle"),
    ("string-in-row.jsonl", lambda: b"[1, 2]\n" + json.dumps(["x"] * 64).encode(), "non_numeric", 'is "x"'),
    ("broken-line.jsonl", lambda: b"[1, 2, 3\n", "invalid_json", "line 1"),
    ("out-of-range.csv", lambda: ("\n".join([",".join(["99"] * 64)] * 2)).encode(), "out_of_range", "is 99"),
    ("empty.csv", lambda: b"", "unreadable_file", "empty.csv could not be read"),
    ("truncated.png", lambda: encode(photo(), "PNG")[:900], "invalid_image", "truncated"),
    ("bomb.png", None, "image_too_large", "pixels"),
    ("not-a-picture.jpg", lambda: b"this is a sentence", "invalid_image", "not an image"),
    ("notes.txt", lambda: b"hello", "unsupported_file", "'.txt' are not read"),
    ("no-data-key.json", lambda: b'{"rows": []}', "missing_data", '"data" field'),
]


def _npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _bomb() -> bytes:
    from tests.image_files import png_header_only

    return png_header_only(100_000, 100_000)


@pytest.fixture(scope="module")
def digits_model_dir(trained_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model laid out as Azure lays it, for the batch workers."""
    return lay_out_like_azure(trained_folder, tmp_path_factory.mktemp("azureml-models"))


@pytest.fixture(scope="module")
def wine_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wine classifier (13 named features), trained in a second or two, laid out as Azure lays it."""
    folder = tmp_path_factory.mktemp("wine") / "model"
    train_wine(folder, epochs=60)
    return lay_out_like_azure(folder, tmp_path_factory.mktemp("azureml-models"), name="wine")


@pytest.fixture(scope="module")
def digit_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray | bytes]]:
    """A folder with good and bad files of every kind the digits model takes, and what to send the online endpoint
    for each good file: its rows, or a picture's bytes."""
    folder = tmp_path_factory.mktemp("digit-inputs")
    rows = DIGIT_ROWS
    good: dict[str, np.ndarray | bytes] = {}
    np.save(folder / "three.npy", rows.reshape(-1, 1, 8, 8).astype(np.float32))
    good["three.npy"] = rows
    (folder / "lines.jsonl").write_text(
        json.dumps(rows[0].reshape(8, 8).tolist()) + "\n\n" + json.dumps(rows[1].reshape(8, 8).tolist()) + "\n"
    )
    good["lines.jsonl"] = rows[:2]
    pd.DataFrame(rows).to_csv(folder / "headed.csv", index=False)  # header 0, 1, ..., 63: the unnamed columns
    good["headed.csv"] = rows
    (folder / "bare.csv").write_text("\n".join(",".join(f"{v:g}" for v in row) for row in rows[1:]))
    good["bare.csv"] = rows[1:]
    pd.DataFrame(rows, columns=[f"p{i}" for i in range(64)]).to_parquet(folder / "table.parquet")
    good["table.parquet"] = rows
    (folder / "request.json").write_text(json.dumps({"data": rows[:1].tolist()}))
    good["request.json"] = rows[:1]
    for i, row in enumerate(rows):
        name = f"digit {i}.png"  # a space in the name: it must survive the output format
        blob = _png_of(row)
        (folder / name).write_bytes(blob)
        good[name] = blob  # the online endpoint takes the picture itself, as a raw image/png body
    for name, build, _code, _fragment in DIGIT_BAD_FILES:
        (folder / name).write_bytes(build() if build else _bomb())
    (folder / "nested").mkdir()
    np.save(folder / "nested" / "ignored.npy", rows)  # not explored, as in Azure
    return folder, good


def _online(client, rows: list | bytes) -> dict:
    if isinstance(rows, bytes):
        response = client.post("/score", data=rows, content_type="image/png")
    else:
        response = client.post("/score", json={"data": rows})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _by_file(rows: list[dict]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for row in rows:
        found.setdefault(row["file"], []).append(row)
    return found


def _run(folder: Path, model_dir: Path, out: Path, **options) -> tuple[Summary, list[dict]]:
    config = JobConfig(input=folder, output=out, model_dir=model_dir, env={"BATCH_PROBABILITIES": "on"}, **options)
    summary = run_job(config)
    lines = out.read_text().splitlines()
    assert all(" " not in line for line in lines), "an output line holds a space"
    return summary, [json.loads(line) for line in lines]


def test_every_good_digit_item_matches_the_online_answer_and_every_bad_file_is_reported(
    digit_inputs, digits_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, good = digit_inputs
    summary, rows = _run(folder, digits_model_dir, tmp_path / "out" / "predictions.jsonl", mini_batch_size=4)

    by_file = _by_file(rows)
    assert "ignored.npy" not in by_file
    assert set(by_file) == set(good) | {name for name, *_ in DIGIT_BAD_FILES}
    assert summary.files == len(by_file) and summary.failed_files == 0 and summary.ok
    client = scoring_app_client(monkeypatch, digits_model_dir)
    for name, sent in good.items():
        answer = _online(client, sent if isinstance(sent, bytes) else sent.tolist())
        scored = sorted(by_file[name], key=lambda row: row["item"])
        assert [row["item"] for row in scored] == list(range(len(answer["predictions"]))), name
        assert [row["label"] for row in scored] == answer["predictions"], name
        np.testing.assert_allclose([row["probabilities"] for row in scored], answer["probabilities"], atol=2e-6)
        assert all(row["status"] == "ok" and row["score"] == max(row["probabilities"]) for row in scored)
    for name, _build, code, fragment in DIGIT_BAD_FILES:
        (row,) = by_file[name]
        assert (row["status"], row["item"], row["code"]) == ("error", None, code), row
        assert fragment in row["reason"], row
    assert summary.error_files == len(DIGIT_BAD_FILES)


def test_named_columns_are_taken_by_name_in_csv_and_parquet(
    wine_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = wine_split(seed=0).x_test[:6]
    table = pd.DataFrame(x, columns=list(WINE_FEATURES))
    folder = tmp_path / "in"
    folder.mkdir()
    shuffled = table[list(reversed(WINE_FEATURES))].assign(id=range(6))  # other order, and an id column
    shuffled.to_csv(folder / "wines.csv", index=False)
    table.to_parquet(folder / "wines.parquet")
    table.to_csv(folder / "unnamed.csv", index=False, header=False)  # no header: every column in order
    table.drop(columns=["proline"]).to_csv(folder / "lacks-proline.csv", index=False)
    table.assign(alcohol="strong").to_parquet(folder / "text-column.parquet")
    (folder / "corrupt.parquet").write_bytes(b"PAR1 not really")
    with (folder / "objects.jsonl").open("w") as lines:
        for row in table.to_dict(orient="records"):
            lines.write(json.dumps(row) + "\n")

    summary, rows = _run(folder, wine_model_dir, tmp_path / "out" / "predictions.jsonl", processes=1)

    by_file = _by_file(rows)
    answer = _online(scoring_app_client(monkeypatch, wine_model_dir), table.to_dict(orient="records"))
    for name in ("wines.csv", "wines.parquet", "unnamed.csv", "objects.jsonl"):
        scored = sorted(by_file[name], key=lambda row: row["item"])
        assert [row["label"] for row in scored] == answer["predictions"], name
        np.testing.assert_allclose([row["probabilities"] for row in scored], answer["probabilities"], atol=2e-6)
    assert by_file["lacks-proline.csv"][0]["code"] == "wrong_features"
    assert "lacks ['proline']" in by_file["lacks-proline.csv"][0]["reason"]
    assert by_file["text-column.parquet"][0]["code"] == "non_numeric"
    assert by_file["corrupt.parquet"][0]["code"] == "unreadable_file"
    assert summary.error_files == 3


def test_an_output_line_has_no_space_and_reads_back_exactly() -> None:
    row = {"file": "a b\tc.png", "item": None, "status": "error", "code": "x", "reason": 'two  spaces, "quotes"\n'}

    text = output.line(row)

    assert " " not in text and "\n" not in text
    assert json.loads(text) == row
    assert text.split(" ") == [text]


def test_the_runner_takes_the_folder_s_files_sorted_and_splits_them_by_count(tmp_path: Path) -> None:
    for name in ("b.npy", "a.npy", "c.csv"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()

    files = list_inputs(tmp_path)

    assert [f.name for f in files] == ["a.npy", "b.npy", "c.csv"]
    assert [len(batch) for batch in split(files, 2)] == [2, 1]


FAKE_SCRIPT = """
import os, time
from pathlib import Path

def init():
    if os.environ.get("FAIL_INIT"):
        raise RuntimeError("no model here")

def run(mini_batch):
    names = [Path(p).name for p in mini_batch]
    if any(n.startswith("boom") for n in names):
        raise ValueError("boom in " + ",".join(names))
    if any(n.startswith("slow") for n in names):
        time.sleep(30)
    if any(n.startswith("short") for n in names):
        return names[:-1]
    return names
"""


@pytest.fixture
def fake_job(tmp_path: Path):
    """A job over a do-nothing script (no model), for the runner's contract; returns a function making the config."""
    script = tmp_path / "fake_score.py"
    script.write_text(FAKE_SCRIPT)

    def make(names: list[str], **options) -> JobConfig:
        folder = tmp_path / "in"
        folder.mkdir(exist_ok=True)
        for name in names:
            (folder / name).write_text("x")
        options.setdefault("mini_batch_size", 1)
        return JobConfig(
            input=folder, output=tmp_path / "out" / "o.jsonl", model_dir=tmp_path, script=script, **options
        )

    return make


def test_a_failing_mini_batch_is_retried_then_its_files_count_as_failed(fake_job) -> None:
    config = fake_job(["a", "boom", "c", "short"], max_retries=1, processes=2)

    summary = run_job(config)

    assert summary.failed_attempts == 4 and summary.failed_files == 2 and summary.ok
    assert sorted(Path(config.output).read_text().split()) == ["a", "c"]
    assert any("ValueError: boom in boom" in failure for failure in summary.failures)
    assert any("returned 0 element(s) for 1 file(s)" in failure for failure in summary.failures)


def test_the_job_stops_past_the_error_threshold(fake_job) -> None:
    config = fake_job(["boom1", "boom2", "boom3", "boom4", "d"], max_retries=0, error_threshold=1, processes=1)

    summary = run_job(config)

    assert summary.stopped and not summary.ok and summary.failed_files == 2
    assert "more than error_threshold 1" in summary.failures[-1]


def test_a_mini_batch_past_its_timeout_is_killed_and_retried(fake_job) -> None:
    config = fake_job(["a", "slow"], max_retries=1, timeout_s=2.0, processes=1)

    summary = run_job(config)

    assert summary.failed_files == 1 and summary.failed_attempts == 2
    assert all("timed out after 2 s" in failure for failure in summary.failures)
    assert Path(config.output).read_text().split() == ["a"]
    assert summary.seconds < 25


def test_an_init_failure_stops_the_job(fake_job) -> None:
    with pytest.raises(RuntimeError, match="no model here"):
        run_job(fake_job(["a"], env={"FAIL_INIT": "1"}, processes=1))


def test_the_output_file_must_be_new(fake_job) -> None:
    config = fake_job(["a"], processes=1)
    Path(config.output).parent.mkdir(parents=True)
    Path(config.output).write_text("an earlier job's rows\n")

    with pytest.raises(FileExistsError, match="new output file"):
        run_job(config)
