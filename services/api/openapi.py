"""The OpenAPI document and Swagger UI at ``/docs``; request bodies come from the dialects' msgspec Structs.

Generation handlers decode their bodies themselves (strictly), so Litestar cannot see the body type;
``documented_body(T)`` gives a handler an ``operation_class`` that adds ``T``'s schema to the operation.
"""

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Litestar, Request, get
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, OpenAPIMediaType, Operation, Reference, RequestBody, SecurityScheme

__all__ = ["ROUTES", "add_body_schemas", "documented_body", "openapi_config"]

_BODIES: list[type] = []


def documented_body(body_type: type) -> type[Operation]:
    _BODIES.append(body_type)

    @dataclass
    class _WithBody(Operation):
        def __post_init__(self) -> None:
            reference = Reference(ref=f"#/components/schemas/{body_type.__name__}")
            self.request_body = RequestBody(
                content={"application/json": OpenAPIMediaType(schema=reference)}, required=True
            )

    return _WithBody


def add_body_schemas(app: Litestar) -> None:
    """Put the documented bodies' schemas into the generated document (Litestar rebuilds ``components``)."""
    _, components = msgspec.json.schema_components(_BODIES, ref_template="#/components/schemas/{name}")
    schema = app.openapi_schema
    # plain JSON Schema dicts serialise as they are
    schema.components.schemas = {**(schema.components.schemas or {}), **components}


def openapi_config(version: str) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Conduit",
        version=version,
        description="An LLM gateway: OpenAI-compatible and simple AI endpoints over one authenticated API.",
        path="/docs",
        render_plugins=[SwaggerRenderPlugin(path="/")],
        components=Components(
            security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")},
        ),
        security=[{"BearerToken": []}],
    )


@get("/openapi.json", include_in_schema=False, sync_to_thread=False)
def openapi_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = request.app.openapi_schema.to_schema()
    return schema


ROUTES = [openapi_json]
