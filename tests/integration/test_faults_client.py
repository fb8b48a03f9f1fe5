"""Clients that leave, stop reading, or lose their API server to a restart (rows F-09, F-13 and F-15)."""

import asyncio
import json
import random
import socket
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.fakes.upstream import FakeUpstream, Reply
from tests.harness import ApiProcess, auth, sse_frames
from tests.stack import Stack, own_stack, two_api_stack
from tests.streams import Seen, openai_text, watch

pytestmark = pytest.mark.anyio

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "go"}], "stream": True}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _after(frames: int) -> Callable[[Seen], bool]:
    return lambda seen: len(seen.frames) >= frames


async def _leave(stack: Stack, rng: random.Random, count: int) -> list[float]:
    """``count`` streams whose clients hang up (a quarter before the first token); for each, the time from
    the hang-up to the upstream seeing its connection closed."""
    plans: list[tuple[str, int]] = []  # (request id, frames to read before hanging up; 0 = before the first token)
    for index in range(count):
        plans.append((f"req_leave{index:02d}{uuid.uuid4().hex[:6]}", 0 if index % 4 == 0 else rng.randint(1, 5)))
        stack.fake.push(Reply(tokens=[f" x{i}" for i in range(100)], delay=0.3))
    async with httpx.AsyncClient(timeout=30) as client:
        seen: list[Seen] = await asyncio.gather(
            *(
                watch(
                    client,
                    "POST",
                    f"{stack.url}/v1/chat/completions",
                    json_body=CHAT,
                    headers={**auth(), "x-request-id": rid},
                    stop=_after(frames) if frames else None,
                    leave_after=0.2 if frames == 0 else None,  # connected upstream, no token yet
                )
                for rid, frames in plans
            )
        )
    by_rid = {}
    for _ in range(50):
        by_rid = {r.headers.get("x-request-id"): r for r in stack.fake.requests}
        if all(rid in by_rid and by_rid[rid].disconnected is not None for rid, _ in plans):
            break
        await asyncio.sleep(0.1)
    delays = []
    for (rid, _), one in zip(plans, seen, strict=True):
        assert one.closed_by_us is not None
        upstream = by_rid[rid]
        assert upstream.disconnected is not None, f"{rid}: the upstream call was never closed"
        delays.append(max(0.0, upstream.disconnected - one.closed_by_us))
    return delays


async def test_a_client_that_leaves_gets_its_upstream_call_closed_within_a_second(stack: Stack) -> None:
    rng = random.Random(11)
    redis = stack.redis.client()
    delays = await _leave(stack, rng, 40)
    await asyncio.sleep(0.5)
    after_first = len(redis.client_list())
    delays += await _leave(stack, rng, 40)
    await asyncio.sleep(0.5)
    p50, p99 = statistics.median(delays), _pct(delays, 0.99)
    print(f"\ndisconnect -> upstream closed ({len(delays)} streams): p50 {p50 * 1e3:.0f} ms, p99 {p99 * 1e3:.0f} ms")
    assert p99 <= 1.0
    # 40 more cancelled streams add (next to) no Redis connection: the pools are reused, nothing leaks per stream
    assert len(redis.client_list()) - after_first < 10


@pytest.fixture
def small_queues(tmp_path: Path, fake: FakeUpstream) -> Iterator[Stack]:
    with own_stack(tmp_path, fake, api_env={"CONDUIT_RELAY_QUEUE": "16"}) as stack:
        yield stack


def _dechunk(body: bytes) -> bytes:
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2 :]
    return out


async def _unread_stream(stack: Stack) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A streaming request from a socket with a tiny receive buffer that the test does not read yet."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", stack.api.port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock, limit=2**14)  # stops reading at 32 KiB
    body = json.dumps(CHAT).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: {auth()['authorization']}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    return reader, writer


