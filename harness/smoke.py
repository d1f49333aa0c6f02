"""Post a sample request to a running server and print the answer: ``python -m harness.smoke [--request-file F]``.

What ``make smoke`` runs against ``make serve``. Without a file it asks the server (``GET /score``) what the model
takes and sends the matching sample from ``deploy/``: the JSON rows for the digits demo, a picture for any other
image model (an RGB photo of a circle, or a grayscale digit), two texts for a text model. A file is sent as its
suffix says: ``.json``, ``.npy``, or an image (``.jpg``, ``.png``, ``.webp``) as the raw body. Exits non-zero when
the server is not there or does not answer 200, so it can stand in a script.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.client import request

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_REQUEST = REPO_ROOT / "deploy" / "sample-request.json"
SAMPLE_RGB = REPO_ROOT / "deploy" / "sample-shape.jpg"
SAMPLE_GRAY = REPO_ROOT / "deploy" / "sample-digit.png"
SAMPLE_TEXTS = REPO_ROOT / "deploy" / "sample-texts.json"
CONTENT_TYPES = {
    ".json": "application/json",
    ".npy": "application/x-npy",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
}
SAMPLE_ROW_VALUES = 64  # deploy/sample-request.json holds rows of 64 numbers (8×8 digits)


def sample_for(description: dict) -> Path:
    """The sample in ``deploy/`` that fits the model ``GET /score`` describes."""
    if "tokenizer" in description:  # a text model: it takes strings
        return SAMPLE_TEXTS
    shape = description.get("input", {}).get("shape", [])
    if "images" not in description.get("request", {}) or _size(shape) == SAMPLE_ROW_VALUES:
        return SAMPLE_REQUEST
    return SAMPLE_GRAY if shape[:1] == [1] else SAMPLE_RGB


def _size(shape: list[int]) -> int:
    size = 1
    for n in shape:
        size *= n
    return size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5001/score")
    parser.add_argument("--request-file", type=Path, help="default: the sample in deploy/ that fits the model")
    args = parser.parse_args(argv)

    try:
        path = args.request_file or sample_for(request(args.url).json())
        content_type = CONTENT_TYPES.get(path.suffix.lower(), "application/json")
        reply = request(args.url, path.read_bytes(), method="POST", content_type=content_type)
    except OSError as err:
        print(f"cannot reach {args.url} ({err}); is `make serve` running in another terminal?", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"{args.url} did not describe its model on GET ({err}); is it this template's server?", file=sys.stderr)
        return 2
    request_id = reply.headers.get("x-request-id")
    print(f"POST {args.url} <- {path} ({content_type}): HTTP {reply.status}, request id {request_id}")
    try:
        answer = reply.json()
    except ValueError:
        answer = reply.body.decode(errors="replace")
    if isinstance(answer, dict):
        for key, value in answer.items():
            print(f"{key}: {json.dumps(value)}")
    else:
        print(answer)
    return 0 if reply.status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
