"""The worker's upstream connection pool, through ``upstream_client``, against a real keep-alive HTTP/1.1 server.

The server counts the connections it accepts and sees closed, so reuse, limits and closing are checked from
the other end of the socket, not from the pool's own bookkeeping.
"""

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from services.worker.http_client import upstream_client
from services.worker.providers.base import FinishPiece, ModelPiece, Piece, Target, TextPiece, UsagePiece
from services.worker.providers.registry import build_streamers
from shared.catalog import ProviderSpec
from shared.jobs import ChatMessage, GenerationJob, Principal

pytestmark = pytest.mark.anyio

SLOW = 0.1  # how long /slow holds its answer, so concurrent requests overlap
DONE_PAUSE = 0.02  # the chunked terminator comes this long after `data: [DONE]` (well inside drain's timeout)

SSE_EVENTS = [
    b'{"model":"m-1","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]}',
    b'{"model":"m-1","choices":[{"index":0,"delta":{"content":"lo"}}]}',
    b'{"model":"m-1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
    b'{"model":"m-1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}',
    b"[DONE]",
]
SSE_BODY = b"".join(b"data: " + event + b"\n\n" for event in SSE_EVENTS)


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class Upstream:
    """A keep-alive HTTP/1.1 server on 127.0.0.1 that counts connections (accepted, open, peak) and requests.

    ``/plain`` answers with a content-length body, ``/slow`` the same after ``SLOW`` seconds, any path ending in
    ``/sse`` or ``/chat/completions`` with a chunked SSE stream ending ``data: [DONE]`` then the terminating
    chunk; under ``/hang/`` the terminating chunk never comes (the body stays open until the client leaves).
    """

    def __init__(self) -> None:
        self.accepted = 0
        self.open = 0
        self.peak_open = 0
        self.active = 0
        self.peak_active = 0
        self.requests: list[str] = []
        self.sent_cookies: list[bool] = []  # per request: did the client send a cookie header?
        self._writers: list[asyncio.StreamWriter] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def closed(self) -> int:
        return self.accepted - self.open

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for writer in list(self._writers):
            writer.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def drop(self, index: int | None = None) -> None:
        """Close open connections from the server's side (all, or the ``index``-th still open, in accept order)."""
        writers = list(self._writers) if index is None else [self._writers[index]]
        before = self.open
        for writer in writers:
            writer.close()
        await wait_for(lambda: self.open == before - len(writers))
        await asyncio.sleep(0.02)  # let the FIN reach the client's socket

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.append(writer)
        self.accepted += 1
        self.open += 1
        self.peak_open = max(self.peak_open, self.open)
        try:
            with contextlib.suppress(ConnectionError):
                while await self._one_request(reader, writer):
                    pass
        finally:
            self.open -= 1
            self._writers.remove(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # the client closed the connection
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if length:
            await reader.readexactly(length)
        self.requests.append(f"{method} {path}")
        self.sent_cookies.append(any(line.lower().startswith("cookie:") for line in lines[1:]))
        self.active += 1
        self.peak_active = max(self.peak_active, self.active)
        try:
            if path.startswith("/hang/"):
                await self._sse(writer, terminate=False)
                await reader.read()  # the body never ends; wait for the client to give up and close
                return False
            if path.endswith(("/sse", "/chat/completions")):
                await self._sse(writer, terminate=True)
            else:
                if path == "/slow":
                    await asyncio.sleep(SLOW)
                body = path.encode()
                head_out = (
                    f"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nset-cookie: session=abc; Path=/\r\n"
                    f"content-length: {len(body)}\r\n\r\n"
                )
                writer.write(head_out.encode() + body)
                await writer.drain()
        finally:
            self.active -= 1
        return True

    @staticmethod
    async def _sse(writer: asyncio.StreamWriter, *, terminate: bool) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        for event in SSE_EVENTS:
            writer.write(_chunk(b"data: " + event + b"\n\n"))
            await writer.drain()
        if terminate:
            await asyncio.sleep(DONE_PAUSE)  # the terminator in its own segment: the reader must wait for it
            writer.write(b"0\r\n\r\n")
            await writer.drain()


async def wait_for(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    server = Upstream()
    await server.start()
    try:
        yield server
    finally:
        await server.aclose()


def _client(
    max_connections: int | None = 100,
    max_keepalive_connections: int | None = 20,
    keepalive_expiry: float = 30.0,
    pool_timeout: float = 5.0,
) -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_keepalive_connections,
        keepalive_expiry=keepalive_expiry,
    )
    return upstream_client(httpx.Timeout(5.0, pool=pool_timeout), limits)


async def _get_all(client: httpx.AsyncClient, url: str, n: int) -> list[httpx.Response]:
    return list(await asyncio.gather(*(client.get(url) for _ in range(n))))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there any more: connecting is refused


async def test_sequential_requests_reuse_one_connection(upstream: Upstream) -> None:
    async with _client() as client:
        for _ in range(3):
            plain = await client.get(f"{upstream.url}/plain")
            assert (plain.status_code, plain.content) == (200, b"/plain")
            sse = await client.get(f"{upstream.url}/sse")
            assert (sse.status_code, sse.content) == (200, SSE_BODY)
        async with client.stream("GET", f"{upstream.url}/sse") as streamed:
            assert b"".join([chunk async for chunk in streamed.aiter_bytes()]) == SSE_BODY

        assert len(upstream.requests) == 7
        assert upstream.accepted == 1
        assert upstream.open == 1


async def test_unlimited_keepalive_keeps_connections(upstream: Upstream) -> None:
    async with _client(max_keepalive_connections=None) as client:  # httpx: None means no limit
        for _ in range(3):
            assert (await client.get(f"{upstream.url}/plain")).status_code == 200
        assert upstream.accepted == 1


async def test_concurrent_requests_open_one_connection_each_and_the_next_batch_reuses_them(upstream: Upstream) -> None:
    n = 4
    async with _client() as client:
        first = await _get_all(client, f"{upstream.url}/slow", n)
        assert [r.status_code for r in first] == [200] * n
        assert upstream.accepted == n
        assert upstream.peak_active == n

        second = await _get_all(client, f"{upstream.url}/slow", n)
        assert [r.status_code for r in second] == [200] * n
        assert upstream.accepted == n  # no new connection
        assert upstream.open == n
        assert len(upstream.requests) == 2 * n


async def test_idle_connections_beyond_max_keepalive_are_closed(upstream: Upstream) -> None:
    async with _client(max_keepalive_connections=2) as client:
        responses = await _get_all(client, f"{upstream.url}/slow", 5)
        assert [r.status_code for r in responses] == [200] * 5
        assert upstream.accepted == 5

        await wait_for(lambda: upstream.open <= 2)
        await asyncio.sleep(0.05)  # and it stays there
        assert upstream.open == 2
        assert upstream.closed == 3

        again = await _get_all(client, f"{upstream.url}/slow", 2)  # the two kept are the ones reused
        assert [r.status_code for r in again] == [200] * 2
        assert upstream.accepted == 5


async def test_connection_closed_by_server_while_idle_is_not_reused(upstream: Upstream) -> None:
    async with _client() as client:
        assert (await client.get(f"{upstream.url}/plain")).status_code == 200
        assert upstream.accepted == 1

        await upstream.drop()  # e.g. the upstream's idle timeout
        assert upstream.open == 0

        response = await client.get(f"{upstream.url}/plain")  # no RemoteProtocolError
        assert (response.status_code, response.content) == (200, b"/plain")
        assert upstream.accepted == 2
        assert upstream.open == 1


async def test_most_recent_idle_connection_closed_by_server_is_skipped_for_a_live_one(upstream: Upstream) -> None:
    async with _client() as client:
        # two connections, opened and finished one after the other: the second is the most recently used
        older = asyncio.ensure_future(client.get(f"{upstream.url}/slow"))
        await wait_for(lambda: upstream.active == 1)
        newer = asyncio.ensure_future(client.get(f"{upstream.url}/slow"))
        assert [(await older).status_code, (await newer).status_code] == [200, 200]
        assert upstream.accepted == 2

        await upstream.drop(index=1)  # the most recently used: the one a LIFO pool hands out first
        response = await client.get(f"{upstream.url}/plain")
        assert response.status_code == 200
        assert upstream.accepted == 2  # served on the other, live connection
        assert upstream.open == 1

        await upstream.drop()  # now the last one too: a fresh connection, still no error
        assert (await client.get(f"{upstream.url}/plain")).status_code == 200
        assert upstream.accepted == 3


async def test_connection_idle_past_keepalive_expiry_is_not_reused(upstream: Upstream) -> None:
    async with _client(keepalive_expiry=0.05) as client:
        assert (await client.get(f"{upstream.url}/plain")).status_code == 200
        await asyncio.sleep(0.15)
        assert (await client.get(f"{upstream.url}/plain")).status_code == 200
        assert upstream.accepted == 2


async def test_max_connections_queues_requests_instead_of_opening_more(upstream: Upstream) -> None:
    async with _client(max_connections=2) as client:
        responses = await _get_all(client, f"{upstream.url}/slow", 4)
        assert [(r.status_code, r.content) for r in responses] == [(200, b"/slow")] * 4
        assert upstream.peak_open <= 2
        assert upstream.peak_active == 2
        assert upstream.accepted == 2


async def test_waiting_longer_than_the_pool_timeout_raises_pool_timeout(upstream: Upstream) -> None:
    async with _client(max_connections=1, pool_timeout=0.1) as client:
        async with client.stream("GET", f"{upstream.url}/plain") as held:  # holds the only connection
            with pytest.raises(httpx.PoolTimeout):
                await client.get(f"{upstream.url}/plain")
            await held.aread()
        assert (await client.get(f"{upstream.url}/plain")).status_code == 200
        assert upstream.accepted == 1


async def test_a_full_pool_closes_an_idle_connection_to_another_origin(upstream: Upstream) -> None:
    other = Upstream()
    await other.start()
    try:
        async with _client(max_connections=1, pool_timeout=1.0) as client:
            assert (await client.get(f"{upstream.url}/plain")).status_code == 200
            assert (await client.get(f"{other.url}/plain")).status_code == 200  # no PoolTimeout
            await wait_for(lambda: upstream.open == 0)  # the idle one was closed to make room
            assert (upstream.accepted, other.accepted, other.open) == (1, 1, 1)
    finally:
        await other.aclose()


async def test_failed_connects_do_not_use_up_the_pool(upstream: Upstream) -> None:
    async with _client(max_connections=1, pool_timeout=0.5) as client:
        dead = f"http://127.0.0.1:{_closed_port()}/plain"
        for _ in range(3):
            with pytest.raises(httpx.ConnectError):
                await client.get(dead)
        assert (await client.get(f"{upstream.url}/plain")).status_code == 200  # no PoolTimeout


async def test_cancelled_requests_give_their_connection_back(upstream: Upstream) -> None:
    async with _client(max_connections=1, pool_timeout=0.5) as client:
        for _ in range(3):
            pending = asyncio.ensure_future(client.get(f"{upstream.url}/slow"))
            await wait_for(lambda: upstream.active == 1)  # sent, the answer not yet back
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
            await wait_for(lambda: upstream.active == 0)
        assert (await client.get(f"{upstream.url}/plain")).status_code == 200  # no PoolTimeout


async def test_a_waiter_cancelled_as_it_is_handed_the_connection_does_not_strand_the_next(
    upstream: Upstream,
) -> None:
    async with _client(max_connections=1, pool_timeout=1.0) as client:
        async with client.stream("GET", f"{upstream.url}/plain") as held:
            first = asyncio.ensure_future(client.get(f"{upstream.url}/plain"))
            second = asyncio.ensure_future(client.get(f"{upstream.url}/plain"))
            await asyncio.sleep(0.05)  # both wait for the one connection
            assert not first.done()
            assert not second.done()
            await held.aread()  # body read and closed: the connection is free, and goes to the first waiter
            first.cancel()  # whose job is cancelled before it gets to run (no await in between)
        with pytest.raises(asyncio.CancelledError):
            await first
        response = await second  # must get the free connection, not wait out the pool timeout
        assert response.status_code == 200
        assert upstream.accepted == 1


# --- the openai_compat adapter path ----------------------------------------------------------------


def _job() -> GenerationJob:
    return GenerationJob(
        id="job_pool",
        request_id="req_pool",
        principal=Principal(user_id="u_1", tier="free"),
        provider="local",
        model="m",
        messages=[ChatMessage(role="user", content="Hi")],
    )


def _target(base_url: str) -> Target:
    spec = ProviderSpec(kind="openai_compat", base_url=base_url, default_model="m")
    return Target(provider="local", spec=spec, base_url=base_url, api_key="sk-local-test", model="m")


async def _stream(client: httpx.AsyncClient, target: Target) -> list[Piece]:
    streamer = build_streamers(echo_delay=0.0)["openai_compat"]
    return [piece async for piece in streamer(client, _job(), target)]


EXPECTED_PIECES: list[Piece] = [
    ModelPiece("m-1"),
    TextPiece("Hel"),
    TextPiece("lo"),
    UsagePiece(prompt_tokens=3, completion_tokens=2),
    FinishPiece("stop", "m-1"),
]


async def test_openai_compat_stream_leaves_the_connection_reusable(upstream: Upstream) -> None:
    target = _target(f"{upstream.url}/v1")
    async with _client() as client:
        assert await _stream(client, target) == EXPECTED_PIECES
        assert await _stream(client, target) == EXPECTED_PIECES

        assert upstream.requests == ["POST /v1/chat/completions"] * 2
        assert upstream.accepted == 1  # the second call reused the first one's connection
        assert upstream.open == 1


async def test_openai_compat_stream_whose_body_never_ends_still_completes(upstream: Upstream) -> None:
    target = _target(f"{upstream.url}/hang/v1")  # `data: [DONE]`, then the body stays open
    async with _client() as client:
        started = time.monotonic()
        assert await _stream(client, target) == EXPECTED_PIECES
        assert await _stream(client, target) == EXPECTED_PIECES
        assert time.monotonic() - started < 3.0  # drain gave up after its timeout each time

        assert upstream.accepted == 2  # that connection could not be reused: closed, a new one opened
        await wait_for(lambda: upstream.open == 0)


async def test_cookies_a_provider_sets_are_never_sent_back(upstream):
    async with _client() as client:
        for _ in range(2):
            response = await client.get(f"{upstream.url}/plain")
            assert response.headers["set-cookie"].startswith("session=")
    assert upstream.sent_cookies == [False, False]  # one user's cookie never rides on another's call
