"""gzip for JSON (and the docs' HTML, JavaScript and CSS) when the client accepts it; never for SSE.

A whole body (one ASGI message, as every JSON answer is) is compressed when it is at least
``MINIMUM_SIZE`` bytes, with its ``Content-Length`` rewritten. A body sent in parts (a file) is compressed
part by part, each part flushed (``Z_SYNC_FLUSH``) so nothing waits in the compressor. ``text/event-stream``
is not compressible here, so streams pass through untouched, frame by frame. Responses of a compressible
type always say ``Vary: Accept-Encoding``, compressed or not.

Litestar's ``CompressionConfig`` is not used: it compresses ``text/event-stream`` as well.
"""

import gzip
import zlib

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Message, Receive, Scope, Send

from services.api.middleware import Headers, add_vary, header_value

__all__ = ["MINIMUM_SIZE", "GzipMiddleware", "accepts_gzip", "compressible"]

#: smaller bodies go as they are (gzip's header and trailer alone are 18 bytes)
MINIMUM_SIZE = 500
LEVEL = 6

_TYPES = frozenset(
    {
        "application/json",
        "application/javascript",
        "text/javascript",
        "text/css",
        "text/html",
        "text/plain",
        "image/svg+xml",
    }
)


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (``gzip``, ``x-gzip`` or ``*``, with a q above 0)."""
    gzip_q: float | None = None
    any_q: float | None = None
    for item in (accept_encoding or "").split(","):
        coding, *params = (part.strip().lower() for part in item.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if coding in {"gzip", "x-gzip"}:
            gzip_q = q
        elif coding == "*":
            any_q = q
    chosen = gzip_q if gzip_q is not None else any_q
    return chosen is not None and chosen > 0


def compressible(status: int, headers: Headers) -> bool:
    """Whether a response may be gzipped: a body of a text type (JSON, HTML, JS, CSS; not SSE), not encoded
    already, and not marked ``no-transform``."""
    if status < 200 or status in {204, 304}:  # noqa: PLR2004
        return False
    values = {key.lower(): value.decode("latin-1").lower() for key, value in headers}
    media_type = values.get(b"content-type", "").partition(";")[0].strip()
    if media_type not in _TYPES and not media_type.endswith("+json"):
        return False
    return b"content-encoding" not in values and "no-transform" not in values.get(b"cache-control", "")


def _gzip_headers(headers: Headers, length: int | None) -> Headers:
    out: Headers = []
    for key, value in headers:
        name = key.lower()
        if name == b"content-length":
            continue
        weak = b"W/" + value if name == b"etag" and not value.startswith(b"W/") else value  # no longer the same bytes
        out.append((key, weak))
    out.append((b"content-encoding", b"gzip"))
    if length is not None:
        out.append((b"content-length", str(length).encode()))
    return out


class _GzipSend:
    """The ``send`` of one response: holds its start until the first body part shows whether to compress."""

    def __init__(self, send: Send, accepted: bool, minimum_size: int) -> None:
        self._send = send
        self._accepted = accepted
        self._minimum = minimum_size
        self._start: HTTPResponseStartEvent | None = None
        self._compressor: zlib._Compress | None = None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            await self._on_start(message)
        elif message["type"] == "http.response.body" and self._compressor is not None:
            more = message.get("more_body", False)
            data = self._compressor.compress(message.get("body", b""))
            data += self._compressor.flush(zlib.Z_SYNC_FLUSH if more else zlib.Z_FINISH)
            await self._send({"type": "http.response.body", "body": data, "more_body": more})
        elif message["type"] == "http.response.body" and self._start is not None:
            start, self._start = self._start, None
            await self._on_first_body(start, message)
        else:
            if self._start is not None:  # something other than a body: send the start as it was
                start, self._start = self._start, None
                await self._send(start)
            await self._send(message)

    async def _on_start(self, message: HTTPResponseStartEvent) -> None:
        headers: Headers = list(message.get("headers", []))
        if not compressible(message["status"], headers):
            await self._send(message)
            return
        message = {**message, "headers": add_vary(headers, b"Accept-Encoding")}
        if self._accepted:
            self._start = message
        else:
            await self._send(message)

    async def _on_first_body(self, start: HTTPResponseStartEvent, message: HTTPResponseBodyEvent) -> None:
        body = message.get("body", b"")
        headers: Headers = list(start.get("headers", []))
        if message.get("more_body", False):  # a body in parts: compress as it comes
            self._compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            await self._send({**start, "headers": _gzip_headers(headers, None)})
            await self(message)
            return
        if len(body) < self._minimum:
            await self._send(start)
            await self._send(message)
            return
        packed = gzip.compress(body, compresslevel=LEVEL, mtime=0)
        await self._send({**start, "headers": _gzip_headers(headers, len(packed))})
        await self._send({"type": "http.response.body", "body": packed, "more_body": False})


class GzipMiddleware:
    def __init__(self, app: ASGIApp, minimum_size: int = MINIMUM_SIZE) -> None:
        self.app = app
        self.minimum_size = minimum_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        accepted = accepts_gzip(header_value(scope, b"accept-encoding"))
        await self.app(scope, receive, _GzipSend(send, accepted, self.minimum_size))
