"""Edge middleware: request ids, and ``HEAD`` on every ``GET`` route.

``RequestIdMiddleware`` takes ``x-request-id`` (if sane) or makes one, keeps it in the scope and echoes it on
the response. ``HeadMiddleware`` runs a ``HEAD`` request as the ``GET`` it asks about and sends the client
that response's status and headers only; it wraps the app's whole ASGI handler, because Litestar routes on
the method before its own middleware runs (a ``HEAD`` would be a 405 there).
"""

import re
import uuid

import anyio
import anyio.lowlevel
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

from services.telemetry.logs import REQUEST_ID

__all__ = ["HeadMiddleware", "RequestIdMiddleware", "add_vary", "header_value"]

_SANE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

Headers = list[tuple[bytes, bytes]]


def header_value(scope: Scope, name: bytes) -> str | None:
    """The first value of request header ``name`` (lower case), or None."""
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), None)


def add_vary(headers: Headers, name: bytes) -> Headers:
    """``headers`` with ``name`` in their one ``Vary`` header (merged with what is there)."""
    values = [
        token.strip()
        for key, value in headers
        if key.lower() == b"vary"
        for token in value.split(b",")
        if token.strip()
    ]
    if b"*" in values or name.lower() in (value.lower() for value in values):
        return headers
    return [*(h for h in headers if h[0].lower() != b"vary"), (b"vary", b", ".join([*values, name]))]


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        given = header_value(scope, b"x-request-id") or ""
        request_id = given if _SANE.match(given) else f"req_{uuid.uuid4().hex}"
        scope.setdefault("state", {})["request_id"] = request_id
        REQUEST_ID.set(request_id)  # the request's log lines name it
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"x-request-id"]
                message["headers"] = [*headers, header]
            await send(message)

        await self.app(scope, receive, send_with_id)


class HeadMiddleware:
    """``HEAD`` is the ``GET`` of the same URL, cut once its status and headers are out.

    The cut is a cancellation at the response's start, before its body is produced: a handler's work up to
    its response happens (auth, the lookups its status depends on) but no body does, so a ``HEAD`` on
    ``GET /v1/streams/{job}`` never starts the relay that a ``GET`` would run, and a response's background
    task does not run either. The server (uvicorn) knows the request was a ``HEAD`` and sends no body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        as_get: HTTPScope = {**scope, "method": "GET"}
        started = False
        with anyio.CancelScope() as cut:

            async def send_head(message: Message) -> None:
                nonlocal started
                if started or message["type"] != "http.response.start":
                    return
                started = True
                await send(message)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                cut.cancel()
                await anyio.lowlevel.checkpoint()  # the cancellation lands here, in the app's call to send

            await self.app(as_get, receive, send_head)
