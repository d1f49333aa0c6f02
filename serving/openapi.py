"""OpenAPI descriptions of the endpoint, generated from the model's input and output specs.

The inference server serves ``swagger2.json``, ``swagger3.json`` and ``swagger3.1.json`` from the app root
(``AML_APP_ROOT``, the code folder) as ``GET /swagger.json?version=2|3|3.1``. ``python -m serving.openapi``
(``make openapi``) writes them for the architecture named by ``MODEL_ARCHITECTURE`` (default: the demo), and
``tests/test_openapi.py`` fails when the committed files drift from what this module generates.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path
from typing import Any

from model_arch.registry import get_architecture
from model_arch.spec import InputSpec, OutputSpec
from model_arch.text import TextSpec
from model_folder.manifest import DEFAULT_ARCHITECTURE
from serving.codecs import NPY, V2_NUMERIC
from serving.codecs.texts import TEXT_PLAIN
from serving.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
FILES = {"2": "swagger2.json", "3": "swagger3.json", "3.1": "swagger3.1.json"}
ERROR_CODES = {
    "400": "The body is not what it claims to be (not JSON, not UTF-8, not .npy, no data field; for an image model: "
    "not base64, not an image, a truncated or corrupt image, a broken multipart form).",
    "408": "The body did not arrive within BODY_TIMEOUT_S.",
    "413": "Too many rows (MAX_BATCH_ROWS), images (MAX_IMAGES), bytes (MAX_BODY_BYTES) or pixels in one image.",
    "415": "A Content-Type this model does not take, or an image format outside its allow-list.",
    "422": "Well-formed, but wrong for this model: row shape, non-numbers, NaN or infinity, values out of range, "
    "an image too small for the input, a bad top_k.",
}
TOP_K_PARAMETER = {
    "name": "top_k",
    "in": "query",
    "required": False,
    "description": "Answer each row with its k most probable labels, best first (capped at the labels).",
}


def openapi_documents(architecture: str, settings: Settings) -> dict[str, dict[str, Any]]:
    """The OpenAPI 2.0, 3.0 and 3.1 documents for a registered architecture, keyed by version."""
    arch = get_architecture(architecture)
    schemas = _schemas(arch.input_spec, arch.output_spec, settings.max_batch_rows, arch.tokenizer, settings)
    title = f"{arch.name} scoring endpoint"
    v3 = _openapi3(title, schemas, arch.input_spec, texts=arch.tokenizer is not None)
    v31 = copy.deepcopy(v3)
    v31["openapi"] = "3.1.0"
    return {"2": _swagger2(title, schemas, arch.input_spec, texts=arch.tokenizer is not None), "3": v3, "3.1": v31}


def write_documents(folder: Path, architecture: str, settings: Settings) -> list[Path]:
    written = []
    for version, document in openapi_documents(architecture, settings).items():
        path = folder / FILES[version]
        path.write_text(json.dumps(document, indent=2) + "\n")
        written.append(path)
    return written


def _text_schemas(tokenizer: TextSpec, settings: Settings) -> dict[str, Any]:
    """The request schemas of a text model: lists of strings (``serving.codecs.texts``)."""
    text = {
        "type": "string",
        "minLength": 1,
        "maxLength": settings.max_text_chars,
        "description": f"a text; the model reads its first {tokenizer.max_length} tokens",
    }
    texts = {
        "type": "array",
        "minItems": 1,
        "maxItems": settings.max_texts,
        "items": {"$ref": "#/components/schemas/Row"},
    }
    columns = {
        "type": "object",
        "required": ["data"],
        "properties": {
            "columns": {"type": "array", "minItems": 1, "maxItems": 1, "items": {"type": "string"}},
            "data": {"type": "array", "minItems": 1, "maxItems": settings.max_texts, "items": {
                "type": "array", "minItems": 1, "maxItems": 1, "items": {"$ref": "#/components/schemas/Row"}}},
        },
    }  # fmt: skip
    return {"Row": text, "texts": texts, "columns": columns}


def _schemas(
    spec: InputSpec,
    output: OutputSpec,
    max_rows: int,
    tokenizer: TextSpec | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    if tokenizer is not None:
        text = _text_schemas(tokenizer, settings or Settings(model_dir=None))
        schemas = _schemas(InputSpec(name="text", shape=(1,)), output, max_rows)
        schemas["Row"] = text["Row"]
        top_k = {"type": "integer", "minimum": 1}
        schemas["DataRequest"]["properties"] = {"data": text["texts"], "top_k": top_k}
        schemas["InputDataRequest"]["properties"] = {
            "input_data": {"oneOf": [text["texts"], text["columns"]]},
            "top_k": top_k,
        }
        tensor = schemas["V2Request"]["properties"]["inputs"]["items"]["properties"]
        tensor["name"]["example"] = "text"
        tensor["datatype"]["enum"] = ["BYTES"]
        tensor["data"]["items"] = {"$ref": "#/components/schemas/Row"}
        return schemas
    number: dict[str, Any] = {"type": "number"}
    if spec.minimum is not None:
        number["minimum"] = spec.minimum
    if spec.maximum is not None:
        number["maximum"] = spec.maximum
    row_forms = [_nested(shape, number) for shape in spec.accepted_row_shapes]
    if spec.names:
        row_forms.append(_object(spec.names, number))
    if spec.image is not None:  # a row may also be a base64 image file
        row_forms.append({"type": "string", "format": "byte", "description": "an image file, base64"})
    row = {"description": spec.describe_row(), "oneOf": row_forms} if len(row_forms) > 1 else row_forms[0]
    rows = {"type": "array", "minItems": 1, "maxItems": max_rows, "items": {"$ref": "#/components/schemas/Row"}}
    top_k = {"type": "integer", "minimum": 1}
    tensor_out = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string"},
            "data": {"type": "array"},
        },
    }
    return {
        "Row": row,
        "DataRequest": {"type": "object", "required": ["data"], "properties": {"data": rows, "top_k": top_k}},
        "InputDataRequest": {
            "type": "object",
            "required": ["input_data"],
            "properties": {"input_data": rows, "top_k": top_k},
        },
        "V2Request": {
            "type": "object",
            "required": ["inputs"],
            "properties": {
                "id": {"type": "string"},
                "parameters": {"type": "object", "properties": {"top_k": top_k}},
                "inputs": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "shape", "datatype", "data"],
                        "properties": {
                            "name": {"type": "string", "example": spec.name},
                            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                            "datatype": {
                                "type": "string",
                                "enum": [*V2_NUMERIC, "BYTES"] if spec.image is not None else list(V2_NUMERIC),
                            },
                            "data": {"type": "array", "items": number if spec.image is None else {}},
                        },
                    },
                },
            },
        },
        "Prediction": _prediction_schema(output),
        "RankedPrediction": _ranked_schema(output),
        "V2Response": {
            "type": "object",
            "required": ["model_name", "model_version", "id", "outputs"],
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"type": "string"},
                "id": {"type": "string"},
                "outputs": {"type": "array", "items": tensor_out},
            },
        },
        "ModelInfo": {
            "type": "object",
            "required": ["name", "version", "architecture", "input", "output", "request"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "architecture": {"type": "string"},
                "input": {"type": "object"},
                "output": {"type": "object"},
                "request": {"type": "object"},
            },
        },
        "Error": {
            "type": "object",
            "required": ["message"],
            "properties": {
                "code": {
                    "type": "string",
                    "description": "Stable, machine-readable: invalid_json, wrong_row_shape, ...",
                },
                "message": {"type": "string", "description": "What was received and what was expected."},
            },
        },
    }


def _label_schema(output: OutputSpec) -> dict[str, Any]:
    label_type = "integer" if all(isinstance(label, int) for label in output.labels) else "string"
    return {"type": label_type, "enum": list(output.labels)}


def _ranked_schema(output: OutputSpec) -> dict[str, Any]:
    """The answer with ``top_k``: per row, ``[{"label", "score"}]`` best first."""
    if not output.labelled:
        return {"type": "object", "description": "top_k is refused for a model without labels"}
    item = {
        "type": "object",
        "required": ["label", "score"],
        "properties": {"label": _label_schema(output), "score": {"type": "number", "minimum": 0, "maximum": 1}},
    }
    ranked = {"type": "array", "items": {"type": "array", "minItems": 1, "items": item}}
    return {"type": "object", "required": ["predictions"], "properties": {"predictions": ranked}}


def _prediction_schema(output: OutputSpec) -> dict[str, Any]:
    if output.kind == "embedding":
        width = output.dimensions
        vector = {"type": "array", "minItems": width, "maxItems": width, "items": {"type": "number"}}
        return {
            "type": "object",
            "required": ["embeddings"],
            "properties": {"embeddings": {"type": "array", "items": vector}},
        }
    if output.kind == "regression":
        predictions = {"type": "array", "items": _object(output.names, {"type": "number"})}
        return {"type": "object", "required": ["predictions"], "properties": {"predictions": predictions}}
    width = len(output.labels)
    probability = {"type": "number", "minimum": 0, "maximum": 1}
    label = _label_schema(output)
    per_row = {"type": "array", "items": label} if output.kind == "multilabel" else label
    return {
        "type": "object",
        "required": ["predictions", "probabilities"],
        "properties": {
            "predictions": {"type": "array", "items": per_row},
            "probabilities": {
                "type": "array",
                "items": {"type": "array", "minItems": width, "maxItems": width, "items": probability},
            },
        },
    }


def _object(names: tuple[str, ...], value: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(names),
        "properties": {name: value for name in names},
        "additionalProperties": False,
    }


def _nested(shape: tuple[int, ...], leaf: dict[str, Any]) -> dict[str, Any]:
    schema = leaf
    for size in reversed(shape):
        schema = {"type": "array", "minItems": size, "maxItems": size, "items": schema}
    return schema


def _example(spec: InputSpec, texts: bool = False) -> dict[str, Any]:
    if texts:
        return {"data": ["The striker scored twice in the derby.", "Heavy rain is expected over the coast."]}
    return {"data": [[0] * spec.size]}


def _openapi3(title: str, schemas: dict[str, Any], spec: InputSpec, texts: bool = False) -> dict[str, Any]:
    ref = "#/components/schemas/{}".format
    errors = {
        code: {"description": text, "content": {"application/json": {"schema": {"$ref": ref("Error")}}}}
        for code, text in ERROR_CODES.items()
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": "1", "description": "Azure ML online endpoint, PyTorch scoring template."},
        "paths": {
            "/": {
                "get": {
                    "summary": "Liveness and readiness probe",
                    "operationId": "health",
                    "responses": {
                        "200": {"description": "Healthy", "content": {"text/html": {"schema": {"type": "string"}}}}
                    },
                }
            },
            "/score": {
                "get": {
                    "summary": "Describe the model and the request contract",
                    "operationId": "describe",
                    "responses": {
                        "200": {
                            "description": "Model metadata",
                            "content": {"application/json": {"schema": {"$ref": ref("ModelInfo")}}},
                        }
                    },
                },
                "post": {
                    "summary": "Score a batch of texts"
                    if texts
                    else "Score a batch of rows" + (" or images" if spec.image is not None else ""),
                    "operationId": "score",
                    "parameters": [{**TOP_K_PARAMETER, "schema": {"type": "integer", "minimum": 1}}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": ref("DataRequest")},
                                        {"$ref": ref("InputDataRequest")},
                                        {"$ref": ref("V2Request")},
                                    ]
                                },
                                "example": _example(spec, texts),
                            },
                            **(
                                {TEXT_PLAIN: {"schema": {"$ref": ref("Row")}}}
                                if texts
                                else {NPY: {"schema": {"type": "string", "format": "binary"}}}
                            ),
                            **(_image_content(spec) if spec.image is not None else {}),
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "One prediction per row (V2 requests get a V2 response; "
                            "Accept: application/x-npy gets float32 probabilities shaped (rows, labels) as .npy)",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "oneOf": [
                                            {"$ref": ref("Prediction")},
                                            {"$ref": ref("RankedPrediction")},
                                            {"$ref": ref("V2Response")},
                                        ]
                                    }
                                },
                                NPY: {"schema": {"type": "string", "format": "binary"}},
                            },
                        },
                        **errors,
                    },
                },
            },
        },
        "components": {"schemas": schemas},
    }


def _image_content(spec: InputSpec) -> dict[str, Any]:
    """The image request forms: a raw image body, and multipart files in parts named ``file``."""
    assert spec.image is not None
    binary = {"type": "string", "format": "binary"}
    formats = ", ".join(spec.image.formats)
    return {
        "image/*": {"schema": {**binary, "description": f"one image file ({formats})"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "array", "items": binary, "description": f"image files ({formats})"},
                    "top_k": {"type": "integer", "minimum": 1},
                },
            }
        },
    }


def _swagger2(title: str, schemas: dict[str, Any], spec: InputSpec, texts: bool = False) -> dict[str, Any]:
    text = json.dumps(schemas).replace("#/components/schemas/", "#/definitions/")
    definitions = json.loads(text)
    for schema in definitions.values():  # Swagger 2.0 has no oneOf: describe a row by its flat form
        if "oneOf" in schema:
            schema.update(schema.pop("oneOf")[0])
        for field in schema.get("properties", {}).values():  # a text model's input_data: its list form
            if "oneOf" in field:
                field.update(field.pop("oneOf")[0])
    for name in ("DataRequest", "InputDataRequest"):  # nor an answer of another shape: top_k is in the 3.x documents
        definitions[name]["properties"].pop("top_k")
    definitions["V2Request"]["properties"].pop("parameters")
    ref = "#/definitions/{}".format
    errors = {code: {"description": text, "schema": {"$ref": ref("Error")}} for code, text in ERROR_CODES.items()}
    return {
        "swagger": "2.0",
        "info": {"title": title, "version": "1", "description": "Azure ML online endpoint, PyTorch scoring template."},
        "schemes": ["http", "https"],
        "consumes": ["application/json"],  # a body schema is JSON; .npy is documented in the 3.x documents
        "produces": ["application/json"],
        "paths": {
            "/score": {
                "get": {
                    "summary": "Describe the model and the request contract",
                    "operationId": "describe",
                    "responses": {"200": {"description": "Model metadata", "schema": {"$ref": ref("ModelInfo")}}},
                },
                "post": {
                    "summary": 'Score a batch of texts: {"data": [texts]} ({"input_data": [texts]}, V2 BYTES and '
                    "text/plain also work)"
                    if texts
                    else 'Score a batch of rows: {"data": rows} ({"input_data": rows}, V2 and .npy also work)',
                    "operationId": "score",
                    "parameters": [
                        {
                            "name": "body",
                            "in": "body",
                            "required": True,
                            "schema": {"$ref": ref("DataRequest")},
                            "x-example": _example(spec, texts),
                        }
                    ],  # top_k is in the 3.x documents: Swagger 2.0 cannot say its answer is another shape (oneOf)
                    "responses": {
                        "200": {"description": "One prediction per row", "schema": {"$ref": ref("Prediction")}},
                        **errors,
                    },
                },
            }
        },
        "definitions": definitions,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write swagger2.json, swagger3.json and swagger3.1.json.")
    parser.add_argument("--out", type=Path, default=REPO_ROOT, help="folder (default: the repository root)")
    args = parser.parse_args(argv)
    architecture = os.environ.get("MODEL_ARCHITECTURE") or DEFAULT_ARCHITECTURE
    for path in write_documents(args.out, architecture, Settings.from_env()):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
