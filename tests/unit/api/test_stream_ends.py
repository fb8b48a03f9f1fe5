"""Streams end right and Redis failures are 503s (issue 12, items 4, 5, 6 and 8): the pure parts."""

import asyncio
import json

import pytest
import redis.exceptions
from litestar import Litestar, get
from litestar.testing import AsyncTestClient
from openai._streaming import SSEDecoder

from services.api.dialects.ai.errors import render_error as ai_error
from services.api.dialects.openai.errors import render_error as openai_error
from services.api.dialects.openai.sse import ChatChunkEncoder
from services.api.errors import RETRY_UNAVAILABLE, exception_handlers
from services.api.relay.events import Drain, EventRelay
from services.api.settings import ApiSettings
from services.api.sse import FrameId, render
from services.api.workers import WorkerDirectory
from services.worker.settings import WorkerSettings
from shared.errors import ErrorCode, UnavailableError
from shared.events import Done, Event, Failed, TextDelta

pytestmark = pytest.mark.anyio


async def _events(*items: Event | None):
    for item in items:
        yield item


def _decode(raw: bytes) -> list[tuple[str | None, str]]:
    """``(id, data)`` of each event as openai-python's decoder (the SSE spec's rules) sees it."""
    return [(sse.id, sse.data) for sse in SSEDecoder().iter_bytes(iter([raw]))]


def _encoder() -> ChatChunkEncoder:
    return ChatChunkEncoder("chatcmpl-x", "echo", include_usage=False, created=1)


async def test_a_gateway_error_takes_no_id_and_a_client_keeps_the_last_one_of_the_job():
    failed = Failed(seq=0, code=ErrorCode.UNAVAILABLE, message="shutting down", retryable=True)
    raw = b"".join(
        [c async for c in render(_events(TextDelta(seq=1, text="a"), TextDelta(seq=2, text="b"), failed), _encoder())]
    )
    decoded = _decode(raw)
    assert [ident for ident, _ in decoded[-2:]] == ["2", "2"]  # the error and [DONE] keep the job's last id
    assert json.loads(decoded[-2][1])["error"]["code"] == "unavailable"
    assert decoded[-1][1] == "[DONE]"
    assert b"id: 3" not in raw  # the id of the job's next event stays free


async def test_a_gateway_error_on_a_resume_is_not_filtered_out_by_last_event_id():
    failed = Failed(seq=0, code=ErrorCode.UNAVAILABLE, message="lost Redis", retryable=True)
    raw = b"".join([c async for c in render(_events(failed), _encoder(), FrameId(7, 0))])
    assert [data for _, data in _decode(raw)][-1] == "[DONE]"
    assert b'"code":"unavailable"' in raw


async def test_a_relay_that_stops_without_a_terminal_event_still_ends_with_one():
    raw = b"".join([c async for c in render(_events(TextDelta(seq=1, text="a")), _encoder())])
    data = [data for _, data in _decode(raw)]
    assert data[-1] == "[DONE]" and json.loads(data[-2])["error"]["code"] == "internal"


async def test_a_resume_after_the_terminal_frame_adds_nothing():
    raw = b"".join([c async for c in render(_events(TextDelta(seq=1, text="a"), Done(seq=2)), _encoder(), FrameId(9))])
    assert raw == b""


class _Scripted(EventRelay):
    """Delivers its batches one per wait; fails (as a relay does on losing Redis) when told to."""

    def __init__(self, batches: list[list[Event] | None]) -> None:
        super().__init__(ApiSettings(), Drain())
        self._batches = batches

    async def _receive(self, timeout: float) -> None:
        batch = self._batches.pop(0)
        if batch is None:
            self._fail(ErrorCode.UNAVAILABLE, "lost Redis")
            return
        self._last_activity = asyncio.get_running_loop().time()
        self._accept(batch)


async def test_a_relays_own_failure_has_seq_0_and_ends_the_relay():
    relay = _Scripted([[TextDelta(seq=1, text="a")], None, [TextDelta(seq=2, text="b"), Done(seq=3)]])
    got = [event async for event in relay if event is not None]
    assert [type(event).__name__ for event in got] == ["TextDelta", "Failed"]
    assert got[-1].seq == 0


class _DownRedis:
    async def zrangebyscore(self, *args: object) -> list[bytes]:
        raise redis.exceptions.ConnectionError("Connection refused")


async def test_a_worker_directory_that_cannot_refresh_is_unavailable_not_an_error():
    directory = WorkerDirectory(_DownRedis())  # type: ignore[arg-type]
    directory.workers, directory.stale = ["w1"], True
    with pytest.raises(UnavailableError):
        await directory.current()


@get("/v1/boom", sync_to_thread=False)
def _boom() -> None:
    raise redis.exceptions.TimeoutError("Timeout reading from socket")


@get("/api/ai/busy", sync_to_thread=False)
def _busy() -> None:
    raise UnavailableError("no worker", code=ErrorCode.NO_WORKER)


async def test_a_redis_failure_is_a_503_with_retry_after_in_the_endpoints_shape():
    app = Litestar([_boom, _busy], exception_handlers=exception_handlers([("/api/ai/", ai_error)], openai_error))  # type: ignore[arg-type]
    async with AsyncTestClient(app) as client:
        boom, busy = await client.get("/v1/boom"), await client.get("/api/ai/busy")
    assert boom.status_code == 503 and boom.json()["error"]["code"] == "unavailable"
    assert busy.status_code == 503 and busy.json() == {"detail": "no worker", "code": "no_worker"}
    assert boom.headers["retry-after"] == busy.headers["retry-after"] == str(RETRY_UNAVAILABLE)


def test_the_default_resume_window_outlasts_a_slow_reconnect():
    assert WorkerSettings().orphan_grace >= 30
