"""``ErrorCode`` -> HTTP status (one table), and exception handlers that let each dialect draw the body.

A dialect registers a renderer for its path prefix; the handlers pick the renderer by the request path,
so a 401 from auth, a 404 from the router and a provider's 429 all come back in the endpoint's own shape.

Redis failing under any endpoint (refused, reset, silent past the pool's timeouts) is a 503 ``unavailable``,
never a 500, and every 503 tells the client when to come back (``Retry-After``).
"""

import functools
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
import redis.exceptions
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from services.api.metrics import count_error
from shared.errors import ErrorCode, GatewayError

__all__ = [
    "RETRY_UNAVAILABLE",
    "STATUS",
    "ErrorRenderer",
    "GatewayProblem",
    "exception_handlers",
    "renderer_for",
    "status_for",
]

log = logging.getLogger("conduit.api")

STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.AUTHENTICATION: 401,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.MODEL_NOT_FOUND: 404,
    ErrorCode.PROVIDER_NOT_CONFIGURED: 400,
    ErrorCode.UPSTREAM_NOT_ALLOWED: 400,
    ErrorCode.UNSUPPORTED_PARAMETER: 400,
    ErrorCode.REQUEST_TOO_LARGE: 413,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UPSTREAM_BAD_REQUEST: 400,
    ErrorCode.UPSTREAM_AUTH: 502,  # the gateway's provider credentials were refused: not the client's fault
    ErrorCode.UPSTREAM_PERMISSION: 502,
    ErrorCode.UPSTREAM_NOT_FOUND: 404,
    ErrorCode.UPSTREAM_RATE_LIMITED: 429,
    ErrorCode.UPSTREAM_OVERLOADED: 503,
    ErrorCode.UPSTREAM_ERROR: 502,
    ErrorCode.UPSTREAM_TIMEOUT: 504,
    ErrorCode.UPSTREAM_CONNECTION: 502,
    ErrorCode.UPSTREAM_INCOMPLETE: 502,
    ErrorCode.NO_WORKER: 503,
    ErrorCode.WORKER_LOST: 502,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.CANCELLED: 499,
    ErrorCode.INTERNAL: 500,
}

#: ``Retry-After`` (seconds) of a 503 that names no time of its own: Redis or the workers are away, for a
#: restart or a failover (a few seconds)
RETRY_UNAVAILABLE = 2
LOST_REDIS = "the gateway cannot reach Redis; try again shortly"

_BY_STATUS: dict[int, ErrorCode] = {
    400: ErrorCode.INVALID_REQUEST,
    401: ErrorCode.AUTHENTICATION,
    403: ErrorCode.PERMISSION_DENIED,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.INVALID_REQUEST,
    413: ErrorCode.REQUEST_TOO_LARGE,
    429: ErrorCode.RATE_LIMITED,
    503: ErrorCode.UNAVAILABLE,
}


def status_for(code: str) -> int:
    try:
        return STATUS[ErrorCode(code)]
    except ValueError:
        return 500


class GatewayProblem(msgspec.Struct, frozen=True, kw_only=True):
    """What a renderer needs to draw an error body."""

    status: int
    code: ErrorCode
    message: str
    param: str | None = None
    retry_after: float | None = None


ErrorRenderer = Callable[[GatewayProblem], bytes]


def _invalid_parameter(exc: ValidationException) -> GatewayProblem:
    """A path, query or header parameter Litestar refused: named, with why (not the whole URL echoed back)."""
    found = exc.extra if isinstance(exc.extra, list) else []
    for item in found:
        if isinstance(item, dict) and item.get("key"):
            source = getattr(item.get("source"), "value", item.get("source")) or "request"
            key = str(item["key"])
            message = f"Invalid {source} parameter '{key}': {item.get('message', 'not valid')}"
            return GatewayProblem(status=400, code=ErrorCode.INVALID_REQUEST, message=message, param=key)
    return GatewayProblem(status=400, code=ErrorCode.INVALID_REQUEST, message=str(exc.detail)[:200])


def _problem(exc: Exception) -> GatewayProblem:
    if isinstance(exc, GatewayError):
        return GatewayProblem(
            status=STATUS.get(exc.code, 500),
            code=exc.code,
            message=exc.message,
            param=exc.param,
            retry_after=exc.retry_after,
        )
    if isinstance(exc, redis.exceptions.RedisError):
        log.warning("Redis failed under a request: %r", exc)
        return GatewayProblem(status=503, code=ErrorCode.UNAVAILABLE, message=LOST_REDIS)
    if isinstance(exc, ValidationException):
        return _invalid_parameter(exc)
    if isinstance(exc, HTTPException):
        code = _BY_STATUS.get(exc.status_code, ErrorCode.INVALID_REQUEST)
        return GatewayProblem(status=exc.status_code, code=code, message=str(exc.detail))
    correlation = uuid.uuid4().hex[:12]
    log.error("unhandled error (correlation id %s)", correlation, exc_info=exc)
    return GatewayProblem(status=500, code=ErrorCode.INTERNAL, message=f"internal error (correlation id {correlation})")


@functools.cache
def _pattern(prefix: str) -> re.Pattern[str]:
    return re.compile("[^/]+".join(re.escape(part) for part in prefix.split("*")))


def renderer_for(path: str, renderers: list[tuple[str, ErrorRenderer]], fallback: ErrorRenderer) -> ErrorRenderer:
    """The renderer of the first prefix ``path`` starts with (a ``*`` in a prefix stands for one path segment)."""
    for prefix, render in renderers:
        if path.startswith(prefix) if "*" not in prefix else _pattern(prefix).match(path):
            return render
    return fallback


def exception_handlers(
    renderers: list[tuple[str, ErrorRenderer]], fallback: ErrorRenderer
) -> dict[type[Exception], Callable[[Request[Any, Any, Any], Exception], Response[bytes]]]:
    """Handlers for every exception, each drawing the body with the renderer of the request's prefix."""

    def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
        problem = _problem(exc)
        count_error(problem.code)
        render = renderer_for(request.url.path, renderers, fallback)
        headers: dict[str, str] = {}  # x-request-id comes from RequestIdMiddleware, on every response
        if problem.retry_after is not None:
            headers["retry-after"] = str(max(1, round(problem.retry_after)))
        elif problem.status == 503:  # noqa: PLR2004
            headers["retry-after"] = str(RETRY_UNAVAILABLE)
        if isinstance(exc, HTTPException) and exc.headers:
            headers.update(exc.headers)
        if isinstance(exc, GatewayError):
            headers.update(exc.headers)
        return Response(render(problem), status_code=problem.status, media_type="application/json", headers=headers)

    return {Exception: handle, HTTPException: handle, GatewayError: handle}
