"""``create_app(settings)``: the Litestar edge with its explicit handler and middleware lists."""

import logging
import os
from pathlib import Path

from litestar import Litestar
from litestar.datastructures import State

from services.api import health, openapi, streams
from services.api.auth.tokens import TokenVerifier
from services.api.dialects.ai import errors as ai_errors
from services.api.dialects.ai import routes as ai_routes
from services.api.dialects.openai import errors as openai_errors
from services.api.dialects.openai import routes as openai_routes
from services.api.errors import exception_handlers
from services.api.lifespan import lifespan
from services.api.middleware import RequestIdMiddleware
from services.api.relay.events import Drain
from services.api.settings import ApiSettings
from shared.catalog import DEFAULT_CATALOG_PATH, load_catalog
from shared.config import SettingsError, load_settings

__all__ = ["create_app", "create_app_from_environ"]

VERSION = "0.1.0"


def create_app(settings: ApiSettings) -> Litestar:
    if not settings.jwt_secret:
        raise SettingsError("CONDUIT_JWT_SECRET: required (the HS256 secret that signs bearer tokens)")
    catalog = load_catalog(Path(settings.catalog_path) if settings.catalog_path else DEFAULT_CATALOG_PATH)
    return Litestar(
        route_handlers=[*openai_routes.ROUTES, *ai_routes.ROUTES, *streams.ROUTES, *health.ROUTES, *openapi.ROUTES],
        middleware=[RequestIdMiddleware],
        lifespan=[lifespan],
        on_startup=[openapi.add_body_schemas],
        exception_handlers=exception_handlers(  # type: ignore[arg-type]
            [("/api/ai/", ai_errors.render_error)], fallback=openai_errors.render_error
        ),
        openapi_config=openapi.openapi_config(VERSION),
        request_max_body_size=settings.max_body_bytes,
        state=State(
            {"settings": settings, "catalog": catalog, "drain": Drain(), "verifier": TokenVerifier(settings.jwt_secret)}
        ),
        debug=False,
    )


def create_app_from_environ() -> Litestar:
    """The ASGI app for servers that import one (``uvicorn --factory services.api.app:create_app_from_environ``)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return create_app(load_settings(ApiSettings, os.environ))
