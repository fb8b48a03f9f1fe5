"""``ChatService``'s turns over the memory store: one generation per chat, the stale lock of an ended job,
new messages found in a resent history, and undoing a turn that never ran."""

import time

import pytest

from services.api.chats.personas import DEFAULT_PERSONAS_PATH, load_personas
from services.api.chats.service import ChatService
from services.api.chats.turns import Line, auto_title, new_lines
from services.stores.chats import ChatLimits, NewChat, StoredMessage
from services.stores.memory_chats import MemoryChatStore
from shared.errors import ErrorCode, GatewayError

pytestmark = pytest.mark.anyio


class Jobs:
    commit_timeout = 1.0

    def __init__(self) -> None:
        self.ended_jobs: set[str] = set()

    def run(self, job: object) -> object:
        raise NotImplementedError  # not used by ChatService

    async def ended(self, job_id: str, created: float) -> bool:
        return job_id in self.ended_jobs


def service(max_messages: int = 10) -> tuple[ChatService, Jobs]:
    jobs = Jobs()
    store = MemoryChatStore(ChatLimits(max_chats=3, max_messages=max_messages))
    personas = load_personas(DEFAULT_PERSONAS_PATH)
    return ChatService(store, jobs, personas, max_messages=max_messages, lock_ttl=60), jobs  # type: ignore[arg-type]


NEW = NewChat(title="t")


async def test_a_second_generation_on_a_chat_is_409_until_the_first_ends() -> None:
    chats, _ = service()
    turn = await chats.begin("ana", None, [Line("user", "hi")], NEW, "job1")
    with pytest.raises(GatewayError) as refused:
        await chats.begin("ana", turn.chat.id, [Line("user", "again")], NEW, "job2")
    assert refused.value.code == ErrorCode.CONFLICT
    await chats.store.finish_turn("ana", turn.chat.id, "job1", [], 1.0)
    again = await chats.begin("ana", turn.chat.id, [Line("user", "again")], NEW, "job2")
    assert [m.content for m in again.pending] == ["again"]


async def test_the_lock_of_a_job_that_ended_without_letting_go_is_taken_over() -> None:
    chats, jobs = service()
    turn = await chats.begin("ana", None, [Line("user", "hi")], NEW, "dead")
    jobs.ended_jobs.add("dead")  # its worker died: the sweeper ended its stream, nobody let go of the chat
    taken = await chats.begin("ana", turn.chat.id, [Line("user", "more")], NEW, "next")
    assert taken.chat.id == turn.chat.id


async def test_abandoning_a_new_chats_turn_deletes_it_and_an_existing_ones_lets_go() -> None:
    chats, _ = service()
    created = await chats.begin("ana", None, [Line("user", "hi")], NEW, "j1")
    await chats.abandon("ana", created, "j1")
    assert await chats.store.summary("ana", created.chat.id) is None
    kept = await chats.begin("ana", None, [Line("user", "hi")], NEW, "j2")
    await chats.store.finish_turn("ana", kept.chat.id, "j2", [], 1.0)
    turn = await chats.begin("ana", kept.chat.id, [Line("user", "x")], NEW, "j3")
    await chats.abandon("ana", turn, "j3")
    assert (await chats.begin("ana", kept.chat.id, [Line("user", "x")], NEW, "j4")).chat.id == kept.chat.id


async def test_a_turn_past_the_message_cap_is_413_and_lets_go() -> None:
    chats, _ = service(max_messages=3)
    turn = await chats.begin("ana", None, [Line("user", "a")], NEW, "j1")
    await chats.store.finish_turn("ana", turn.chat.id, "j1", [], 1.0)
    with pytest.raises(GatewayError) as refused:
        await chats.begin("ana", turn.chat.id, [Line("user", "a"), Line("user", "b"), Line("user", "c")], NEW, "j2")
    assert refused.value.code == ErrorCode.REQUEST_TOO_LARGE
    assert (await chats.begin("ana", turn.chat.id, [Line("user", "b")], NEW, "j3")).pending  # not left locked


def _stored(*pairs: tuple[str, str]) -> list[StoredMessage]:
    return [StoredMessage(id=f"m{i}", role=r, content=c, created_at=0) for i, (r, c) in enumerate(pairs)]  # type: ignore[arg-type]


def test_new_lines_skip_the_stored_tail_the_client_repeats() -> None:
    stored = _stored(("user", "a"), ("assistant", "b"))
    assert new_lines(stored, [Line("user", "a"), Line("assistant", "b"), Line("user", "c")]) == [Line("user", "c")]
    assert new_lines(stored, [Line("assistant", "b"), Line("user", "c")]) == [Line("user", "c")]
    assert new_lines(stored, [Line("user", "c")]) == [Line("user", "c")]
    assert new_lines(stored, [Line("user", "a")]) == [Line("user", "a")]  # a new turn that happens to repeat one
    assert new_lines([], [Line("user", "a")]) == [Line("user", "a")]


def test_auto_title_is_the_first_user_message_on_one_line() -> None:
    assert auto_title([Line("system", "s"), Line("user", "  What is\n the   time? ")]) == "What is the time?"
    long = auto_title([Line("user", "word " * 40)])
    assert long.endswith("…") and len(long) <= 61
    assert auto_title([]) == "New chat"


async def test_the_lock_of_a_job_that_never_reached_a_worker_is_taken_over_after_its_deadline() -> None:
    from services.api.chats.service import job_time, new_job_id

    holder = new_job_id()
    assert len(holder) == 32 and abs(job_time(holder) - time.time()) < 1
    assert job_time("f" * 31) == 0.0 and job_time("z" * 32) == 0.0
    chats, jobs = service()
    turn = await chats.begin("ana", None, [Line("user", "hi")], NEW, holder)
    with pytest.raises(GatewayError):
        await chats.begin("ana", turn.chat.id, [Line("user", "x")], NEW, new_job_id())
    jobs.ended_jobs.add(holder)  # the API died before sending it; its queue deadline has passed
    assert (await chats.begin("ana", turn.chat.id, [Line("user", "x")], NEW, new_job_id())).pending


async def test_a_turn_with_no_user_message_is_refused_and_takes_nothing() -> None:
    chats, _ = service()
    with pytest.raises(GatewayError) as refused:
        await chats.begin("ana", None, [Line("assistant", "hello")], NEW, "j1")
    assert refused.value.code == ErrorCode.INVALID_REQUEST
    assert (await chats.store.page("ana", 10)).chats == []  # type: ignore[union-attr]
