"""The ``ChatStore`` contract against ``RedisChatStore`` on a real redis-server (one for this module), and
what only Redis has: its key layout, and a page out of 10,000 chats."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import cast

import msgspec
import pytest
import redis.asyncio as aioredis

from services.stores.chats import ChatLimits, ChatStore, NewChat, StoredMessage, list_rank
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
def make_store(client: aioredis.Redis) -> MakeStore:
    def make(limits: ChatLimits) -> ChatStore:
        return RedisChatStore(client, limits)

    return make


class TestRedisChatStore(ChatStoreContract):
    pass


async def test_a_chat_is_a_hash_a_list_and_a_ranked_entry_without_ttl(client: aioredis.Redis) -> None:
    store = RedisChatStore(client, ChatLimits())
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


async def test_a_page_out_of_ten_thousand_chats(client: aioredis.Redis) -> None:
    store = RedisChatStore(client, ChatLimits(max_chats=10_000))
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


async def test_a_turn_opens_after_redis_forgot_its_scripts(client: aioredis.Redis) -> None:
    """The lock script runs by its digest inside the read's pipeline; a Redis that lost its scripts (a restart,
    SCRIPT FLUSH) gets it loaded again, and the turn opens as before."""
    store = RedisChatStore(client, ChatLimits())
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
