"""One HTTP/1.1 connection of the worker's lean transport (``http_pool.py``): an ``asyncio.Protocol`` that
parses responses with ``httptools`` and buffers body bytes until a reader takes them all at once; reading
pauses the socket beyond ``MAX_BUFFER`` bytes."""

import asyncio
import time

import httptools
import httpx

__all__ = ["DEFAULT_PORTS", "MAX_BUFFER", "Connection", "Key"]

MAX_BUFFER = 256 * 1024  # body bytes buffered before the socket is paused
Key = tuple[str, str, int]
DEFAULT_PORTS = {"http": 80, "https": 443}
_NO_BODY_STATUSES = {204, 304}


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, its response parsed as bytes arrive."""

    def __init__(self, key: Key) -> None:
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
