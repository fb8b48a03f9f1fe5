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

import httpx

from services.worker.http_connection import DEFAULT_PORTS, MAX_BUFFER, Connection, Key

__all__ = ["MAX_BUFFER", "LeanTransport"]


class _Body(httpx.AsyncByteStream):
    """A response body; closing it gives the connection back to the pool (or closes it)."""

    def __init__(self, transport: "LeanTransport", connection: Connection, read_timeout: float | None) -> None:
        self._transport = transport
        self._connection: Connection | None = connection
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
        self._idle: dict[Key, list[Connection]] = {}
        self._idle_count = 0
        self._open = 0  # connections counted against max_connections: in use, idle or being opened
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        url = request.url
        scheme = url.scheme
        if scheme not in DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {scheme!r}")
        key = (scheme, url.host, url.port or DEFAULT_PORTS[scheme])
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

    async def _acquire(self, key: Key, timeouts: dict[str, float | None]) -> Connection:
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

    async def _address(self, key: Key, timeout: float | None) -> str:
        """Where a new connection for ``key`` goes: its host, resolved by the loop (a transport that must check
        the address it connects to resolves it itself)."""
        return key[1]

    async def _connect(self, key: Key, timeout: float | None) -> Connection:
        scheme, host, port = key
        address = await self._address(key, timeout)
        tls = self._tls() if scheme == "https" else None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, connection = await loop.create_connection(
                    lambda: Connection(key), address, port, ssl=tls, server_hostname=host if tls else None
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

    def _pop_any_idle(self) -> Connection:
        for stack in self._idle.values():
            if stack:
                self._idle_count -= 1
                return stack.pop(0)  # the least recently used
        raise RuntimeError("no idle connection")  # callers check _idle_count first

    def release(self, connection: Connection) -> None:
        """Take back a connection whose response is closed: keep it idle if it can be reused, else close it."""
        if connection.finished() and not connection.closed and self._idle_count < self._max_idle:
            connection.idle_since = time.monotonic()
            self._idle.setdefault(connection.key, []).append(connection)
            self._idle_count += 1
            self._wake()
        else:
            self._discard(connection)

    def _discard(self, connection: Connection) -> None:
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
