"""The API's metrics, on ``GET /metrics`` in Prometheus' text format (``services.telemetry``).

``MetricsMiddleware`` counts and times every request by its route template, method, dialect and status, and
the SSE responses open now; ``first_tokens`` times a stream's first token; the limiter counts its refusals; the
error handlers count errors by whose fault they are; a scrape reads the queues' lengths and times a Redis
round trip. A route is its template (``/v1/streams/{job_id:str}``), never a raw path: the label set stays
bounded whatever clients send.
"""

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import Iterable
from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.handlers import BaseRouteHandler
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter, Gauge, Histogram

from services.telemetry.metrics import (
    CONTENT_TYPE,
    DURATION_BUCKETS,
    FAST_BUCKETS,
    OTHER,
    REGISTRY,
    Labels,
    exposition,
    operation,
)
from shared import keys
from shared.catalog import Catalog
from shared.errors import FAULTS, AuthError, ErrorCode
from shared.events import Event, Native, ReasoningDelta, TextDelta, ToolCallDelta
from shared.jobs import GenerationJob
from shared.tasks import QueueName

__all__ = [
    "ROUTES",
    "MetricsMiddleware",
    "bind_catalog",
    "count_error",
    "count_refusal",
    "first_token",
    "handler_key",
]

REQUESTS = Counter(
    "conduit_http_requests",
    "HTTP requests answered, by route template, method, dialect and status",
    ["route", "method", "dialect", "status"],
    registry=REGISTRY,
)
DURATION = Histogram(
    "conduit_http_request_duration_seconds",
    "From a request's arrival to the end of its response (a stream's whole length included)",
    ["route", "method", "dialect"],
    buckets=FAST_BUCKETS,
    registry=REGISTRY,
)
ACTIVE_STREAMS = Gauge("conduit_active_streams", "SSE responses being sent now", ["dialect"], registry=REGISTRY)
FIRST_TOKEN = Histogram(
    "gen_ai_server_time_to_first_token_seconds",
    "From a streamed request's admission to its first token on the way to the client",
    ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"],
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
REFUSALS = Counter(
    "conduit_limiter_refusals",
    "Requests refused by a limit (requests or tokens per minute, concurrent streams)",
    ["limit"],
    registry=REGISTRY,
)
RESUMES = Counter(
    "conduit_resume_requests", "Resumes of a stream (GET /v1/streams/{job}), by status", ["status"], registry=REGISTRY
)
ERRORS = Counter(
    "conduit_errors", "Error answers, by whose fault (error_type) and code", ["error_type", "code"], registry=REGISTRY
)
QUEUED = Gauge("conduit_jobs_queued", "Jobs waiting in each queue, read at each scrape", ["queue"], registry=REGISTRY)
REDIS_RTT = Histogram(
    "conduit_redis_round_trip_seconds",
    "A Redis PING's round trip, timed at each scrape",
    buckets=FAST_BUCKETS,
    registry=REGISTRY,
)

_RESUME = "/v1/streams/"
_JOB_HEADER = b"x-conduit-job-id"
access = logging.getLogger("conduit.access")
_CONTENT = (TextDelta, ReasoningDelta, ToolCallDelta, Native)
_labels: Labels | None = None


def bind_catalog(catalog: Catalog) -> None:
    """Bound the provider and model labels by ``catalog`` (the app's)."""
    global _labels  # noqa: PLW0603 - the metrics are the process's, like their registry
    _labels = Labels(catalog)


class MetricsMiddleware:
    """Wraps the router: it sees the route template Litestar found (``path_template``), and each response."""

    def __init__(self, app: ASGIApp, dialects: Iterable[tuple[str, str]], access_log: bool = False) -> None:
        self._app = app
        self._dialects = dict(dialects)  # handler_key -> dialect name
        self._access_log = access_log  # a ``conduit.access`` line per request (JSON logs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in _METHODS else OTHER
        started, status, stream = time.perf_counter(), 500, False
        dialect, job = "none", ""

        async def counted(message: Message) -> None:
            nonlocal status, stream, dialect, job
            if message["type"] == "http.response.start":
                status = message["status"]
                handler = scope.get("route_handler")
                dialect = self._dialects.get(handler_key(handler), "none") if handler is not None else "none"
                for key, value in message.get("headers", ()):
                    name = key.lower()
                    if name == b"content-type":
                        stream = value.startswith(b"text/event-stream")
                    elif name == _JOB_HEADER:
                        job = value.decode("latin-1")
                if stream:
                    ACTIVE_STREAMS.labels(dialect).inc()
            await send(message)

        try:
            await self._app(scope, receive, counted)
        finally:
            if stream:
                ACTIVE_STREAMS.labels(dialect).dec()
            route = scope.get("path_template") or "unmatched"
            elapsed = time.perf_counter() - started
            REQUESTS.labels(route, method, dialect, str(status)).inc()
            DURATION.labels(route, method, dialect).observe(elapsed)
            if route.startswith(_RESUME):
                RESUMES.labels(str(status)).inc()
            if self._access_log:
                fields = {"route": route, "method": method, "status": status, "dialect": dialect}
                request_id = (scope.get("state") or {}).get("request_id", "")
                fields |= {"request_id": request_id, "job_id": job, "duration_ms": round(elapsed * 1000, 1)}
                access.info("%s %s %d", method, route, status, extra=fields)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def handler_key(handler: BaseRouteHandler) -> str:
    """What names a route handler across Litestar's copies of it: its function."""
    fn = getattr(handler, "fn", None)
    return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', '')}"


def first_token(event: Event | None, job: GenerationJob) -> bool:
    """Whether ``event`` is content (a streamed job's first one: its time since the admission is observed)."""
    if not isinstance(event, _CONTENT):
        return False
    provider = _labels.provider(job, job.provider) if _labels is not None else OTHER
    model = _labels.model(job, job.provider, job.model) if _labels is not None else OTHER
    FIRST_TOKEN.labels(operation(job), provider, model).observe(max(0.0, time.time() - job.created))
    return True


def count_refusal(limit: str) -> None:
    """A 429 of ``limit``, one of the limiter's own names (``requests``, ``tokens``, ``streams``)."""
    REFUSALS.labels(limit).inc()


def count_error(code: ErrorCode) -> None:
    ERRORS.labels(FAULTS[code], code.value).inc()


async def _sample(state: State) -> None:
    """What a scrape reads now: each queue's jobs not yet taken by a worker, and a Redis round trip."""
    redis = state.redis
    async with asyncio.timeout(1.0):
        started = time.perf_counter()
        await redis.ping()
        REDIS_RTT.observe(time.perf_counter() - started)
        async with redis.pipeline(transaction=False) as pipe:
            for queue in QueueName:
                pipe.zcard(keys.pending(queue))
            lengths = await pipe.execute()
    for queue, length in zip(QueueName, lengths, strict=True):
        QUEUED.labels(queue.value).set(length)


@get("/metrics", include_in_schema=False)
async def metrics(request: Request[Any, Any, State]) -> Response[bytes]:
    """Prometheus' scrape; with ``CONDUIT_METRICS_TOKEN`` set, only with ``Authorization: Bearer <it>``."""
    state = request.app.state
    token = state.settings.metrics_token
    given = request.headers.get("authorization", "")
    if token and not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise AuthError("the metrics need the bearer token CONDUIT_METRICS_TOKEN names", code=ErrorCode.AUTHENTICATION)
    with contextlib.suppress(Exception):  # Redis away: the gauges keep their last values, the scrape answers
        await _sample(state)
    return Response(exposition(), media_type=CONTENT_TYPE)


ROUTES = [metrics]
