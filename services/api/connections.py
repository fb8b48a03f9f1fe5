"""Connection limits for the HTTP server: read deadlines, an idle keep-alive timeout and a connection cap.

uvicorn alone holds a connection that sends nothing open forever (its keep-alive timeout starts only after a
first response), and a request whose headers or body arrive a byte at a time as long as the bytes keep
coming (slowloris). Its ``limit_concurrency`` counts such connections too, and answers every *other*
client 503 once they fill it. So the protocol here adds, per connection:

- a **header deadline**: the request line and headers must be complete ``header_timeout`` seconds after the
  connection opened or the previous response ended; a connection that sent nothing is closed, one with a
  partial request gets a 408 first;
- a **body deadline**: the whole body must be in ``body_timeout`` seconds after its headers (time when the
  server itself stopped reading, to let the app catch up, does not count); then a 408 (if the app has not
  answered yet) and the connection closes, and the app reads ``http.disconnect``;
- the **idle keep-alive timeout** between requests (uvicorn's own timer, with a float setting);
- a **connection cap**: a connection beyond ``max_connections`` is answered 503 (``Retry-After: 1``) and
  closed at once, before it holds a file descriptor for long.
"""

import asyncio
import logging
import resource
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, ClassVar, NamedTuple

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from services.api.dialects.openai.errors import error_object
from services.api.settings import ApiSettings
from services.api.wire import encode_json
from shared.errors import ErrorCode

__all__ = ["ConnectionLimits", "connection_limits", "limited_protocol"]

log = logging.getLogger("conduit.api")

#: file descriptors kept for what is not a client connection (Redis pools, the broker, logs, the catalog)
FD_RESERVE = 256


class ConnectionLimits(NamedTuple):
    header_timeout: float
    body_timeout: float
    keep_alive_timeout: float
    max_connections: int


def _response(status: HTTPStatus, code: str, message: str, extra: bytes = b"") -> bytes:
    """A whole response, in the OpenAI error shape (the path, and so the dialect, is not known here)."""
    body = encode_json({"error": error_object(status, code, message)})
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % (
        status,
        status.phrase.encode(),
        len(body),
    )
    return head + extra + b"connection: close\r\n\r\n" + body


_HEADERS_LATE = _response(HTTPStatus.REQUEST_TIMEOUT, "request_timeout", "The request headers did not arrive in time.")
_BODY_LATE = _response(HTTPStatus.REQUEST_TIMEOUT, "request_timeout", "The request body did not arrive in time.")
_TOO_MANY = _response(
    HTTPStatus.SERVICE_UNAVAILABLE,
    ErrorCode.UNAVAILABLE,
    "The server has too many open connections; retry shortly.",
    b"retry-after: 1\r\n",
)


_warned_at = 0.0


def _warn_full(cap: int) -> None:
    global _warned_at  # noqa: PLW0603 - one warning per process every 10 s, whichever connection hits the cap
    now = time.monotonic()
    if now - _warned_at >= 10.0:  # noqa: PLR2004
        _warned_at = now
        log.warning("refusing connections: %d are open (CONDUIT_MAX_CONNECTIONS)", cap)


class _LimitedProtocol(HttpToolsProtocol):
    limits: ClassVar[ConnectionLimits]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout_keep_alive = self.limits.keep_alive_timeout  # type: ignore[assignment]  # a float works
        self._deadline: asyncio.TimerHandle | None = None
        self._began = False  # a byte of the awaited request has arrived

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            _warn_full(self.limits.max_connections)
            transport.write(_TOO_MANY)
            transport.close()
            return
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._began = True
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        self._arm(self.limits.body_timeout, self._body_late)  # disarmed when the message is complete

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._await_headers()

    def _await_headers(self) -> None:
        self._began = False
        self._arm(self.limits.header_timeout, self._headers_late)

    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_late(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._began:  # a partial request; a connection that sent nothing is just closed
            self.transport.write(_HEADERS_LATE)
        self.transport.close()

    def _body_late(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:  # the server stopped reading (the app is behind): not the client's delay
            self._arm(self.limits.body_timeout, self._body_late)
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            self.transport.write(_BODY_LATE)
        if cycle is not None:  # the app reads http.disconnect, and what it sends is dropped
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()


def limited_protocol(
    limits: ConnectionLimits, base: type[HttpToolsProtocol] = HttpToolsProtocol
) -> type[HttpToolsProtocol]:
    """``base`` (uvicorn's httptools protocol or a subclass of it) with ``limits``, for ``uvicorn.Config(http=...)``."""
    return type("LimitedHttpToolsProtocol", (_LimitedProtocol, base), {"limits": limits})


def connection_limits(settings: ApiSettings) -> ConnectionLimits:
    """The server's connection limits; the connection cap fits the file-descriptor limit, whose soft value is
    raised (up to the hard one) to make room for it first."""
    wanted = settings.max_connections + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    cap = settings.max_connections
    if soft != resource.RLIM_INFINITY and soft < wanted:
        cap = max(1, soft - FD_RESERVE)
        log.warning(
            "max_connections lowered from %d to %d to fit the file-descriptor limit (%d)",
            wanted - FD_RESERVE,
            cap,
            soft,
        )
    return ConnectionLimits(
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        keep_alive_timeout=settings.keep_alive_timeout,
        max_connections=cap,
    )
