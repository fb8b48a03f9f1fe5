"""The API's span of each request (installed only when tracing is on: ``services.telemetry.traces``).

A ``SERVER`` span named ``{method} {route template}``, a child of the client's ``traceparent`` if it sent one,
current while the handler runs (so the job it starts carries it to the worker: ``GenerationJob.trace``) and
ended with the response, a stream's whole length included.
"""

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer, use_span

from services.telemetry.traces import parent_context

__all__ = ["TracingMiddleware"]

_PROPAGATED = (b"traceparent", b"tracestate")


class TracingMiddleware:
    """Wraps the router, as ``MetricsMiddleware`` does: the route template is known when the response starts."""

    def __init__(self, app: ASGIApp, tracer: Tracer) -> None:
        self._app = app
        self._tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return
        method = scope["method"]
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in _PROPAGATED}
        span = self._tracer.start_span(
            method,
            context=parent_context(carrier),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.scheme": scope.get("scheme", "http")},
        )
        status = 500

        async def traced(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            with use_span(span, end_on_exit=False, record_exception=True):
                await self._app(scope, receive, traced)
        finally:
            route = scope.get("path_template") or ""
            if route:
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
            span.set_attribute("http.response.status_code", status)
            request_id = (scope.get("state") or {}).get("request_id")
            if request_id:
                span.set_attribute("conduit.request_id", request_id)
            if status >= 500:  # noqa: PLR2004 - a server error; a 4xx is the client's (the semantic conventions)
                span.set_status(Status(StatusCode.ERROR))
            span.end()
