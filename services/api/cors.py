"""CORS: the origins ``CONDUIT_CORS_ORIGINS`` names may call the API from a browser page (none by default).

For an allowed ``Origin``:

- a preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is answered here with a 204, before
  routing and authentication (a browser sends no credentials with it): the origin itself, the methods, the
  request headers the API reads plus the ones the browser asks for (SDKs add their own, such as
  openai-node's ``x-stainless-*``), and how long to cache that;
- every other response, errors and streams included, carries the origin and exposes the headers a page
  needs to read: the job id, the request id, the ``x-ratelimit-*`` headers and ``Retry-After``.

Any other origin gets no CORS headers at all: its preflight is a 403, its requests are answered as if they
came from no page (the browser then keeps the answer from the page). Every response varies by ``Origin``.
Bearer tokens travel in a header, not a cookie, so credentials are not allowed.

This is an ASGI middleware around the whole app rather than Litestar's ``CORSConfig``, which adds
allow and expose headers to responses for origins it refuses.
"""

import re
from urllib.parse import urlsplit

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from services.api.caller import NAME_HEADER, POLICY_HEADER
from services.api.middleware import add_vary, header_value
from services.api.sse import JOB_HEADER
from shared.config import SettingsError

__all__ = ["ALLOW_HEADERS", "ALLOW_METHODS", "EXPOSE_HEADERS", "MAX_AGE", "CorsMiddleware", "parse_origins"]

ALLOW_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE"
#: the request headers the API reads: always allowed (with whatever else a preflight asks for)
ALLOW_HEADERS = (
    "authorization",
    "content-type",
    "x-api-key",
    "last-event-id",
    "x-request-id",
    NAME_HEADER,
    POLICY_HEADER,
)
#: the response headers a page may read (beyond the CORS-safelisted ones)
EXPOSE_HEADERS = (
    JOB_HEADER,
    "x-request-id",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
    "retry-after",
)
#: seconds a browser may reuse a preflight's answer (Chromium caps it at 7200)
MAX_AGE = 7200
ANY = "*"

_ORIGIN = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#@\s]+$")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9a-z-]+$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_EXPOSE = ", ".join(EXPOSE_HEADERS).encode()
_PREFLIGHT_VARY = b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
_REFUSAL = b"this origin may not call the API (CORS)"


def _normalise(origin: str) -> str:
    text = origin.strip().lower()
    if not _ORIGIN.match(text):
        raise SettingsError(
            f"CONDUIT_CORS_ORIGINS: {origin.strip()!r} is not an origin: write scheme://host[:port] "
            "(no path, no trailing slash), or * for any"
        )
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError as exc:
        raise SettingsError(f"CONDUIT_CORS_ORIGINS: {origin.strip()!r} has a bad port") from exc
    if port is not None and _DEFAULT_PORTS.get(parts.scheme) == port:  # browsers leave the default port out
        return f"{parts.scheme}://{parts.hostname}"
    return text


def parse_origins(text: str) -> frozenset[str]:
    """``CONDUIT_CORS_ORIGINS`` (comma-separated) -> the allowed origins as browsers write them (``*``: any).

    Raises ``SettingsError`` naming the variable for something that is not an origin."""
    return frozenset(ANY if item.strip() == ANY else _normalise(item) for item in text.split(",") if item.strip())


def _allowed_headers(requested: str | None) -> bytes:
    names = list(ALLOW_HEADERS)
    for item in (requested or "").split(","):
        name = item.strip().lower()
        if _TOKEN.match(name) and name not in names:
            names.append(name)
    return ", ".join(names).encode()


class CorsMiddleware:
    def __init__(self, app: ASGIApp, origins: frozenset[str]) -> None:
        self.app = app
        self.origins = origins

    def allows(self, origin: str) -> bool:
        return ANY in self.origins or origin in self.origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        origin = header_value(scope, b"origin")
        allowed = origin if origin is not None and self.allows(origin) else None
        if scope["method"] == "OPTIONS" and origin is not None:
            method = header_value(scope, b"access-control-request-method")
            if method is not None:
                await self._preflight(scope, send, allowed)
                return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = add_vary(list(message.get("headers", [])), b"Origin")
                if allowed is not None:
                    headers = [h for h in headers if not h[0].lower().startswith(b"access-control-")]
                    headers += [
                        (b"access-control-allow-origin", allowed.encode("latin-1")),
                        (b"access-control-expose-headers", _EXPOSE),
                    ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    @staticmethod
    async def _preflight(scope: Scope, send: Send, allowed: str | None) -> None:
        headers = [(b"vary", _PREFLIGHT_VARY)]
        if allowed is None:
            headers += [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(_REFUSAL))]
            await send({"type": "http.response.start", "status": 403, "headers": headers})
            await send({"type": "http.response.body", "body": _REFUSAL, "more_body": False})
            return
        headers += [
            (b"access-control-allow-origin", allowed.encode("latin-1")),
            (b"access-control-allow-methods", ALLOW_METHODS.encode()),
            (b"access-control-allow-headers", _allowed_headers(header_value(scope, b"access-control-request-headers"))),
            (b"access-control-max-age", str(MAX_AGE).encode()),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
