"""The worker's Redis sink against a real redis-server: group commit, replay logs, reconnecting."""

import asyncio
from typing import cast

import pytest
import redis.asyncio as aioredis

from services.worker.sink import LOG_MAXLEN, Flush, RedisSink
from shared import keys
from shared.codec import split_reply

pytestmark = pytest.mark.anyio


async def _log(client: aioredis.Redis, job_id: str) -> list[bytes]:
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await client.xrange(keys.job_log(job_id)))
    return [fields[b"e"] for _, fields in entries]


async def test_flushes_of_many_jobs_reach_the_channel_and_the_replay_logs(client: aioredis.Redis) -> None:
    sink = RedisSink(client, log_ttl=60)
    pubsub = client.pubsub()
    await pubsub.subscribe("replies:a")
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    try:
        flushes = [Flush(f"job{i}", "replies:a", b"payload-%d" % i, 3, expire=True) for i in range(50)]
        sent = await asyncio.gather(*map(sink.send, flushes))
        assert sent == [1] * 50  # one subscriber reached by every flush
        assert await sink.send(Flush("lone", "", b"no-channel", 1)) == 1  # no reply channel: nobody to lose
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
        assert await client.xrange(keys.job_log("job7"), "-", "+") == [(b"1-3", {b"e": b"payload-7"})]
        assert await sink.send(Flush("job0", "replies:nobody", b"x", 4)) == 0  # a channel nobody listens on
        assert LOG_MAXLEN >= 1000
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await sink.aclose()


async def test_a_dropped_connection_is_replaced_on_the_next_flush(client: aioredis.Redis) -> None:
    sink = RedisSink(client, log_ttl=60)
    try:
        await sink.send(Flush("job1", "", b"one", 1, expire=True))
        killed = await client.client_kill_filter(_type="normal", skipme=True)
        assert killed >= 1
        assert await sink.send(Flush("job1", "", b"two", 2)) == 1
        assert await _log(client, "job1") == [b"one", b"two"]
    finally:
        await sink.aclose()


async def test_the_first_flush_writes_the_record_and_a_resent_entry_is_not_an_error(client: aioredis.Redis) -> None:
    sink = RedisSink(client, log_ttl=60, record_ttl=900)
    try:
        await client.set("conduit:jobname:x", b"job2", ex=5)
        assert (
            await sink.send(Flush("job2", "", b"a", 2, record=b"rec", name_key="conduit:jobname:x", expire=True)) == 1
        )
        assert await client.get(keys.job_record("job2")) == b"rec"
        assert 60 < await client.ttl("conduit:jobname:x") <= 900  # the client's name for it lives as long
        assert 60 < await client.ttl(keys.job_record("job2")) <= 900  # outlives the log
        assert await sink.send(Flush("job2", "", b"a", 2)) == 1  # the same entry again: after a reconnect
        assert await sink.send(Flush("job2", "", b"b", 5, expire=True)) == 1
        assert await _log(client, "job2") == [b"a", b"b"]
        await client.set(keys.job_log("wrong"), "not a stream")
        with pytest.raises(Exception, match="WRONGTYPE"):  # any other error reply fails that flush
            await sink.send(Flush("wrong", "", b"c", 1))
        assert await sink.send(Flush("job2", "", b"c", 6)) == 1  # and the connection still serves the next
    finally:
        await sink.aclose()
