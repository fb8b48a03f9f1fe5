"""The worker's HTTP/1.1 transport at the wire: framing, interim responses, broken and slow servers.

Each test runs a loopback server that answers every request with scripted raw bytes, so what the transport
must cope with is written out byte for byte. Pooling and reuse are in ``test_http_pool.py``.
"""

import asyncio
import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable

import httpx
import pytest

from services.worker.http_client import upstream_client
from services.worker.http_pool import MAX_BUFFER

pytestmark = pytest.mark.anyio

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Scripted:
    """A server whose every connection runs ``script`` after reading one request's head and body."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self._server: asyncio.Server | None = None
        self._handlers: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers[task] = writer
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                self.bodies.append(await reader.readexactly(length))
                await self.script(reader, writer)
                if writer.is_closing():
                    break
        writer.close()

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task, writer in self._handlers.items():
            task.cancel()
            writer.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()


def _client(read: float = 5.0) -> httpx.AsyncClient:
    return upstream_client(httpx.Timeout(5.0, read=read), httpx.Limits(max_connections=10))


def _reply(raw: bytes) -> Script:
    async def script(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        await writer.drain()

    return script


async def test_the_request_goes_out_with_httpx_headers_and_body() -> None:
    server = Scripted(_reply(b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\nx-up: 1\r\n\r\nok"))
    async with server as url, _client() as client:
        response = await client.post(f"{url}/v1/x?a=1&b=%20", json={"k": "v"}, headers={"Authorization": "Bearer t"})
    assert (response.status_code, response.reason_phrase, response.text) == (201, "Created", "ok")
    assert response.headers["x-up"] == "1" and response.http_version == "HTTP/1.1"
    head = server.heads[0].decode()
    assert head.startswith("POST /v1/x?a=1&b=%20 HTTP/1.1\r\n")
    assert "Host: 127.0.0.1:" in head and "Authorization: Bearer t" in head and "Content-Length: 9" in head
    assert server.bodies == [b'{"k":"v"}']


async def test_a_body_without_length_ends_with_the_connection() -> None:
    async def script(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nfirst ")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"second")
        writer.close()

    async with Scripted(script) as url, _client() as client:
        response = await client.get(url)
    assert response.text == "first second"


async def test_an_interim_100_continue_is_skipped() -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ndone"
    async with Scripted(_reply(raw)) as url, _client() as client:
        response = await client.get(url)
    assert (response.status_code, response.text) == (200, "done")


async def test_chunks_that_arrived_together_are_read_in_one_piece() -> None:
    chunks = b"".join(f"{len(t):x}\r\n".encode() + t + b"\r\n" for t in [b"a", b"bb", b"ccc"]) + b"0\r\n\r\n"

    async def script(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)  # the three chunks then land in the client's buffer together
        writer.write(chunks)
        await writer.drain()

    async with Scripted(script) as url, _client() as client, client.stream("GET", url) as response:
        await asyncio.sleep(0.1)
        pieces = [piece async for piece in response.aiter_raw()]
    assert pieces == [b"abbccc"]


async def test_a_body_bigger_than_the_buffer_streams_through_intact() -> None:
    body = bytes(range(256)) * (MAX_BUFFER // 256 * 3)
    raw = f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body
    async with Scripted(_reply(raw)) as url, _client() as client, client.stream("GET", url) as response:
        await asyncio.sleep(0.1)  # let the buffer fill past its limit, so reading pauses and resumes
        received = b"".join([piece async for piece in response.aiter_raw()])
    assert received == body


async def test_a_malformed_status_line_is_a_remote_protocol_error() -> None:
    async with Scripted(_reply(b"HTTQ/9 nope\r\n\r\n")) as url, _client() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(url)


async def test_a_chunked_body_cut_short_is_a_remote_protocol_error_after_the_bytes_that_came() -> None:
    async def script(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        writer.close()

    received = b""
    async with Scripted(script) as url, _client() as client, client.stream("GET", url) as response:
        with pytest.raises(httpx.RemoteProtocolError):
            async for piece in response.aiter_raw():
                received += piece
    assert received == b"hello"


async def test_a_reset_connection_is_a_read_error() -> None:
    async def script(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
        await writer.drain()
        await asyncio.sleep(0.02)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        writer.transport.abort()

    async with Scripted(script) as url, _client() as client, client.stream("GET", url) as response:
        with pytest.raises(httpx.ReadError):
            await response.aread()


async def test_a_silent_server_is_a_read_timeout_for_headers_and_for_the_body() -> None:
    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(1)

    async with Scripted(silent) as url, _client(read=0.1) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(url)

    async def stalls(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
        await writer.drain()
        await asyncio.sleep(1)

    async with Scripted(stalls) as url, _client(read=0.1) as client, client.stream("GET", url) as response:
        with pytest.raises(httpx.ReadTimeout):
            await response.aread()


async def test_data_on_an_idle_connection_keeps_it_out_of_the_pool() -> None:
    async def chatty(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nstale")  # nobody asked for this

    server = Scripted(chatty)
    async with server as url, _client() as client:
        assert (await client.get(url)).text == "ok"
        await asyncio.sleep(0.1)
        assert (await client.get(url)).text == "ok"  # a fresh connection, not the stale answer
    assert len(server.heads) == 2


async def test_an_unsupported_scheme_is_refused() -> None:
    async with _client() as client:
        with pytest.raises(httpx.UnsupportedProtocol):
            await client.get("ftp://127.0.0.1/x")
