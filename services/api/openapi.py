"""The OpenAPI document at ``/openapi.json`` (and Swagger UI at ``/docs``, see ``services.api.swagger``).

Litestar builds the paths from the route handlers; each handler declares the rest with
``operation_class=documented(...)`` (``services.api.openapi_doc``). When the app starts, every Struct the
operations name (the dialects' request Structs and their documentation-only response Structs) becomes a
``components/schemas`` entry through ``msgspec.json.schema_components``, and the finished document is kept
as bytes.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, Router, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import BaseSchemaObject, Components, SecurityScheme, Tag

from services.api.openapi_doc import DocumentedOperation, Reply, documented, header_components
from services.api.swagger import SwaggerPage

__all__ = ["ROUTES", "add_body_schemas", "document", "openapi_config"]

_STATE_KEY = "openapi_document"

_DESCRIPTION = """\
An LLM gateway: OpenAI-compatible and simple AI endpoints, and saved chats with personas, in front of OpenAI, \
Anthropic, Gemini and OpenAI-compatible servers, behind one authenticated, rate-limited API.

**Authentication.** Every operation but `/healthz`, `/readyz`, `/openapi.json` and this page (`/docs`) takes \
`Authorization: Bearer <token>`, the token being an API key (`sk-conduit-...`) or a JWT; `x-api-key: <token>` \
works too. A missing or bad token is a 401; a tier that may not generate (free) gets a 403 from the \
generation endpoints.

**Errors.** `/v1/...` answers errors as OpenAI does, `{"error": {"message", "type", "param", "code"}}`; \
`/api/ai/...` as `{"detail", "code", "param"?}`; `/api/v1/...` as `{"error": {"status", "code", "message", \
"param"}}`. A refusal by your own limits is a 429 with `retry-after`.

**Streams.** With `"stream": true` a generation endpoint answers `text/event-stream`: `id:` and `data:` lines \
per frame, then `data: [DONE]`. Keep-alives are comment lines (`: ping`). A failure after the stream started \
is one error frame, then `[DONE]`. A stream cut short resumes on any replica with `GET /v1/streams/{job_id}` \
and `Last-Event-ID`.
"""

#: after the dialects' own tags
_TAGS = [
    Tag(name="streams", description="Resume a stream, or fetch a detached job's answer."),
    Tag(name="usage", description="Your own usage."),
    Tag(name="health", description="Liveness and readiness, for load balancers and orchestrators (no token)."),
    Tag(name="docs", description="This document (no token); Swagger UI at `/docs`."),
]


def openapi_config(version: str, dialect_tags: Iterable[tuple[str, str]] = ()) -> OpenAPIConfig:
    """The document's frame; ``dialect_tags``: (name, description) of each dialect's operations, listed first."""
    return OpenAPIConfig(
        title="Conduit",
        version=version,
        description=_DESCRIPTION,
        path="/docs",
        render_plugins=[SwaggerPage()],
        components=Components(
            security_schemes={
                "BearerToken": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="API key (sk-conduit-...) or JWT",
                    description="`Authorization: Bearer <token>`",
                ),
                "ApiKeyHeader": SecurityScheme(
                    type="apiKey",
                    name="x-api-key",
                    security_scheme_in="header",
                    description="The same token in `x-api-key`, for SDKs that send that header.",
                ),
            },
        ),
        security=[{"BearerToken": []}, {"ApiKeyHeader": []}],
        tags=[*(Tag(name=name, description=text) for name, text in dialect_tags), *_TAGS],
    )


@dataclass
class _Raw(BaseSchemaObject):
    """A JSON Schema kept as it is (Litestar's serialiser would drop its nulls)."""

    value: dict[str, Any]

    def to_schema(self) -> dict[str, Any]:
        return self.value


def _operations(app: Litestar) -> list[type[DocumentedOperation]]:
    found: dict[type[DocumentedOperation], None] = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            operation = getattr(handler, "operation_class", None)
            if isinstance(operation, type) and issubclass(operation, DocumentedOperation):
                found[operation] = None
    return list(found)


def add_body_schemas(app: Litestar) -> None:
    """Put every documented Struct (request and response bodies) into ``components/schemas``, and keep the
    finished document's bytes for ``GET /openapi.json``."""
    operations = _operations(app)
    structs = list(dict.fromkeys(struct for operation in operations for struct in operation.structs()))
    names = [struct.__name__ for struct in structs]
    if len(set(names)) != len(names):
        raise RuntimeError(f"two documented Structs share a name: {sorted(names)}")
    _, components = msgspec.json.schema_components(structs, ref_template="#/components/schemas/{name}")
    for operation in operations:
        for refinement in operation.refinements:
            refinement.apply(components)
    schema = app.openapi_schema
    schema.components.schemas = {
        **(schema.components.schemas or {}),
        **{name: _Raw(value) for name, value in sorted(components.items())},  # type: ignore[misc]
    }
    schema.components.headers = {name: _Raw(value) for name, value in header_components().items()}  # type: ignore[misc]
    app.state[_STATE_KEY] = msgspec.json.encode(schema.to_schema())


def document(app: Litestar) -> bytes:
    """The finished document's JSON (built now if the app has not started)."""
    if _STATE_KEY not in app.state:
        add_body_schemas(app)
    built: bytes = app.state[_STATE_KEY]
    return built


_DOCUMENT = {
    "type": "object",
    "required": ["openapi", "info", "paths", "components"],
    "properties": {"openapi": {"type": "string", "pattern": "^3\\.1\\."}},
}
_ABRIDGED = {
    "abridged": {
        "openapi": "3.1.0",
        "info": {"title": "Conduit", "version": "0.1.0"},
        "paths": {
            "/healthz": {
                "get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "Alive."}}}
            }
        },
        "components": {"schemas": {}},
    }
}


@get(
    "/openapi.json",
    summary="This OpenAPI document",
    tags=["docs"],
    sync_to_thread=False,
    operation_class=documented(replies={200: Reply("This document (OpenAPI 3.1).", _DOCUMENT, _ABRIDGED)}, public=True),
)
def openapi_json(request: Request[Any, Any, Any]) -> Response[bytes]:
    return Response(document(request.app), media_type="application/json")


ROUTES: list[HTTPRouteHandler | Router] = [openapi_json, *SwaggerPage.routes()]
