"""``RedisBatchStore`` against a real redis-server: records whole, owners only, pages, cancel."""

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from services.stores.batches import BatchError, BatchRecord, LineResult, new_batch_id
from services.stores.redis_batches import RedisBatchStore, from_hash, to_hash
from shared import keys
from tests.harness import RedisServer

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    redis_server = RedisServer(tmp_path_factory.mktemp("redis-batches"))
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


@pytest.fixture
async def store(client: aioredis.Redis) -> AsyncIterator[RedisBatchStore]:
    batches = RedisBatchStore(client)
    try:
        yield batches
    finally:
        await batches.aclose()


def _batch(owner: str = "ana", **changes: object) -> BatchRecord:
    record = BatchRecord(
        id=new_batch_id(),
        owner=owner,
        endpoint="/v1/chat/completions",
        input_file_id="file-1",
        completion_window="24h",
        status="validating",
        created_at=1_767_225_600,
        expires_at=1_767_312_000,
        lines_file_id="file-1-lines",
        total=3,
        metadata={"job": "nightly-eval"},
        requests_per_minute=600,
    )
    return BatchRecord(**{**{f: getattr(record, f) for f in record.__struct_fields__}, **changes})


def _stored(record: BatchRecord) -> list[bytes]:
    """The hash as Redis answers HGETALL (RESP2)."""
    return [value if isinstance(value, bytes) else str(value).encode() for value in to_hash(record)]


def test_a_record_round_trips_through_its_hash_nulls_left_out() -> None:
    full = _batch(errors=[BatchError(code="invalid", message="bad", line=3)], completed_at=1_767_300_000)
    assert from_hash(_stored(full)) == full
    bare = _batch(metadata=None)
    assert "metadata" not in to_hash(bare)[::2] and from_hash(_stored(bare)) == bare


async def test_a_batch_is_its_owners_alone(store: RedisBatchStore, client: aioredis.Redis) -> None:
    made = _batch()
    await store.add(made)
    assert await store.get("ana", made.id) == made
    assert await store.get("bob", made.id) is None
    assert await store.get("ana", "batch_none") is None
    assert await store.cancel("bob", made.id, 1_767_225_700) is None
    assert await client.ttl(keys.batch(made.id)) == -1  # kept, as OpenAI keeps batch objects


async def test_pages_are_newest_first_with_a_cursor(store: RedisBatchStore) -> None:
    made = []
    for _ in range(5):
        made.append(_batch())
        await store.add(made[-1])
        await asyncio.sleep(0.002)
    await store.add(_batch(owner="bob"))
    first = await store.page("ana", limit=2, after=None)
    assert first is not None and [b.id for b in first.batches] == [made[4].id, made[3].id] and first.has_more
    rest = await store.page("ana", limit=10, after=first.batches[-1].id)
    assert rest is not None and [b.id for b in rest.batches] == [b.id for b in made[2::-1]] and not rest.has_more
    assert await store.page("ana", limit=2, after="batch_none") is None


async def test_cancel_stops_a_running_batch_and_leaves_an_ended_one(store: RedisBatchStore) -> None:
    running, ended = _batch(status="in_progress"), _batch(status="completed", completed_at=1_767_230_000)
    await store.add(running)
    await store.add(ended)
    cancelling = await store.cancel("ana", running.id, 1_767_226_000)
    assert cancelling is not None and (cancelling.status, cancelling.cancelling_at) == ("cancelling", 1_767_226_000)
    again = await store.cancel("ana", running.id, 1_767_227_000)
    assert again is not None and again.cancelling_at == 1_767_226_000  # asked once
    assert await store.cancel("ana", ended.id, 1_767_226_000) == ended


async def test_one_runner_holds_a_batch_at_a_time(store: RedisBatchStore) -> None:
    assert await store.take("batch_x", "worker-1", 0.2)
    assert await store.take("batch_x", "worker-1", 0.2)  # its own hold, renewed
    assert not await store.take("batch_x", "worker-2", 0.2)
    await store.let_go("batch_x", "worker-2")  # not its hold: nothing
    assert not await store.take("batch_x", "worker-2", 0.2)
    await asyncio.sleep(0.3)  # the holder died: its hold ran out
    assert await store.take("batch_x", "worker-2", 0.2)
    await store.let_go("batch_x", "worker-2")
    assert await store.take("batch_x", "worker-1", 0.2)


async def test_a_batch_starts_once_and_finishes_as_it_was_asked(store: RedisBatchStore) -> None:
    made = _batch()
    await store.add(made)
    started = await store.start(made.id, 1_767_225_610)
    assert started is not None and (started.status, started.in_progress_at) == ("in_progress", 1_767_225_610)
    again = await store.start(made.id, 1_767_225_999)
    assert again is not None and again.in_progress_at == 1_767_225_610  # a second runner does not restart it
    assert await store.status(made.id) == "in_progress"
    await store.cancel("ana", made.id, 1_767_225_700)
    ended = await store.finish(made.id, 1_767_225_800, "completed")
    assert ended is not None and (ended.status, ended.ends_as, ended.finalizing_at) == (
        "finalizing",
        "cancelled",  # the cancel asked meanwhile wins
        1_767_225_800,
    )
    assert await store.start("batch_none", 1) is None and await store.status("batch_none") is None


async def test_a_lines_result_is_recorded_and_counted_once(store: RedisBatchStore, client: aioredis.Redis) -> None:
    made = _batch(status="in_progress")
    await store.add(made)
    answered = LineResult(custom_id="q1", job_id="j1", events=b"\x90", ok=True, input_tokens=7, output_tokens=3)
    failed = LineResult(custom_id="q2", job_id="j2", events=b"\x90", ok=False)
    assert await store.record(made, answered, "openai", "gpt-4o-mini", "2026-12-03")
    assert not await store.record(made, answered, "openai", "gpt-4o-mini", "2026-12-03")  # run twice: once
    assert await store.record(made, failed, "openai", "gpt-4o-mini", "2026-12-03")
    assert await store.recorded(made.id, ["q1", "q2", "q3"]) == {"q1", "q2"}
    now = await store.get("ana", made.id)
    assert now is not None and (now.completed, now.failed, now.input_tokens, now.output_tokens) == (1, 1, 7, 3)
    usage = await client.hgetall(keys.usage("ana", "2026-12-03"))
    assert usage == {
        keys.usage_field("batch:openai", "gpt-4o-mini", "requests").encode(): b"2",
        keys.usage_field("batch:openai", "gpt-4o-mini", "prompt_tokens").encode(): b"7",
        keys.usage_field("batch:openai", "gpt-4o-mini", "completion_tokens").encode(): b"3",
    }
    assert 0 < await client.ttl(keys.usage("ana", "2026-12-03")) <= keys.USAGE_TTL
