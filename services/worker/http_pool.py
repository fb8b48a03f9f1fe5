"""The worker's lean HTTP/1.1 transport for httpx (the client on top: ``http_client.py``).

httpx builds the requests, applies timeouts and maps nothing else; what carries the bytes is ``LeanTransport``
(an ``httpx.AsyncBaseTransport``), not httpcore. Profiles of a busy worker showed httpcore's machinery as the
largest cost in it: its pool re-scanned every connection twice per request (quadratic in open connections),
and each chunk of a streamed body went through h11, an anyio cancel scope and half a dozen async generator
layers, about 35 µs per streamed token. Here:

- A connection is an ``asyncio.Protocol`` parsing responses with ``httptools`` (llhttp, in C). Body bytes
  collect in a buffer as they arrive; a reader takes everything buffered at once, so a burst of tokens
  is one trip up the stack, not one per chunk. Reading pauses the socket beyond ``MAX_BUFFER`` bytes.
- The pool keeps, per origin, a stack of idle connections: a request takes the most recently used one (one
  the server closed while it idled is already marked closed by the loop, and skipped), or opens a new one
  while fewer than ``max_connections`` are open, or closes an idle connection to another origin to make
  room, or waits, up to the pool timeout, for one to come back. A response whose body was read to its end
  on a keep-alive connection puts the connection back when closed; any other is closed. One event loop,
  no locks.
- Errors are httpx's own: ``ConnectError``/``ConnectTimeout``, ``ReadTimeout``, ``WriteTimeout``,
  ``PoolTimeout``, ``ReadError`` (reset) and ``RemoteProtocolError`` (bad HTTP, or the connection closed
  before the body was complete).

HTTP/1.1 only, no proxies (the worker's client never used either: ``trust_env`` is off), TLS through the
loop with httpx's default context (certifi, SNI, hostname check).
"""

import asyncio
import collections
import contextlib
import ssl
import sys
import time
from collections.abc import AsyncIterator

import httptools
import httpx

__all__ = ["MAX_BUFFER", "LeanTransport"]

MAX_BUFFER = 256 * 1024  # body bytes buffered before the socket is paused
_Key = tuple[str, str, int]
_DEFAULT_PORTS = {"http": 80, "https": 443}
_NO_BODY_STATUSES = {204, 304}


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, its response parsed as bytes arrive."""

    def __init__(self, key: _Key) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._can_write: asyncio.Future[None] | None = None
        self._reset_exchange()

    def _reset_exchange(self) -> None:
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self._until_eof = False  # no length and not chunked: the body ends when the connection does
        self._head = False
        self._body: list[bytes] = []
        self._buffered = 0
        self._error: httpx.TransportError | None = None
        self._busy = False

    # -- asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self._busy or self.complete:  # bytes nobody asked for: the connection cannot be reused
            self._fail(httpx.RemoteProtocolError("received data outside of a response"))
            self._close_transport()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("unexpected protocol upgrade"))
            self._close_transport()
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed HTTP response: {exc}"))
            self._close_transport()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._busy and not self.complete:
            if self.headers_done and self._until_eof and exc is None:
                self.complete = True
            elif exc is not None and not isinstance(exc, httpx.TransportError):
                self._fail(httpx.ReadError(f"the connection broke: {exc}"))
            else:
                self._fail(httpx.RemoteProtocolError("the server closed the connection before the response ended"))
        self._wake()
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_exception(httpx.WriteError("the connection closed"))

    def pause_writing(self) -> None:
        self._can_write = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)
        self._can_write = None

    # -- httptools callbacks ------------------------------------------------------------------------

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # noqa: PLR2004 - an interim response (100 Continue): the real one follows
            self.reason, self.headers = b"", []
            return
        self.status = status
        self.keep_alive = self._parser.should_keep_alive()
        framed = any(name.lower() in {b"content-length", b"transfer-encoding"} for name, _ in self.headers)
        self._until_eof = not framed and status not in _NO_BODY_STATUSES
        self.headers_done = True
        if self._head:  # a HEAD response has no body whatever its headers say
            self.complete = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered > MAX_BUFFER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.headers_done:
            self.complete = True
            self._wake()

    # -- used by the transport ----------------------------------------------------------------------

    def _fail(self, error: httpx.TransportError) -> None:
        if self._error is None:
            self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _close_transport(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def reusable(self, expiry: float | None) -> bool:
        if self.closed or self.transport is None or self.transport.is_closing():
            return False
        return expiry is None or time.monotonic() - self.idle_since < expiry

    async def _wait(self, timeout: float | None, error: type[httpx.TimeoutException], what: str) -> None:
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        except TimeoutError:
            raise error(f"no {what} within {timeout:g} s") from None
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    async def send(self, request: httpx.Request, body: bytes, timeouts: dict[str, float | None]) -> None:
        """Write ``request`` and wait for its response's headers."""
        self._reset_exchange()
        self._busy = True
        self._head = request.method == "HEAD"
        transport = self.transport
        if transport is None or self.closed:
            raise httpx.RemoteProtocolError("the connection is closed")
        target = request.url.raw_path or b"/"
        lines = [request.method.encode(), b" ", target, b" HTTP/1.1\r\n"]
        for name, value in request.headers.raw:
            lines += (name, b": ", value, b"\r\n")
        lines.append(b"\r\n")
        transport.write(b"".join(lines) + body)
        if self._can_write is not None:
            try:
                async with asyncio.timeout(timeouts.get("write")):
                    await self._can_write
            except TimeoutError:
                raise httpx.WriteTimeout("the request could not be written in time") from None
        while not self.headers_done:
            if self._error is not None:
                raise self._error
            await self._wait(timeouts.get("read"), httpx.ReadTimeout, "response")

    async def read(self, timeout: float | None) -> bytes:
        """Whatever body bytes are buffered (waiting for some); ``b""`` at the end of the body."""
        while True:
            if self._body:
                data = b"".join(self._body) if len(self._body) > 1 else self._body[0]
                self._body.clear()
                self._buffered = 0
                if self._paused and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
                return data
            if self._error is not None:
                raise self._error
            if self.complete:
                return b""
            await self._wait(timeout, httpx.ReadTimeout, "data")

    def finished(self) -> bool:
        """The exchange ended cleanly and the server lets the connection be reused."""
        self._busy = False
        return self.complete and self.keep_alive and self._error is None and not self._body and not self._head


