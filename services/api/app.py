"""``create_app(settings)``: the Litestar edge with its explicit handler and middleware lists."""

import os
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from litestar import Litestar
from litestar.datastructures import State

from services.api import health, metrics, openapi, streams, usage
from services.api.auth.tokens import JwtConfig, TokenVerifier
from services.api.chats.personas import DEFAULT_PERSONAS_PATH, check_personas, load_personas
from services.api.compression import GzipMiddleware
from services.api.cors import CorsMiddleware, parse_origins
from services.api.dialects import registry
from services.api.errors import exception_handlers
from services.api.lifespan import lifespan
from services.api.middleware import HeadMiddleware, RequestIdMiddleware
from services.api.proxy import ProxyGate, ProxyPaths
from services.api.relay.events import Drain
from services.api.settings import ApiSettings
from services.api.tiers import DEFAULT_TIERS_PATH, load_tiers
from services.api.tracing import TracingMiddleware
from services.stores.file_stores import check_file_store
from services.telemetry.logs import configure_logging
from services.telemetry.traces import configure_tracing, tracer
from shared.catalog import DEFAULT_CATALOG_PATH, load_catalog
from shared.config import load_settings

__all__ = ["create_app", "create_app_from_environ"]

VERSION = "0.1.0"


def create_app(
    settings: ApiSettings,
    environ: Mapping[str, str] | None = None,
    collaborators: Callable[[Litestar], AbstractAsyncContextManager[None]] = lifespan,
) -> Litestar:
    """The app; a missing or malformed setting raises ``SettingsError`` (or ``CatalogError``) naming it.

    ``environ`` holds the tier policy's overrides (``CONDUIT_TIER_<TIER>_<FIELD>``). ``collaborators`` puts the
    process-wide ones on ``app.state`` for the app's life (``lifespan``: Redis-backed; in-process handler tests
    pass memory ones)."""
    jwt = JwtConfig(
        secret=settings.jwt_secret,
        public_key=settings.jwt_public_key,
        jwks=settings.jwt_jwks,
        algorithm=settings.jwt_algorithm,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    catalog = load_catalog(Path(settings.catalog_path) if settings.catalog_path else DEFAULT_CATALOG_PATH)
    tiers = load_tiers(Path(settings.tiers_path) if settings.tiers_path else DEFAULT_TIERS_PATH, environ or {})
    cors_origins = parse_origins(settings.cors_origins)
    personas_path = Path(settings.personas_path) if settings.personas_path else DEFAULT_PERSONAS_PATH
    personas = load_personas(personas_path)
    check_personas(personas, catalog, personas_path)
    check_file_store(settings, environ or {})
    app = Litestar(
        route_handlers=[
            *registry.route_handlers(),
            *streams.ROUTES,
            *usage.ROUTES,
            *health.ROUTES,
            *metrics.ROUTES,
            *openapi.ROUTES,
        ],
        middleware=[RequestIdMiddleware],
        lifespan=[collaborators],
        on_startup=[openapi.add_body_schemas],
        exception_handlers=exception_handlers(  # type: ignore[arg-type]
            registry.error_renderers(), fallback=registry.FALLBACK.render_error
        ),
        openapi_config=openapi.openapi_config(VERSION, registry.tags()),
        request_max_body_size=settings.max_body_bytes,
        state=State(
            {
                "settings": settings,
                "catalog": catalog,
                "tiers": tiers,
                "personas": personas,
                "drain": Drain(),
                "verifier": TokenVerifier(jwt),
                "proxy": ProxyGate(settings),
            }
        ),
        debug=False,
        logging_config=None,  # the process's own (``services.telemetry.logs``), text or JSON
    )
    metrics.bind_catalog(catalog)
    _wrap_before_routing(app, cors_origins)
    return app


def _wrap_before_routing(app: Litestar, cors_origins: frozenset[str]) -> None:
    """CORS, HEAD and gzip wrap the app's ASGI handler: Litestar's ``middleware`` runs only once a route matched
    the path and method, but a preflight must be answered on any path without auth, a ``HEAD`` is routed as
    ``GET``, and CORS headers belong on 404s too."""
    settings: ApiSettings = app.state.settings
    access_log = settings.log_format == "json"  # the text format keeps uvicorn's access lines
    routed = app.asgi_handler
    traces = tracer()
    if traces is not None:  # tracing on (OTEL_*): each request's span, which its job carries to the worker
        routed = TracingMiddleware(routed, traces)
    counted = metrics.MetricsMiddleware(routed, registry.handler_dialects(), access_log)  # sees the route found
    handler = ProxyPaths(HeadMiddleware(GzipMiddleware(counted)))
    app.asgi_handler = CorsMiddleware(handler, cors_origins) if cors_origins else handler


def create_app_from_environ() -> Litestar:
    """The ASGI app for servers that import one (``uvicorn --factory services.api.app:create_app_from_environ``)."""
    settings = load_settings(ApiSettings, os.environ)
    configure_logging(settings.log_format)
    configure_tracing("conduit-api", os.environ)
    return create_app(settings, os.environ)
