"""The ``ChatStore`` contract against ``RedisChatStore`` on a real redis-server (one for this module), and
what only Redis has: its key layout, and a page out of 10,000 chats."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import cast

import msgspec
import pytest
import redis.asyncio as aioredis

from services.stores.chats import ChatLimits, NewChat, StoredMessage, list_rank
from services.stores.redis_chats import RedisChatStore
from shared import keys
from tests.harness import RedisServer
from tests.stores_contract import T0, ChatStoreContract, MakeStore, message

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    redis = RedisServer(tmp_path_factory.mktemp("redis-chats"))
    yield redis
    redis.stop()


@pytest.fixture
async def client(server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(server.url, socket_timeout=5)
    await redis.flushdb()
    try:
        yield redis
    finally:
        await redis.aclose()


@pytest.fixture
async def make_store(client: aioredis.Redis) -> AsyncIterator[MakeStore]:
    made: list[RedisChatStore] = []

    def make(limits: ChatLimits) -> RedisChatStore:
        made.append(RedisChatStore(client, limits))
        return made[-1]

    yield make
    for store in made:
        await store.aclose()


class TestRedisChatStore(ChatStoreContract):
    pass


async def test_a_chat_is_a_hash_a_list_and_a_ranked_entry_without_ttl(
    client: aioredis.Redis, make_store: MakeStore
) -> None:
    store = make_store(ChatLimits())
    sent = [message("hi"), message("there", "assistant")]
    chat = await store.create("user-a", NewChat(title="t", title_auto=True), sent, T0)
    fields = cast(dict[bytes, bytes], await client.hgetall(keys.chat(chat.id)))
    assert {field.decode() for field in fields} == {
        *("owner", "title", "title_auto", "pinned", "created", "updated", "count", "preview", "persona"),
        *("scope", "username", "source", "forked_chat", "forked_message"),
    }
    raw = await client.lrange(keys.chat_messages(chat.id), 0, -1)
    assert [msgspec.json.decode(item, type=StoredMessage) for item in raw] == sent
    assert await client.zscore(keys.user_chats("user-a"), chat.id) == list_rank(T0, pinned=False)
    await store.update("user-a", chat.id, pinned=True, now=T0 + 1)
    assert await client.zscore(keys.user_chats("user-a"), chat.id) == list_rank(T0, pinned=True)
    for key in (keys.chat(chat.id), keys.chat_messages(chat.id), keys.user_chats("user-a")):
        assert await client.ttl(key) == -1  # kept until deleted
    await store.lock(chat.id, "job-1", 30)
    assert 29_000 < await client.pttl(keys.chat_lock(chat.id)) <= 30_000
    assert await store.delete("user-a", chat.id)
    assert await client.keys("*") == []


async def test_a_page_out_of_ten_thousand_chats(client: aioredis.Redis, make_store: MakeStore) -> None:
    store = make_store(ChatLimits(max_chats=10_000))
    made: list[str] = []
    for start in range(0, 10_000, 50):
        batch = [
            store.create("user-a", NewChat(title=f"c{i}"), [message("hi")], T0 + i) for i in range(start, start + 50)
        ]
        made += [chat.id for chat in await asyncio.gather(*batch)]
    newest = made[::-1]
    first = await store.page("user-a", 20)
    assert first is not None
    assert [chat.id for chat in first.chats] == newest[:20]
    assert first.has_more
    middle = await store.page("user-a", 20, newest[4_999])
    assert middle is not None
    assert [chat.id for chat in middle.chats] == newest[5_000:5_020]
    assert [chat.title for chat in middle.chats] == [f"c{4_999 - i}" for i in range(20)]
    last = await store.page("user-a", 20, newest[9_979])
    assert last is not None
    assert [chat.id for chat in last.chats] == newest[9_980:]
    assert not last.has_more
    await store.update("user-a", made[0], pinned=True, now=T0 + 20_000)
    pinned = await store.page("user-a", 2)
    assert pinned is not None
    assert [chat.id for chat in pinned.chats] == [made[0], newest[0]]


async def test_a_turn_opens_after_redis_forgot_its_scripts(client: aioredis.Redis, make_store: MakeStore) -> None:
    """The lock script runs by its digest inside the read's pipeline; a Redis that lost its scripts (a restart,
    SCRIPT FLUSH) gets it loaded again, and the turn opens as before."""
    store = make_store(ChatLimits())
    sent = [message("hi"), message("there", "assistant")]
    chat = await store.create("user-a", NewChat(title="t"), sent, T0)
    await client.script_flush()
    opened = await store.open_turn("user-a", chat.id, "job-1", 30)
    assert opened is not None and opened.holder is None and opened.messages == sent
    assert await client.get(keys.chat_lock(chat.id)) == b"job-1"
    await client.script_flush()
    again = await store.open_turn("user-a", chat.id, "job-2", 30)
    assert again is not None and again.holder == "job-1"
    assert await store.open_turn("user-b", chat.id, "job-3", 30) is None


async def test_a_jobs_turn_is_saved_ahead_of_its_terminal_event_in_the_same_round_trip(
    client: aioredis.Redis, make_store: MakeStore
) -> None:
    """The worker's chat hook returns the save as a command; the sink sends it ahead of the terminal flush, so
    whoever hears the end finds the reply, and a resent round trip saves nothing twice."""
    from services.worker.chat_replies import ChatReplies
    from services.worker.job_end import JobEnd
    from services.worker.sink import Flush, RedisSink
    from shared.events import Done, Failed, Usage
    from shared.jobs import ChatTurn, GenerationJob, Principal, TurnMessage

    store = cast(RedisChatStore, make_store(ChatLimits()))
    chat = await store.create("ana", NewChat(title="t"), [message("hello")], T0)
    await store.lock(chat.id, "j1", 60)
    turns = [TurnMessage(id="m1", role="user", content="question", created_at=5)]
    job = GenerationJob(
        id="j1",
        request_id="r",
        principal=Principal(user_id="ana", tier="pro"),
        provider="openai",
        model="m",
        messages=[],
        chat=ChatTurn(chat_id=chat.id, reply_id="r1", persona="maya", turns=turns),
    )
    usage = Usage(seq=3, prompt_tokens=1, completion_tokens=1)
    command = await ChatReplies(store).on_end(job, JobEnd(Done(seq=4), usage, "openai", "m", "answer"))
    assert command is not None and command[0] == "EVAL"
    sink, pubsub = RedisSink(client, log_ttl=60), client.pubsub()
    await pubsub.subscribe("replies:a")
    await pubsub.get_message(timeout=1)
    try:
        assert await sink.send(Flush("j1", "replies:a", b"the end", 4, before=(command,))) == 1
        assert await pubsub.get_message(timeout=1) is not None
        held = await store.messages("ana", chat.id) or []
        assert [(m.id, m.content) for m in held] == [(held[0].id, "hello"), ("m1", "question"), ("r1", "answer")]
        assert await store.lock(chat.id, "next", 60) is None  # let go
        await sink.send(Flush("j1", "", b"the end", 4, before=(command,)))  # the round trip resent
        assert [m.id for m in await store.messages("ana", chat.id) or []] == [held[0].id, "m1", "r1"]
        await store.unlock(chat.id, "next")
        failed = msgspec.structs.replace(job, id="j2", chat=ChatTurn(chat_id=chat.id, reply_id="r2", turns=turns))
        failure = Failed(seq=2, code="upstream_error", message="x")
        lost = await ChatReplies(store).on_end(failed, JobEnd(failure, None, "openai", "m", ""))
        assert lost is not None
        await sink.send(Flush("j2", "", b"failed", 2, before=(lost,)))
        kept = [m.id for m in await store.messages("ana", chat.id) or []]
        assert kept == [held[0].id, "m1", "r1", "m1"]  # the question kept, no reply
        plain = msgspec.structs.replace(job, id="j3", chat=None)
        assert await ChatReplies(store).on_end(plain, JobEnd(Done(seq=2), None, "echo", "echo", "hi")) is None
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await sink.aclose()


async def _log_length(client: aioredis.Redis, job_id: str) -> int:
    length: int = await client.xlen(keys.job_log(job_id))
    return length


async def test_a_failing_command_ahead_of_a_flush_is_logged_and_the_flush_goes_out(
    client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    from services.worker.sink import Flush, RedisSink

    sink = RedisSink(client, log_ttl=60)
    try:
        await client.set("text", "x")
        with caplog.at_level("WARNING", logger="conduit.worker"):
            assert await sink.send(Flush("j9", "", b"end", 1, before=(("INCR", "text"),))) == 1
        assert "job j9: INCR failed" in caplog.text
        assert await _log_length(client, "j9") == 1
    finally:
        await sink.aclose()
