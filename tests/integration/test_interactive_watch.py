"""``InteractiveWatch`` against a real redis-server, fed by the real ``JobClaims`` of workers: busy while a live
interactive worker has a job claimed, idle once its heartbeat took the ended job out; batch-only and silent
workers do not count."""

from collections.abc import AsyncIterator, Iterator

import msgspec
import pytest
import redis.asyncio as aioredis

from services.worker.batch_lines import line_job
from services.worker.claims import JobClaims
from services.worker.interactive import InteractiveWatch
from shared import keys
from shared.batches import BatchLine
from shared.jobs import ChatMessage, Principal
from tests.harness import RedisServer

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    redis_server = RedisServer(tmp_path_factory.mktemp("redis-interactive-watch"))
    yield redis_server
    redis_server.stop()


@pytest.fixture
async def client(server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(server.url, socket_timeout=5)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


async def _worker(client: aioredis.Redis, name: str, queues: list[str]) -> JobClaims:
    """A worker as its heartbeat shows it: present, with its info; its claims."""
    claims = JobClaims(client, name, lease_ttl=30)
    async with client.pipeline(transaction=False) as pipe:
        await claims.announce(pipe, 60)
        pipe.set(keys.worker_info(name), msgspec.json.encode({"providers": ["openai"], "queues": queues}), ex=15)
        await pipe.execute()
    return claims


async def _beat(client: aioredis.Redis, claims: JobClaims) -> None:
    async with client.pipeline(transaction=False) as pipe:
        claims.beat(pipe)
        await pipe.execute()


def _job(job_id: str) -> object:
    line = BatchLine(
        custom_id="x",
        provider="openai",
        model="gpt-4o-mini",
        messages=[ChatMessage(role="user", content="hi")],
        dialect="openai.chat",
        id_prefix="chatcmpl-",
        model_named="gpt-4o-mini",
    )
    return line_job(line, Principal(user_id="ana", tier="pro"), "batch_x", job_id)


async def test_busy_while_a_live_interactive_worker_runs_a_job(client: aioredis.Redis) -> None:
    watch = InteractiveWatch(client, every=0, roster_every=0)
    assert not await watch.busy()  # no worker at all
    interactive = await _worker(client, "w-int", ["interactive"])
    assert not await watch.busy()  # a worker, no job
    assert await interactive.claim([_job("j1")])  # type: ignore[list-item]
    assert await watch.busy()
    interactive.finished("j1")
    assert await watch.busy()  # until its next heartbeat
    await _beat(client, interactive)
    assert not await watch.busy()
    await interactive.aclose()


async def test_batch_only_and_silent_workers_do_not_count(client: aioredis.Redis) -> None:
    watch = InteractiveWatch(client, every=0, roster_every=0, alive_within=5)
    batch_only = await _worker(client, "w-batch", ["batch"])
    assert await batch_only.claim([_job("j2")])  # type: ignore[list-item]
    assert not await watch.busy()
    silent = await _worker(client, "w-silent", ["interactive"])
    assert await silent.claim([_job("j3")])  # type: ignore[list-item]
    assert await watch.busy()
    await client.zadd(keys.WORKERS, {"w-silent": 1_000_000})  # its last heartbeat, long ago
    assert not await watch.busy()
    await batch_only.aclose()
    await silent.aclose()


async def test_what_it_saw_is_kept_for_every_seconds_and_redis_away_is_not_busy(client: aioredis.Redis) -> None:
    interactive = await _worker(client, "w-int", ["interactive"])
    assert await interactive.claim([_job("j4")])  # type: ignore[list-item]
    watch = InteractiveWatch(client, every=60, roster_every=0)
    assert await watch.busy()
    interactive.finished("j4")
    await _beat(client, interactive)
    assert await watch.busy()  # read again only after `every`
    away = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    assert not await InteractiveWatch(away, every=0).busy()
    await away.aclose()
    await interactive.aclose()