async def test_a_client_that_stops_reading_holds_no_memory_nor_slows_the_others_and_loses_nothing(
    small_queues: Stack,
) -> None:
    stack = small_queues
    big = [f" b{i}" + "x" * 2000 for i in range(3000)]  # 6 MB: more than the kernel's socket buffers hold
    stack.fake.push(Reply(tokens=big, delay=0.001), provider="openai")
    api = psutil.Process(stack.api.pid)
    reader, writer = await _unread_stream(stack)
    await asyncio.sleep(0.5)
    rss_before = api.memory_info().rss
    for _ in range(10):
        stack.fake.push(Reply(tokens=[f" n{i}" for i in range(40)], delay=0.02), provider="openai")
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=60) as client:
        others = await asyncio.gather(
            *(
                watch(client, "POST", f"{stack.url}/v1/chat/completions", json_body=CHAT, headers=auth())
                for _ in range(10)
            )
        )
    took = time.monotonic() - started
    await asyncio.sleep(4.0)  # the big answer is complete upstream by now, and unread
    rss_held = api.memory_info().rss - rss_before
    raw = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    for one in others:
        one.check()
        assert openai_text(one) == "".join(f" n{i}" for i in range(40))
    assert took < 0.8 + 2.0  # 40 tokens 20 ms apart: the slow client did not hold them up
    assert rss_held < 30 * 2**20
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    frames = sse_frames(_dechunk(body).decode())
    assert frames[-1][1] == "[DONE]"
    chunks = [json.loads(data) for _, data in frames[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")) == "".join(big)
    ids = [ident for ident, _ in frames]
    assert len(set(ids)) == len(ids)
    assert "fell behind" in stack.api.log.read_text()  # the live feed overflowed: the rest came from the log


@pytest.fixture
def two_apis(tmp_path: Path, fake: FakeUpstream) -> Iterator[tuple[Stack, ApiProcess]]:
    env = {"CONDUIT_SHUTDOWN_GRACE": "1.5", "CONDUIT_HEARTBEAT_INTERVAL": "1"}
    with two_api_stack(tmp_path, fake, api_env=env, worker_env={"CONDUIT_ORPHAN_GRACE": "3"}) as pair:
        yield pair


async def test_an_api_stopped_with_sigterm_lets_short_streams_finish_and_hands_long_ones_over(
    two_apis: tuple[Stack, ApiProcess],
) -> None:
    stack, second = two_apis
    short, long = [f" s{i}" for i in range(10)], [f" l{i}" for i in range(80)]
    stack.fake.push(Reply(tokens=short, delay=0.05), provider="openai")  # 0.5 s
    stack.fake.push(Reply(tokens=long, delay=0.05), provider="openai")  # 4 s
    async with httpx.AsyncClient(timeout=30) as client:
        url = f"{stack.url}/v1/chat/completions"
        first = asyncio.create_task(watch(client, "POST", url, json_body=CHAT, headers=auth()))
        await asyncio.sleep(0.1)
        second_stream = asyncio.create_task(watch(client, "POST", url, json_body=CHAT, headers=auth()))
        await asyncio.sleep(0.3)
        assert stack.api.proc is not None
        stopping = time.monotonic()
        stack.api.proc.terminate()
        done_short, cut_long = await first, await second_stream
        assert stack.api.proc.wait(timeout=15) in {0, -15}  # uvicorn re-raises the SIGTERM it handled
        done_short.check()
        cut_long.check()
        assert openai_text(done_short) == "".join(short)
        assert cut_long.error is not None and cut_long.error["code"] == "unavailable"
        assert "shutting down" in cut_long.error["message"]
        assert cut_long.ended is not None and 1.0 < cut_long.ended - stopping < 3.0
        last_id = next(ident for ident, data in reversed(cut_long.frames) if '"error"' not in data and data != "[DONE]")
        headers = {**auth(), "last-event-id": last_id}
        resumed = await watch(client, "GET", f"{second.base_url}/v1/streams/{cut_long.job_id}", headers=headers)
    resumed.check()
    assert resumed.error is None
    kept = [frame for frame in cut_long.frames if '"error"' not in frame[1] and frame[1] != "[DONE]"]
    assert openai_text(Seen(frames=kept + resumed.frames)) == "".join(long)