def _expire(waiter: "asyncio.Future[None]") -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Body(httpx.AsyncByteStream):
    """A response body; closing it gives the connection back to the pool (or closes it)."""

    def __init__(self, transport: "LeanTransport", connection: _Connection, read_timeout: float | None) -> None:
        self._transport = transport
        self._connection: _Connection | None = connection
        self._timeout = read_timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            raise httpx.StreamClosed()
        while chunk := await connection.read(self._timeout):
            yield chunk

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._transport.release(connection)


class LeanTransport(httpx.AsyncBaseTransport):
    def __init__(self, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None) -> None:
        unlimited = sys.maxsize  # httpx's None
        self._max = unlimited if limits.max_connections is None else limits.max_connections
        self._max_idle = unlimited if limits.max_keepalive_connections is None else limits.max_keepalive_connections
        self._expiry = limits.keepalive_expiry
        self._ssl_context = ssl_context
        self._idle: dict[_Key, list[_Connection]] = {}
        self._idle_count = 0
        self._open = 0  # connections counted against max_connections: in use, idle or being opened
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        url = request.url
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        key = (scheme, url.host, url.port or _DEFAULT_PORTS[scheme])
        body = await request.aread()
        if request.headers.get("transfer-encoding", "").lower() == "chunked":
            body = (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
        connection = await self._acquire(key, timeouts)
        try:
            await connection.send(request, body, timeouts)
        except BaseException:
            connection.finished()
            self._discard(connection)
            raise
        return httpx.Response(
            connection.status,
            headers=connection.headers,
            stream=_Body(self, connection, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": connection.reason.strip()},
        )

    async def _acquire(self, key: _Key, timeouts: dict[str, float | None]) -> _Connection:
        while True:
            stack = self._idle.get(key)
            while stack:
                connection = stack.pop()
                self._idle_count -= 1
                if connection.reusable(self._expiry):
                    return connection
                self._discard(connection)  # keep-alive ran out, or the server closed it while idle
            if self._open < self._max:
                self._open += 1
                try:
                    return await self._connect(key, timeouts.get("connect"))
                except BaseException:
                    self._open -= 1
                    self._wake()
                    raise
            if self._idle_count:  # full, but an idle connection to another origin can make room
                self._discard(self._pop_any_idle())
                continue
            await self._wait_for_room(timeouts.get("pool"))

    async def _connect(self, key: _Key, timeout: float | None) -> _Connection:
        scheme, host, port = key
        tls = self._tls() if scheme == "https" else None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(key), host, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"could not connect within {timeout:g} s") from None
        except OSError as exc:
            raise httpx.ConnectError(f"could not connect: {exc}") from exc
        return connection

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()  # certifi's roots; built once, it is not cheap
        return self._ssl_context

    async def _wait_for_room(self, timeout: float | None) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        woken = False
        try:
            async with asyncio.timeout(timeout):
                await waiter
            woken = True
        except TimeoutError:
            raise httpx.PoolTimeout("no upstream connection became free in time") from None
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
            if not woken and waiter.done() and not waiter.cancelled():
                self._wake()  # woken, then cancelled or timed out: pass the turn on

    def _pop_any_idle(self) -> _Connection:
        for stack in self._idle.values():
            if stack:
                self._idle_count -= 1
                return stack.pop(0)  # the least recently used
        raise RuntimeError("no idle connection")  # callers check _idle_count first

    def release(self, connection: _Connection) -> None:
        """Take back a connection whose response is closed: keep it idle if it can be reused, else close it."""
        if connection.finished() and not connection.closed and self._idle_count < self._max_idle:
            connection.idle_since = time.monotonic()
            self._idle.setdefault(connection.key, []).append(connection)
            self._idle_count += 1
            self._wake()
        else:
            self._discard(connection)

    def _discard(self, connection: _Connection) -> None:
        self._open -= 1
        connection._close_transport()
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        stacks, self._idle = self._idle, {}
        self._idle_count = 0
        for stack in stacks.values():
            for connection in stack:
                self._discard(connection)
