"""No secret in the repository: every tracked file is scanned for key-like strings."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.helpers import REPO_ROOT

SECRET_PATTERNS = {
    "Azure storage connection string": re.compile(r"AccountKey=[A-Za-z0-9+/=]{20,}"),
    "Azure shared access signature": re.compile(r"[?&]sig=[A-Za-z0-9%+/=]{20,}"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "endpoint or API key assignment": re.compile(
        r"(?i)\b(primary_?key|secondary_?key|api[_-]?key|client_secret|password)\b\s*[:=]\s*[\"']?[A-Za-z0-9+/]{24,}"
    ),
    "bearer token": re.compile(r"(?i)authorization:\s*bearer\s+[A-Za-z0-9._-]{20,}"),
}


def tracked_text_files() -> list:
    names = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    files = []
    for name in names.stdout.splitlines():
        path = REPO_ROOT / name
        data = path.read_bytes() if path.is_file() else b""
        if b"\0" not in data:
            files.append((name, data.decode(errors="replace")))
    return files


def test_no_tracked_file_holds_a_key_like_string() -> None:
    files = tracked_text_files()
    findings = [
        f"{name}: {kind}"
        for name, text in files
        for kind, pattern in SECRET_PATTERNS.items()
        if pattern.search(text) and name != "tests/test_secrets.py"
    ]

    assert len(files) > 20  # the scan really ran over the repository
    assert findings == []


@pytest.mark.parametrize(
    "leak",
    [
        "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=" + "a1B2" * 11 + "==;",
        "primaryKey: " + "Zm9vYmFy" * 4,
        "-----BEGIN RSA PRIVATE KEY-----",
        "Authorization: Bearer " + "eyJ" + "x" * 30,
    ],
)
def test_the_scan_recognises_real_looking_secrets(leak: str) -> None:
    assert any(pattern.search(leak) for pattern in SECRET_PATTERNS.values())
