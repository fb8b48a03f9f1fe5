"""The ``ChatStore`` contract: one suite every implementation passes.

A test module subclasses ``ChatStoreContract`` (as ``Test…``) and provides the ``make_store`` fixture: a
function from ``ChatLimits`` to a new, empty store (``tests/unit/stores/test_memory_chats.py`` for the
memory store, ``tests/integration/test_redis_chats.py`` for Redis).
"""

import asyncio
from collections.abc import Callable

import pytest
from msgspec.structs import asdict

from services.stores.chats import (
    ChatLimitError,
    ChatLimits,
    ChatStore,
    ChatSummary,
    ForkOrigin,
    MessageUsage,
    NewChat,
    StoredMessage,
    ms,
    new_message_id,
)

__all__ = ["ChatStoreContract", "MakeStore", "message", "new_chats"]

MakeStore = Callable[[ChatLimits], ChatStore]

T0 = 1_750_000_000.125
OWNER = "user-a"
OTHER = "user-b"


def message(content: str, role: str = "user", created: float = T0) -> StoredMessage:
    return StoredMessage(id=new_message_id(), role=role, content=content, created_at=ms(created))  # type: ignore[arg-type]


async def new_chats(store: ChatStore, owner: str, count: int, start: float = T0) -> list[ChatSummary]:
    """``count`` chats made a second apart, oldest first."""
    return [
        await store.create(owner, NewChat(title=f"chat {i}"), [message(f"hello {i}")], start + i) for i in range(count)
    ]


def ids(chats: list[ChatSummary]) -> list[str]:
    return [chat.id for chat in chats]


async def saved(store: ChatStore, chat_id: str) -> list[StoredMessage]:
    """The owner's chat's messages (it must exist)."""
    messages = await store.messages(OWNER, chat_id)
    assert messages is not None
    return messages


async def listed(store: ChatStore, owner: str = OWNER) -> list[ChatSummary]:
    """The owner's chats, all on one page."""
    page = await store.page(owner, 100)
    assert page is not None
    assert not page.has_more
    return page.chats


