"""``drain``: read the rest of a body after its last event, bounded in time, never failing the answer."""

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from services.worker.providers._http import drain

pytestmark = pytest.mark.anyio


class Body:
    """Chunks to hand out, then (optionally) an error or a wait that never ends; records what was read."""

    def __init__(self, chunks: list[bytes], *, then: BaseException | None = None, hang: bool = False) -> None:
        self.chunks = chunks
        self.then = then
        self.hang = hang
        self.read: list[bytes] = []
        self.finished = False
        self.cancelled = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.read.append(chunk)
            yield chunk
        if self.then is not None:
            raise self.then
        if self.hang:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        self.finished = True


async def test_drain_reads_every_remaining_chunk_to_the_end() -> None:
    body = Body([b"data: x\n\n", b"", b"tail"])
    await drain(body.__aiter__())
    assert body.read == [b"data: x\n\n", b"", b"tail"]
    assert body.finished


async def test_drain_continues_an_iterator_already_partly_read() -> None:
    body = Body([b"a", b"b", b"c"])
    chunks = body.__aiter__()
    assert await anext(chunks) == b"a"
    await drain(chunks)
    assert body.read == [b"a", b"b", b"c"]
    assert body.finished


async def test_drain_of_an_empty_body_returns() -> None:
    body = Body([])
    await drain(body.__aiter__())
    assert body.finished


async def test_drain_gives_up_after_its_timeout_when_the_body_never_ends() -> None:
    body = Body([b"a", b"b"], hang=True)
    started = time.monotonic()
    await drain(body.__aiter__(), timeout=0.05)  # returns; no TimeoutError
    elapsed = time.monotonic() - started
    assert 0.04 <= elapsed < 1.0
    assert body.read == [b"a", b"b"]
    assert body.cancelled  # the pending read was cancelled, not left running
    assert not body.finished


async def test_drain_timeout_bounds_the_whole_drain_not_each_chunk() -> None:
    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(300):  # a chunk every 10 ms for 3 s: each read is quick, the body is not
            await asyncio.sleep(0.01)
            yield b"."

    started = time.monotonic()
    await drain(trickle(), timeout=0.1)
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    "error",
    [httpx.ReadError("connection reset"), httpx.RemoteProtocolError("peer closed"), httpx.ReadTimeout("slow")],
    ids=["read-error", "remote-protocol-error", "read-timeout"],
)
async def test_drain_swallows_transport_errors_from_the_body(error: httpx.HTTPError) -> None:
    body = Body([b"a"], then=error)
    await drain(body.__aiter__())  # does not raise
    assert body.read == [b"a"]


async def test_drain_does_not_hide_other_errors() -> None:
    body = Body([b"a"], then=RuntimeError("a bug, not the network"))
    with pytest.raises(RuntimeError, match="a bug"):
        await drain(body.__aiter__())


async def test_drain_lets_an_outer_cancellation_through() -> None:
    body = Body([], hang=True)
    task = asyncio.ensure_future(drain(body.__aiter__(), timeout=30.0))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task  # the job was cancelled: drain must not turn that into a normal return
    assert body.cancelled


async def test_drain_reads_the_rest_of_a_real_response_body() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"data: 1\n\ndata: [DONE]\n\n")

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client,
        client.stream("GET", "http://upstream.test/") as response,
    ):
        await drain(response.aiter_bytes())
        assert response.is_stream_consumed
        assert response.is_closed
