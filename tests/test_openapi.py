"""The OpenAPI documents: in sync with the model's spec, served by the server, and honoured by the endpoint
(schemathesis against a real server on loopback)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.server import InferenceServer
from model_folder.manifest import DEFAULT_ARCHITECTURE
from serving.openapi import FILES, openapi_documents
from serving.settings import Settings
from tests.helpers import REPO_ROOT, scoring_app_client

SCHEMATHESIS_CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


@pytest.mark.parametrize("version", sorted(FILES))
def test_committed_documents_match_the_generator(version: str) -> None:
    committed = json.loads((REPO_ROOT / FILES[version]).read_text())

    assert committed == openapi_documents(DEFAULT_ARCHITECTURE, Settings(model_dir=None))[version], (
        "run `make openapi` and commit the result"
    )


@pytest.mark.parametrize("version", sorted(FILES))
def test_the_server_serves_the_committed_documents(
    version: str, azure_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = scoring_app_client(monkeypatch, azure_model_dir)

    served = client.get(f"/swagger.json?version={version}").get_json()

    assert served == json.loads((REPO_ROOT / FILES[version]).read_text())


def test_the_v3_document_describes_rows_from_the_input_spec() -> None:
    document = openapi_documents(DEFAULT_ARCHITECTURE, Settings(model_dir=None))["3"]
    schemas = document["components"]["schemas"]

    flat, *nested = schemas["Row"]["oneOf"]
    assert (flat["minItems"], flat["maxItems"], flat["items"]) == (
        64,
        64,
        {"type": "number", "minimum": 0.0, "maximum": 16.0},
    )
    *nested, image = nested
    assert [n["minItems"] for n in nested] == [1, 8]
    assert image == {"type": "string", "format": "byte", "description": "an image file, base64"}  # digits take PNGs
    assert schemas["DataRequest"]["properties"]["data"]["maxItems"] == 1024
    assert set(document["paths"]["/score"]["post"]["responses"]) == {"200", "400", "408", "413", "415", "422"}


@pytest.mark.server
@pytest.mark.parametrize("version", ["2", "3"])
def test_schemathesis_finds_no_server_errors_and_no_schema_violations(served: InferenceServer, version: str) -> None:
    st = Path(sys.executable).with_name("st")

    result = subprocess.run(
        [str(st), "run", f"{served.url}/swagger.json?version={version}", "--url", served.url,
         "--checks", SCHEMATHESIS_CHECKS, "--max-examples", "40", "--no-color"],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout
    assert "passed" in result.stdout
