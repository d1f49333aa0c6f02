"""A tiny HTTP client for the local server (standard library only): used by ``make smoke`` and the tests."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    url: str,
    body: bytes | None = None,
    *,
    method: str | None = None,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Reply:
    """Send one request; any HTTP status comes back as a ``Reply`` (only connection failures raise)."""
    all_headers = {"Content-Type": content_type} if body is not None else {}
    all_headers.update(headers or {})
    req = urllib.request.Request(url, data=body, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return Reply(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as err:
        with err:
            return Reply(err.code, dict(err.headers), err.read())


def post_json(url: str, document: Any, **kwargs: Any) -> Reply:
    return request(url, json.dumps(document).encode(), method="POST", **kwargs)
