"""A minimal keep-alive HTTP/1.1 client for sequential timed requests (asyncio + httptools, like ``load.py``):
one request in flight per connection, the whole body returned, the time from the request's first byte
written to the response's last byte read.

It costs far less per request than a general client would, so a few-millisecond figure is the server's,
not the client's.
"""

import asyncio
import time
from dataclasses import dataclass, field
from typing import cast

import httptools

__all__ = ["Connection", "Reply"]


@dataclass
class Reply:
    status: int = 0
    body: bytes = b""
    #: seconds from writing the request to the end of the response
    latency: float = 0.0
    error: str | None = None


@dataclass
class _Pending:
    sent: float
    waiter: "asyncio.Future[Reply]"
    status: int = 0
    chunks: list[bytes] = field(default_factory=list)


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.pending: _Pending | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._end(f"bad HTTP: {exc}")

    def on_headers_complete(self) -> None:
        if self.pending is not None:
            self.pending.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if self.pending is not None:
            self.pending.chunks.append(body)

    def on_message_complete(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None and not pending.waiter.done():
            latency = time.perf_counter() - pending.sent
            pending.waiter.set_result(Reply(pending.status, b"".join(pending.chunks), latency))
        if not self.parser.should_keep_alive():
            self._end("closed by peer")

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(f"connection lost: {exc or 'closed by peer'}")

    def _end(self, reason: str) -> None:
        pending, self.pending = self.pending, None
        if pending is not None and not pending.waiter.done():
            pending.waiter.set_result(Reply(pending.status, b"", time.perf_counter() - pending.sent, reason))
        if self.transport is not None:
            self.transport.close()
        self.closed = True


class Connection:
    """A connection to ``host:port`` that is reopened when the server closed it."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self._head = "".join(f"{name}: {value}\r\n" for name, value in {"host": f"{host}:{port}", **headers}.items())
        self._protocol: _Protocol | None = None

    def encode(self, method: str, target: str, body: bytes = b"") -> bytes:
        """The request's bytes (built before the clock starts)."""
        length = f"content-type: application/json\r\ncontent-length: {len(body)}\r\n" if body else ""
        return f"{method} {target} HTTP/1.1\r\n{self._head}{length}\r\n".encode() + body

    async def send(self, request: bytes, timeout: float) -> Reply:
        try:
            if self._protocol is None or self._protocol.closed:
                loop = asyncio.get_running_loop()
                _, self._protocol = await loop.create_connection(_Protocol, self.host, self.port)
        except OSError as exc:
            return Reply(error=f"connect: {exc}")
        protocol = self._protocol
        waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        protocol.pending = _Pending(time.perf_counter(), waiter)
        assert protocol.transport is not None
        protocol.transport.write(request)
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            protocol._end("timeout")
            return Reply(error=f"no answer within {timeout:.0f} s")

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
