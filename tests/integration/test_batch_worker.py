"""A batch run by real worker processes serving the ``batch`` queue (``conduit worker --queues batch``), its
lines answered by the fake upstream: every line once; a worker SIGKILLed mid-batch loses no line and records
none twice, the batch going on with the next runner."""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from services.api.enqueue import RedisListBroker, TaskMessage
from services.stores.batches import BatchRecord, new_batch_id
from services.stores.local_files import LocalFileStore
from services.stores.redis_batches import RedisBatchStore
from shared import keys
from shared.batches import BatchLine, encode_line, lines_file_id
from shared.jobs import ChatMessage
from shared.tasks import QueueName, TaskName
from tests.fakes.upstream import FakeUpstream, Reply
from tests.harness import RedisServer, WorkerProcess, provider_env

pytestmark = pytest.mark.anyio
HOLD = "1.5"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisBatchStore]:
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=5)
    batches = RedisBatchStore(client)
    try:
        yield batches
    finally:
        await batches.aclose()
        await client.aclose()


def _worker(tmp_path: Path, redis_server: RedisServer, fake: FakeUpstream) -> WorkerProcess:
    env = {**provider_env(fake), "CONDUIT_BATCH_HOLD": HOLD, "CONDUIT_BATCH_CONCURRENCY": "8"}
    return WorkerProcess(tmp_path, redis_server.url, env, queues="batch")


async def _batch(store: RedisBatchStore, files: LocalFileStore, count: int) -> BatchRecord:
    file_id = f"file-{new_batch_id()[6:]}"
    async with files.writer(lines_file_id(file_id)) as out:
        for index in range(count):
            line = BatchLine(
                custom_id=f"q{index}",
                provider="openai",
                model="gpt-4o-mini",
                messages=[ChatMessage(role="user", content=f"question {index}")],
                dialect="openai.chat",
                id_prefix="chatcmpl-",
                model_named="gpt-4o-mini",
            )
            await out.write(encode_line(line))
    now = int(time.time())
    record = BatchRecord(
        id=new_batch_id(),
        owner="ana",
        endpoint="/v1/chat/completions",
        input_file_id=file_id,
        completion_window="24h",
        status="validating",
        created_at=now,
        expires_at=now + 86400,
        lines_file_id=lines_file_id(file_id),
        total=count,
        tier="pro",
    )
    await store.add(record)
    return record


async def _send(redis_server: RedisServer, batch_id: str) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        message = TaskMessage(TaskName.RUN_BATCH, batch_id, [batch_id], QueueName.BATCH, None, "batch")
        await RedisListBroker(client).send([message])
    finally:
        await client.aclose()


async def _until(store: RedisBatchStore, batch_id: str, status: str, within: float) -> BatchRecord:
    deadline, record = time.monotonic() + within, None
    while time.monotonic() < deadline:
        record = await store.get("ana", batch_id)
        if record is not None and record.status == status:
            return record
        await asyncio.sleep(0.1)
    raise AssertionError(f"batch {batch_id} is {record.status if record else None}, not {status}")


async def test_a_batch_worker_runs_every_line_once(
    tmp_path: Path, redis_server: RedisServer, store: RedisBatchStore, fake: FakeUpstream
) -> None:
    worker = _worker(tmp_path, redis_server, fake)
    try:
        record = await _batch(store, LocalFileStore(tmp_path / "files"), 40)
        await _send(redis_server, record.id)
        done = await _until(store, record.id, "finalizing", 30)
        assert (done.completed, done.failed, done.ends_as) == (40, 0, "completed")
        assert len([r for r in fake.requests if "question" in str(r.body)]) == 40
    finally:
        worker.stop()


async def test_a_worker_killed_mid_batch_loses_no_line_and_records_none_twice(
    tmp_path: Path, redis_server: RedisServer, store: RedisBatchStore, fake: FakeUpstream
) -> None:
    for _ in range(200):
        fake.push(Reply(tokens=["slow ", "answer"], delay=0.1))
    first = _worker(tmp_path, redis_server, fake)
    record = await _batch(store, LocalFileStore(tmp_path / "files"), 60)
    try:
        await _send(redis_server, record.id)
        deadline = time.monotonic() + 20
        while (now := await store.get("ana", record.id)) is not None and now.completed < 10:
            assert time.monotonic() < deadline, now
            await asyncio.sleep(0.05)
        first.kill()  # SIGKILL: its lines in flight are lost with it, unrecorded
    finally:
        first.stop()
    second = _worker(tmp_path, redis_server, fake)
    try:
        await asyncio.sleep(float(HOLD) + 0.5)  # the dead runner's hold runs out
        await _send(redis_server, record.id)  # what the API's sweeper does for a batch nobody holds
        done = await _until(store, record.id, "finalizing", 60)
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            results = await client.hlen(keys.batch_results(record.id))
        finally:
            await client.aclose()
        assert (done.completed, done.failed, results) == (60, 0, 60)  # 0 lost, 0 twice
        asked = [r for r in fake.requests if "question" in str(r.body)]
        assert len(asked) >= 60  # the lines in flight at the kill were asked again
    finally:
        second.stop()
