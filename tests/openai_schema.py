"""OpenAI's published OpenAPI schemas (``tests/schemas/openai-openapi.json.gz``) as jsonschema validators.

The document says OpenAPI 3.1 but marks nullable values the 3.0 way (``nullable: true``), which JSON Schema
ignores; ``_with_nulls`` rewrites those into JSON Schema before validation.
"""

import functools
import gzip
import json
from pathlib import Path
from typing import Any

import jsonschema

__all__ = ["SPEC_PATH", "assert_valid", "request_fields", "spec"]

SPEC_PATH = Path(__file__).resolve().parent / "schemas" / "openai-openapi.json.gz"


def _with_nulls(node: Any) -> Any:
    if isinstance(node, list):
        return [_with_nulls(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _with_nulls(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is not True:
        return out
    kind = out.get("type")
    if isinstance(kind, str):
        out["type"] = [kind, "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        return out
    return {"anyOf": [out, {"type": "null"}]}


@functools.cache
def spec() -> dict[str, Any]:
    with gzip.open(SPEC_PATH) as file:
        document: dict[str, Any] = json.load(file)
    return document


@functools.cache
def _document() -> dict[str, Any]:
    converted: dict[str, Any] = _with_nulls(spec())
    return converted


@functools.cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = {**_document(), "$ref": f"#/components/schemas/{name}"}
    validator: jsonschema.protocols.Validator = jsonschema.Draft202012Validator(schema)
    return validator


def assert_valid(instance: Any, name: str) -> None:
    """Raise AssertionError listing every way ``instance`` breaks OpenAI's schema ``name``."""
    errors = sorted(_validator(name).iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors[:10]]
        raise AssertionError(f"not a valid {name}:\n  " + "\n  ".join(lines))


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    schemas = spec()["components"]["schemas"]
    if "$ref" in schema:
        return _properties(schemas[schema["$ref"].rsplit("/", 1)[-1]])
    found = dict(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        found |= _properties(part)
    return found


def request_fields(name: str) -> dict[str, Any]:
    """The properties of request schema ``name`` (``allOf`` and ``$ref`` followed), by field name."""
    return _properties({"$ref": f"#/components/schemas/{name}"})
