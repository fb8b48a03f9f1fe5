"""``GroupedCalls`` against a real redis-server: grouping, scripts Redis forgot, a closed connection resent, and
failures as redis-py's exceptions."""

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from services.redis_calls import GroupedCalls, script_sha
from tests.harness import RedisServer

pytestmark = pytest.mark.anyio
SCRIPT = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    redis_server = RedisServer(tmp_path_factory.mktemp("redis-calls"))
    yield redis_server
    redis_server.stop()


@pytest.fixture
async def client(server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(server.url, socket_timeout=2)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


async def test_concurrent_calls_share_round_trips_and_get_their_own_replies(client: aioredis.Redis) -> None:
    calls = GroupedCalls(client, scripts=[SCRIPT])
    try:
        sha = script_sha(SCRIPT)
        replies = await asyncio.gather(
            *(calls([("EVALSHA", sha, 1, "n", 1), ("GET", "n"), ("HGET", "n", "x")]) for _ in range(50))
        )
        assert sorted(reply[0] for reply in replies) == list(range(1, 51))  # loaded on first use, run once each
        assert all(isinstance(reply[2], redis.exceptions.ResponseError) for reply in replies)  # in its place
        await client.script_flush()
        assert (await calls([("EVALSHA", sha, 1, "n", 10)]))[0] == 60
    finally:
        await calls.aclose()


async def test_a_closed_connection_is_resent_once_when_allowed(client: aioredis.Redis) -> None:
    resent, plain = GroupedCalls(client, resend=True), GroupedCalls(client)
    try:
        assert await resent([("SET", "k", "v")]) == [b"OK"]
        assert await plain([("GET", "k")]) == [b"v"]
        await client.client_kill_filter(_type="normal", skipme=True)  # Redis closes both their connections
        assert await resent([("GET", "k")]) == [b"v"]
        with pytest.raises(redis.exceptions.ConnectionError):
            await plain([("GET", "k")])
        assert await plain([("GET", "k")]) == [b"v"]  # a new connection for the next call
    finally:
        await resent.aclose()
        await plain.aclose()


async def test_a_silent_redis_fails_every_waiting_call_at_its_timeout(server: RedisServer) -> None:
    client = aioredis.Redis.from_url(server.url, socket_timeout=0.5)
    calls = GroupedCalls(client, resend=True)
    blocker = aioredis.Redis.from_url(server.url)
    try:
        assert await calls([("PING",)]) == [b"PONG"]
        busy = asyncio.create_task(blocker.execute_command("DEBUG", "SLEEP", "1.5"))  # type: ignore[no-untyped-call]
        await asyncio.sleep(0.1)
        started = asyncio.get_running_loop().time()
        first = asyncio.ensure_future(calls([("PING",)]))
        await asyncio.sleep(0.05)
        waiting = [asyncio.ensure_future(calls([("PING",)])) for _ in range(3)]
        for call in (first, *waiting):
            with pytest.raises(redis.exceptions.TimeoutError):
                await call
        assert asyncio.get_running_loop().time() - started < 0.9  # one timeout for all, not one each
        await busy
        assert await calls([("PING",)]) == [b"PONG"]
    finally:
        await calls.aclose()
        await client.aclose()
        await blocker.aclose()
