"""Driving one ASGI app by hand: a scope, a receive that has no body, and a send that records messages."""

from collections.abc import Awaitable, Callable
from typing import Any

from litestar.types import ASGIApp, HTTPRequestEvent, Message, Receive, Scope, Send

Respond = Callable[[Scope, Receive, Send], Awaitable[None]]


def http_scope(method: str = "GET", path: str = "/", headers: dict[str, str] | None = None) -> Any:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def no_body() -> HTTPRequestEvent:
    return {"type": "http.request", "body": b"", "more_body": False}


async def call(app: ASGIApp, scope: Any) -> list[Any]:
    """The messages ``app`` sends for ``scope``."""
    sent: list[Any] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, no_body, send)
    return sent


def headers_of(messages: list[Any]) -> dict[str, str]:
    """The response's headers (names lower case; repeated names joined with ', ')."""
    start = next(m for m in messages if m["type"] == "http.response.start")
    out: dict[str, str] = {}
    for key, value in start.get("headers", []):
        name = key.decode().lower()
        out[name] = f"{out[name]}, {value.decode()}" if name in out else value.decode()
    return out


def body_of(messages: list[Any]) -> bytes:
    return b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")


def responder(
    status: int = 200, headers: list[tuple[bytes, bytes]] | None = None, parts: list[bytes] | None = None
) -> tuple[ASGIApp, list[Scope]]:
    """An app answering every request with ``parts`` (one body message each), and the scopes it saw."""
    seen: list[Scope] = []
    chunks = parts if parts is not None else [b"ok"]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        await send({"type": "http.response.start", "status": status, "headers": list(headers or [])})
        for index, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": index < len(chunks) - 1})

    return app, seen
