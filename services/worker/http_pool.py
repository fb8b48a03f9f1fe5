"""The worker's httpx client, on a connection pool whose cost per request does not grow with its size.

httpcore 1.0.9's ``AsyncConnectionPool`` re-scans every connection twice per request (when the request is
queued and when its response closes), counts all connections once per idle one (quadratic), and polls the
socket of every idle connection. With a few hundred streams open, a third of a busy worker's time went to
that bookkeeping, and 500 concurrent jobs cost 4 ms each instead of 1.

``LeanPool`` keeps, per origin, a stack of idle ``httpcore.AsyncHTTPConnection`` objects: a request pops
the most recently used one (polling only that socket, to skip one the server closed while it idled), or
opens a new connection while fewer than ``max_connections`` are open, or closes an idle connection to
another origin to make room, or waits (up to the pool timeout) for a connection to come back. When a
response is closed its connection goes back on the stack if it is reusable and fewer than
``max_keepalive_connections`` are idle, and is closed otherwise. Everything runs on the worker's one event
loop, so no locks. httpx still builds the requests and maps errors (``httpcore.PoolTimeout`` becomes
``httpx.PoolTimeout`` as usual).
"""

import collections
import contextlib
import ssl
import sys
from collections.abc import AsyncIterator

import anyio
import httpcore
import httpx

__all__ = ["LeanPool", "upstream_client"]

_Key = tuple[bytes, bytes, int]


def _key(origin: httpcore.Origin) -> _Key:
    return origin.scheme, origin.host, origin.port  # Origin itself is not hashable


class _Released:
    """A response body that hands its connection back to the pool when closed."""

    def __init__(self, stream: object, pool: "LeanPool", connection: httpcore.AsyncHTTPConnection) -> None:
        self._stream = stream
        self._pool = pool
        self._connection: httpcore.AsyncHTTPConnection | None = connection

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._stream.__aiter__()  # type: ignore[attr-defined, no-any-return]  # no extra layer per chunk

    async def aclose(self) -> None:
        try:
            if hasattr(self._stream, "aclose"):
                await self._stream.aclose()
        finally:
            connection, self._connection = self._connection, None
            if connection is not None:
                await self._pool.release(connection)


class LeanPool:
    """Duck-types the part of ``httpcore.AsyncConnectionPool`` that ``httpx.AsyncHTTPTransport`` uses."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None,
        max_connections: int,
        max_keepalive_connections: int,
        keepalive_expiry: float | None,
    ) -> None:
        self._ssl_context = ssl_context
        self._max = max_connections
        self._max_idle = max_keepalive_connections
        self._expiry = keepalive_expiry
        self._idle: dict[_Key, list[httpcore.AsyncHTTPConnection]] = {}
        self._idle_count = 0
        self._open = 0  # connections counted against max_connections: in use, idle or being opened
        self._waiters: collections.deque[anyio.Event] = collections.deque()

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        timeouts = request.extensions.get("timeout", {})
        origin = request.url.origin
        connection = await self._acquire(origin, timeouts.get("pool"))
        try:
            response = await connection.handle_async_request(request)
        except BaseException:
            await self.release(connection)
            raise
        return httpcore.Response(
            status=response.status,
            headers=response.headers,
            content=_Released(response.stream, self, connection),
            extensions=response.extensions,
        )

    async def _acquire(self, origin: httpcore.Origin, pool_timeout: float | None) -> httpcore.AsyncHTTPConnection:
        while True:
            connection = await self._take_idle(origin)
            if connection is not None:
                return connection
            if self._open < self._max:
                self._open += 1
                return httpcore.AsyncHTTPConnection(
                    origin=origin, ssl_context=self._ssl_context, keepalive_expiry=self._expiry
                )
            if self._idle_count:  # full, but an idle connection to another origin can make room
                await self._close(self._pop_any_idle())
                continue
            waiter = anyio.Event()
            self._waiters.append(waiter)
            woken = False
            try:
                with anyio.fail_after(pool_timeout):
                    await waiter.wait()
                woken = True
            except TimeoutError:
                raise httpcore.PoolTimeout("no upstream connection became free in time") from None
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
                if waiter.is_set() and not woken:  # woken, then cancelled or timed out: pass the turn on
                    self._wake()

    async def _take_idle(self, origin: httpcore.Origin) -> httpcore.AsyncHTTPConnection | None:
        stack = self._idle.get(_key(origin))
        while stack:
            connection = stack.pop()
            self._idle_count -= 1
            if connection.is_available() and not connection.has_expired():
                return connection
            await self._close(connection)  # keep-alive ran out, or the server closed it while idle
        return None

    def _pop_any_idle(self) -> httpcore.AsyncHTTPConnection:
        for stack in self._idle.values():
            if stack:
                self._idle_count -= 1
                return stack.pop(0)  # the least recently used
        raise RuntimeError("no idle connection")  # callers check _idle_count first

    async def release(self, connection: httpcore.AsyncHTTPConnection) -> None:
        """Take back a connection whose response is closed: keep it idle if it can be reused, else close it."""
        if connection.is_idle() and not connection.is_closed() and self._idle_count < self._max_idle:
            self._idle.setdefault(_key(connection._origin), []).append(connection)
            self._idle_count += 1
            self._wake()
        else:
            await self._close(connection)

    async def _close(self, connection: httpcore.AsyncHTTPConnection) -> None:
        self._open -= 1
        self._wake()
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await connection.aclose()

    def _wake(self) -> None:
        if self._waiters:
            self._waiters.popleft().set()

    async def aclose(self) -> None:
        stacks, self._idle = self._idle, {}
        self._idle_count = 0
        for stack in stacks.values():
            for connection in stack:
                await self._close(connection)

    async def __aenter__(self) -> "LeanPool":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def upstream_client(timeout: httpx.Timeout, limits: httpx.Limits) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for provider calls: no proxies from the environment, no redirects."""
    unlimited = sys.maxsize  # httpx's None
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    standard = transport._pool
    transport._pool = LeanPool(  # type: ignore[assignment]
        ssl_context=standard._ssl_context,
        max_connections=unlimited if limits.max_connections is None else limits.max_connections,
        max_keepalive_connections=(
            unlimited if limits.max_keepalive_connections is None else limits.max_keepalive_connections
        ),
        keepalive_expiry=limits.keepalive_expiry,
    )
    return httpx.AsyncClient(timeout=timeout, transport=transport, trust_env=False, follow_redirects=False)
