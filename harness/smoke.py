"""Post the sample request to a running server and print the answer: ``python -m harness.smoke``.

What ``make smoke`` runs against ``make serve``. Exits non-zero when the server is not there or does not
answer 200, so it can stand in a script.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.client import request

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_REQUEST = REPO_ROOT / "deploy" / "sample-request.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5001/score")
    parser.add_argument("--request-file", type=Path, default=SAMPLE_REQUEST)
    args = parser.parse_args(argv)

    try:
        reply = request(args.url, args.request_file.read_bytes(), method="POST")
    except OSError as err:
        print(f"cannot reach {args.url} ({err}); is `make serve` running in another terminal?", file=sys.stderr)
        return 2
    print(
        f"POST {args.url} <- {args.request_file}: HTTP {reply.status}, request id {reply.headers.get('x-request-id')}"
    )
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
