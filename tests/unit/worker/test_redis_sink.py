"""The worker's Redis sink against a real redis-server: group commit, replay logs, reconnecting."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest
import redis.asyncio as aioredis

from services.worker.publisher import LOG_MAXLEN, RedisSink
from shared import keys
from shared.codec import split_reply
from tests.harness import RedisServer

pytestmark = pytest.mark.anyio


async def _log(client: aioredis.Redis, job_id: str) -> list[bytes]:
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await client.xrange(keys.job_log(job_id)))
    return [fields[b"e"] for _, fields in entries]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[aioredis.Redis]:
    server = RedisServer(tmp_path)
    redis = aioredis.Redis.from_url(server.url, socket_timeout=5)
    try:
        yield redis
    finally:
        await redis.aclose()
        server.stop()


async def test_flushes_of_many_jobs_reach_the_channel_and_the_replay_logs(client: aioredis.Redis) -> None:
    sink = RedisSink(client, log_ttl=60)
    pubsub = client.pubsub()
    await pubsub.subscribe("replies:a")
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    try:
        sent = await asyncio.gather(*(sink.send(f"job{i}", "replies:a", b"payload-%d" % i, True) for i in range(50)))
        assert sent == [1] * 50  # one subscriber reached by every flush
        assert await sink.send("lone", "", b"no-channel", False) == 1  # no reply channel: nobody to lose
        seen: set[tuple[bytes, bytes]] = set()
        while len(seen) < 50:
            message = await pubsub.get_message(timeout=1)
            assert message is not None
            seen.add(split_reply(message["data"]))
        assert seen == {(b"job%d" % i, b"payload-%d" % i) for i in range(50)}
        for i in (0, 49):
            assert await _log(client, f"job{i}") == [b"payload-%d" % i]
            assert 0 < await client.ttl(keys.job_log(f"job{i}")) <= 60
        assert await client.ttl(keys.job_log("lone")) == -1  # expire not asked for
        assert await sink.send("job0", "replies:nobody", b"x", False) == 0  # a channel nobody listens on
        assert LOG_MAXLEN >= 1000
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await sink.aclose()


async def test_a_dropped_connection_is_replaced_on_the_next_flush(client: aioredis.Redis) -> None:
    sink = RedisSink(client, log_ttl=60)
    try:
        await sink.send("job1", "", b"one", True)
        killed = await client.client_kill_filter(_type="normal", skipme=True)
        assert killed >= 1
        assert await sink.send("job1", "", b"two", False) == 1
        assert await _log(client, "job1") == [b"one", b"two"]
    finally:
        await sink.aclose()