@pytest.mark.anyio
class ChatStoreContract:
    @pytest.fixture
    def store(self, make_store: MakeStore) -> ChatStore:
        return make_store(ChatLimits())

    async def test_create_round_trips_the_summary_and_messages(self, store: ChatStore) -> None:
        reply = StoredMessage(
            id=new_message_id(),
            role="assistant",
            content="x" * 300,
            created_at=ms(T0 + 1.5),
            model="gpt-4o-mini",
            usage=MessageUsage(prompt_tokens=3, completion_tokens=4, total_tokens=7),
            persona="pirate",
            status="cut_short",
            error="cancelled",
        )
        sent = [message("hi é 😀"), reply]
        origin = ForkOrigin(chat_id="chat_old", message_id="msg_old")
        new = NewChat(
            title="Hi",
            title_auto=True,
            persona="pirate",
            scope="docs",
            username="Ann",
            source="web",
            forked_from=origin,
        )
        chat = await store.create(OWNER, new, sent, T0)
        assert chat.id.startswith("chat_")
        assert chat == ChatSummary(
            id=chat.id, owner=OWNER, created=T0, updated=T0, message_count=2, preview="x" * 120, **asdict(new)
        )
        assert await store.summary(OWNER, chat.id) == chat
        assert await store.messages(OWNER, chat.id) == sent
        plain = await store.create(OWNER, NewChat(title="plain"), [], T0)
        assert await store.summary(OWNER, plain.id) == plain
        assert await store.messages(OWNER, plain.id) == []

    async def test_page_lists_pinned_chats_first_then_newest_activity(self, store: ChatStore) -> None:
        a, b, c, d = await new_chats(store, OWNER, 4)
        await store.update(OWNER, b.id, pinned=True, now=T0 + 100)
        await store.append(OWNER, a.id, [message("later")], T0 + 50)
        chats = await listed(store)
        assert ids(chats) == [b.id, a.id, d.id, c.id]
        assert chats[0].pinned

    async def test_page_walks_every_chat_once_in_pages(self, store: ChatStore) -> None:
        made = await new_chats(store, OWNER, 45)
        await new_chats(store, OTHER, 3)
        seen: list[str] = []
        flags: list[bool] = []
        after: str | None = None
        while True:
            page = await store.page(OWNER, 20, after)
            assert page is not None
            seen += ids(page.chats)
            flags.append(page.has_more)
            if not page.has_more:
                break
            after = page.chats[-1].id
        assert seen == ids(made)[::-1]
        assert flags == [True, True, False]
        exact = await store.page(OWNER, 20, seen[24])
        assert exact is not None
        assert ids(exact.chats) == seen[25:45]
        assert not exact.has_more
        last = await store.page(OWNER, 20, seen[-1])
        assert last is not None
        assert last.chats == []
        assert not last.has_more

    async def test_page_after_a_chat_not_listed_is_none(self, store: ChatStore) -> None:
        (mine,) = await new_chats(store, OWNER, 1)
        (theirs,) = await new_chats(store, OTHER, 1)
        assert await store.page(OWNER, 20, "chat_unknown") is None
        assert await store.page(OWNER, 20, theirs.id) is None
        await store.delete(OWNER, mine.id)
        assert await store.page(OWNER, 20, mine.id) is None
        empty = await store.page("nobody", 20)
        assert empty is not None
        assert empty.chats == []

    async def test_update_title_is_no_longer_automatic_and_moves_the_chat_up(self, store: ChatStore) -> None:
        first = await store.create(OWNER, NewChat(title="auto", title_auto=True), [message("hi")], T0)
        second = await store.create(OWNER, NewChat(title="other"), [message("hi")], T0 + 1)
        renamed = await store.update(OWNER, first.id, title="mine", now=T0 + 2)
        assert renamed is not None
        assert (renamed.title, renamed.title_auto, renamed.updated, renamed.created) == ("mine", False, T0 + 2, T0)
        assert await store.summary(OWNER, first.id) == renamed
        assert ids(await listed(store)) == [first.id, second.id]

    async def test_pinning_reorders_without_moving_activity(self, store: ChatStore) -> None:
        old, new = await new_chats(store, OWNER, 2)
        pinned = await store.update(OWNER, old.id, pinned=True, now=T0 + 10)
        assert pinned is not None
        assert pinned.pinned
        assert pinned.updated == old.updated
        assert ids(await listed(store)) == [old.id, new.id]
        await store.append(OWNER, old.id, [message("still pinned")], T0 + 20)
        await store.update(OWNER, old.id, title="renamed while pinned", now=T0 + 30)
        assert ids(await listed(store)) == [old.id, new.id]
        unpinned = await store.update(OWNER, old.id, pinned=False, now=T0 + 40)
        assert unpinned is not None
        assert not unpinned.pinned
        assert unpinned.updated == T0 + 30
        await store.append(OWNER, new.id, [message("newer")], T0 + 35)
        assert ids(await listed(store)) == [new.id, old.id]

    async def test_append_adds_messages_and_moves_the_chat_up(self, store: ChatStore) -> None:
        old, new = await new_chats(store, OWNER, 2)
        more = [message("second", "assistant"), message("third " * 50)]
        chat = await store.append(OWNER, old.id, more, T0 + 5)
        assert chat is not None
        assert (chat.message_count, chat.updated, chat.created) == (3, T0 + 5, T0)
        assert chat.preview == ("third " * 50)[:120]
        assert await store.summary(OWNER, old.id) == chat
        assert (await saved(store, old.id))[1:] == more
        assert ids(await listed(store)) == [old.id, new.id]

    async def test_delete_removes_the_chat_everywhere_and_frees_its_place(self, make_store: MakeStore) -> None:
        store = make_store(ChatLimits(max_chats=2))
        kept, gone = await new_chats(store, OWNER, 2)
        await store.lock(gone.id, "job-1", 60)
        assert await store.delete(OWNER, gone.id)
        assert not await store.delete(OWNER, gone.id)
        assert (await store.summary(OWNER, gone.id), await store.messages(OWNER, gone.id)) == (None, None)
        assert await store.append(OWNER, gone.id, [message("late")], T0 + 9) is None
        assert ids(await listed(store)) == [kept.id]
        assert await store.lock(gone.id, "job-2", 60) is None  # its lock went with it
        await store.create(OWNER, NewChat(title="room again"), [], T0 + 10)

    async def test_caps_raise_chat_limit_error_and_change_nothing(self, make_store: MakeStore) -> None:
        store = make_store(ChatLimits(max_chats=2, max_messages=3))
        with pytest.raises(ChatLimitError) as too_long:
            await store.create(OWNER, NewChat(title="long"), [message(str(i)) for i in range(4)], T0)
        assert (too_long.value.limit, too_long.value.cap) == ("messages", 3)
        first, _ = await new_chats(store, OWNER, 2)
        with pytest.raises(ChatLimitError) as too_many:
            await store.create(OWNER, NewChat(title="third"), [], T0 + 5)
        assert (too_many.value.limit, too_many.value.cap) == ("chats", 2)
        await store.create(OTHER, NewChat(title="theirs"), [], T0 + 5)  # the cap is per owner
        chat = await store.append(OWNER, first.id, [message("2"), message("3")], T0 + 6)
        assert chat is not None
        assert chat.message_count == 3
        with pytest.raises(ChatLimitError) as full:
            await store.append(OWNER, first.id, [message("4")], T0 + 7)
        assert (full.value.limit, full.value.cap) == ("messages", 3)
        assert await store.summary(OWNER, first.id) == chat
        assert len(await saved(store, first.id)) == 3
        assert len(await listed(store)) == 2

    async def test_another_owners_chat_looks_missing(self, store: ChatStore) -> None:
        (chat,) = await new_chats(store, OWNER, 1)
        await store.lock(chat.id, "job-1", 60)
        assert await store.summary(OTHER, chat.id) is None
        assert await store.messages(OTHER, chat.id) is None
        assert await store.update(OTHER, chat.id, title="mine now", pinned=True, now=T0 + 1) is None
        assert await store.append(OTHER, chat.id, [message("intrusion")], T0 + 1) is None
        assert not await store.retitle(OTHER, chat.id, "mine now")
        assert not await store.delete(OTHER, chat.id)
        await store.finish_turn(OTHER, chat.id, "job-1", [message("reply", "assistant")], T0 + 1)
        assert await listed(store, OTHER) == []
        assert await store.summary(OWNER, chat.id) == chat
        assert len(await saved(store, chat.id)) == 1

    async def test_lock_refuses_another_job_until_let_go(self, store: ChatStore) -> None:
        assert await store.lock("chat_x", "job-1", 60) is None
        assert await store.lock("chat_x", "job-2", 60) == "job-1"
        assert await store.lock("chat_x", "job-1", 60) is None  # its own: kept
        assert await store.lock("chat_y", "job-2", 60) is None  # per chat
        await store.unlock("chat_x", "job-2")  # not the holder: nothing
        assert await store.lock("chat_x", "job-2", 60) == "job-1"
        await store.unlock("chat_x", "job-1")
        assert await store.lock("chat_x", "job-2", 60) is None

    async def test_only_one_of_many_concurrent_lockers_wins(self, store: ChatStore) -> None:
        holders = await asyncio.gather(*(store.lock("chat_x", f"job-{i}", 60) for i in range(20)))
        winners = [f"job-{i}" for i, holder in enumerate(holders) if holder is None]
        assert len(winners) == 1
        assert {holder for holder in holders if holder is not None} == set(winners)

    async def test_a_lock_runs_out_after_its_ttl(self, store: ChatStore) -> None:
        assert await store.lock("chat_x", "job-1", 0.05) is None
        assert await store.lock("chat_x", "job-2", 60) == "job-1"
        await asyncio.sleep(0.2)
        assert await store.lock("chat_x", "job-2", 60) is None

    async def test_steal_takes_the_chat_only_from_its_holder(self, store: ChatStore) -> None:
        assert not await store.steal("chat_x", "job-1", "job-2", 60)  # nobody holds it
        await store.lock("chat_x", "job-1", 60)
        assert not await store.steal("chat_x", "job-0", "job-2", 60)
        assert await store.lock("chat_x", "job-3", 60) == "job-1"
        assert await store.steal("chat_x", "job-1", "job-2", 60)
        assert await store.lock("chat_x", "job-3", 60) == "job-2"
        assert not await store.steal("chat_x", "job-1", "job-3", 60)  # taken once only

    async def test_finish_turn_saves_the_reply_past_the_cap_and_lets_go_of_its_own_lock(
        self, make_store: MakeStore
    ) -> None:
        store = make_store(ChatLimits(max_messages=2))
        chat = await store.create(OWNER, NewChat(title="t"), [message("1"), message("2")], T0)
        assert await store.lock(chat.id, "job-1", 60) is None
        reply = message("the answer", "assistant")
        await store.finish_turn(OWNER, chat.id, "job-2", [reply], T0 + 3)  # not the holder: saved, lock stays
        assert await store.lock(chat.id, "job-3", 60) == "job-1"
        await store.finish_turn(OWNER, chat.id, "job-1", [], T0 + 4)
        assert await store.lock(chat.id, "job-3", 60) is None
        assert (await saved(store, chat.id))[2:] == [reply]
        summary = await store.summary(OWNER, chat.id)
        assert summary is not None
        assert (summary.message_count, summary.updated, summary.preview) == (3, T0 + 3, "the answer")

    async def test_finish_turn_sent_twice_saves_the_turn_once(self, store: ChatStore) -> None:
        (chat,) = await new_chats(store, OWNER, 1)
        turn = [message("a question"), message("its answer", "assistant")]
        for _ in range(2):  # a retried round trip
            await store.finish_turn(OWNER, chat.id, "job-1", turn, T0 + 6)
        held = await saved(store, chat.id)
        assert len(held) == 3 and held[1:] == turn  # the chat's first message, then the turn once
        summary = await store.summary(OWNER, chat.id)
        assert summary is not None and summary.message_count == 3

    async def test_finish_turn_on_a_deleted_chat_does_not_bring_it_back(self, store: ChatStore) -> None:
        (chat,) = await new_chats(store, OWNER, 1)
        await store.delete(OWNER, chat.id)
        assert await store.lock(chat.id, "job-1", 60) is None
        await store.finish_turn(OWNER, chat.id, "job-1", [message("too late", "assistant")], T0 + 5)
        assert await store.summary(OWNER, chat.id) is None
        assert await store.messages(OWNER, chat.id) is None
        assert await listed(store) == []
        assert await store.lock(chat.id, "job-2", 60) is None  # let go all the same

    async def test_retitle_replaces_only_an_automatic_title(self, store: ChatStore) -> None:
        auto = await store.create(OWNER, NewChat(title="hello there", title_auto=True), [message("hi")], T0)
        assert await store.retitle(OWNER, auto.id, "Greeting")
        retitled = await store.summary(OWNER, auto.id)
        assert retitled is not None
        assert (retitled.title, retitled.updated) == ("Greeting", T0)
        await store.update(OWNER, auto.id, title="My title", now=T0 + 1)
        assert not await store.retitle(OWNER, auto.id, "Better")
        manual = await store.create(OWNER, NewChat(title="set by hand"), [], T0)
        assert not await store.retitle(OWNER, manual.id, "Better")
        assert not await store.retitle(OWNER, "chat_unknown", "Better")
        assert sorted(chat.title for chat in await listed(store)) == ["My title", "set by hand"]

    async def test_read_gives_the_chat_and_its_messages_to_its_owner_only(self, store: ChatStore) -> None:
        chat = await store.create(OWNER, NewChat(title="t"), [message("a"), message("b", "assistant")], T0)
        found = await store.read(OWNER, chat.id)
        assert found is not None and found.holder is None
        assert found.chat == chat and [m.content for m in found.messages] == ["a", "b"]
        empty = await store.create(OWNER, NewChat(title="e"), [], T0)
        assert (await store.read(OWNER, empty.id)) == (empty, b"[]", None)
        assert await store.read(OTHER, chat.id) is None
        assert await store.read(OWNER, "chat_missing") is None

    async def test_open_turn_takes_the_chat_once_and_never_another_owners(self, store: ChatStore) -> None:
        chat = await store.create(OWNER, NewChat(title="t"), [message("a")], T0)
        assert await store.open_turn(OTHER, chat.id, "job-b", 60) is None
        assert await store.lock(chat.id, "job-x", 60) is None  # the other owner's attempt took nothing
        await store.unlock(chat.id, "job-x")
        opened = await store.open_turn(OWNER, chat.id, "job-1", 60)
        assert opened is not None and opened.holder is None and [m.content for m in opened.messages] == ["a"]
        refused = await store.open_turn(OWNER, chat.id, "job-2", 60)
        assert refused is not None and refused.holder == "job-1" and refused.messages == []
        assert refused.chat.id == chat.id
        assert await store.open_turn(OWNER, "chat_missing", "job-3", 60) is None
