"""Reading Conduit's OpenAPI document in tests: JSON Schema validators for its parts (their ``$ref`` resolved
against the document's components), and SSE bodies read as OpenAPI 3.1 tools read them: one
``{id, event, data}`` object per event, its ``data`` checked against ``contentSchema`` when it is JSON."""

import json
from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator

__all__ = ["check_event", "operations", "sse_events", "validate"]

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def validate(doc: dict[str, Any], schema: dict[str, Any], instance: Any) -> None:
    """``instance`` against ``schema``, a part of ``doc`` (``#/components/...`` references resolve)."""
    Draft202012Validator({**schema, "components": doc["components"]}).validate(instance)


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def sse_events(text: str) -> list[dict[str, str]]:
    """The events of an SSE body, as the SSE spec dispatches them (comments and data-less blocks are none)."""
    events: list[dict[str, str]] = []
    data: list[str] = []
    event: dict[str, str] = {}
    last_id: str | None = None
    for line in [*text.replace("\r\n", "\n").split("\n"), ""]:
        if line == "":
            if data:
                events.append({**event, "event": event.get("event", "message"), "data": "\n".join(data)})
                if last_id is not None:
                    events[-1]["id"] = last_id
            data, event = [], {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "id":
                last_id = value
            elif name == "event":
                event["event"] = value
    return events


def check_event(doc: dict[str, Any], schema: dict[str, Any], event: dict[str, str]) -> None:
    """One SSE event against a ``text/event-stream`` schema, its JSON ``data`` against the ``contentSchema``."""
    validate(doc, schema, event)
    if event["data"] == "[DONE]":
        return
    data = schema["properties"]["data"]
    (content,) = [branch for branch in data.get("anyOf", [data]) if "contentSchema" in branch]
    assert content["contentMediaType"] == "application/json"
    validate(doc, content["contentSchema"], json.loads(event["data"]))
