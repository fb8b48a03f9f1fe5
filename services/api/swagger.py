"""Swagger UI at ``/docs``, with every asset served by the gateway itself (no CDN: it works offline).

The page loads the vendored ``swagger-ui-dist`` files (``static/swagger-ui/``, see its README) and our
initializer (``static/docs/swagger-init.js``) from ``/docs/assets/``, and the document from
``/openapi.json``. Its Content-Security-Policy allows nothing from anywhere else. No token is needed.
"""

import html
from pathlib import Path
from typing import Any

from litestar import Request
from litestar.datastructures import CacheControlHeader
from litestar.enums import MediaType
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router

__all__ = ["ASSETS_PATH", "SWAGGER_UI_VERSION", "SwaggerPage"]

SWAGGER_UI_VERSION = "5.35.0"
ASSETS_PATH = "/docs/assets"
_STATIC = Path(__file__).resolve().parent / "static"
#: where the assets come from: the vendored package first, then our own files
DIRECTORIES = [_STATIC / "swagger-ui", _STATIC / "docs"]
#: a day; the page's asset URLs carry the Swagger UI and gateway versions, so an upgrade is not served stale
_CACHE = CacheControlHeader(public=True, max_age=86400)
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self' data:; base-uri 'none'; form-action 'self'"
)

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<title>{title}</title>
<link rel="icon" type="image/png" sizes="32x32" href="{assets}/favicon-32x32.png?v={version}">
<link rel="icon" type="image/png" sizes="16x16" href="{assets}/favicon-16x16.png?v={version}">
<link rel="stylesheet" href="{assets}/swagger-ui.css?v={version}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js?v={version}"></script>
<script src="{assets}/swagger-init.js?v={version}" data-openapi-url="{root}/openapi.json"></script>
</body>
</html>
"""


class SwaggerPage(OpenAPIRenderPlugin):
    """The ``/docs`` page (Litestar's OpenAPI router serves it at its root)."""

    def __init__(self) -> None:
        super().__init__(path="/", media_type=MediaType.HTML, favicon="", style="")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        root = request.scope.get("root_path", "").rstrip("/")  # the gateway mounted under a prefix
        info = openapi_schema["info"]
        return _PAGE.format(
            csp=_CSP,
            title=html.escape(f"{info['title']} API"),
            assets=html.escape(root + ASSETS_PATH),
            version=html.escape(f"{SWAGGER_UI_VERSION}-{info['version']}"),
            root=html.escape(root),
        ).encode()

    @staticmethod
    def routes() -> list[Router]:
        """The route serving the page's assets (GET and HEAD, cacheable, no token)."""
        return [create_static_files_router(ASSETS_PATH, directories=list(DIRECTORIES), cache_control=_CACHE)]
