"""The chats the chat benchmark reads and generates on, written straight into the bench's Redis through
``RedisChatStore`` (the store the API uses), so setting up 10,000 chats takes seconds, not an API run.

A conversation alternates user questions (20-40 words) and assistant answers (60-120 words) of ordinary
prose, different in every message and the same in every run (a fixed seed): 200 messages are ~70 kB of
JSON, as a real long chat is.
"""

import asyncio
import random
import time
from collections.abc import Awaitable, Iterable
from typing import TypeVar

from services.stores.chats import ChatStore, NewChat, StoredMessage, ms, new_message_id
from shared.jobs import Role

__all__ = ["Line", "conversation", "create_chats", "delete_chats", "gather_bounded"]

Line = tuple[Role, str]
T = TypeVar("T")

_VOCABULARY = (
    "the gateway queue worker stream token model answer request latency budget cache provider retry "
    "timeout message history chat persona summary context window reply usage limit redis lock fork title "
    "page cursor pinned preview client server deploy config metric trace error status header body schema "
    "field value record index batch job event frame delta upstream downstream process thread memory "
    "socket network"
)
_WORDS = tuple(_VOCABULARY.split())
#: at most this many store calls in flight while seeding (one Redis connection each)
PARALLEL = 64


def _sentence(rng: random.Random, words: int) -> str:
    picked = [rng.choice(_WORDS) for _ in range(words)]
    return " ".join(picked).capitalize() + "."


def _text(rng: random.Random, low: int, high: int) -> str:
    total, parts = rng.randint(low, high), []
    while total > 0:
        size = min(total, rng.randint(8, 16))
        parts.append(_sentence(rng, size))
        total -= size
    return " ".join(parts)


def conversation(count: int, seed: int = 0) -> list[Line]:
    """``count`` messages, user first, alternating with assistant answers."""
    rng = random.Random(seed)
    return [
        ("user", _text(rng, 20, 40)) if index % 2 == 0 else ("assistant", _text(rng, 60, 120)) for index in range(count)
    ]


async def gather_bounded(calls: Iterable[Awaitable[T]], parallel: int = PARALLEL) -> list[T]:
    """Await ``calls`` with at most ``parallel`` in flight; results in order."""
    gate = asyncio.Semaphore(parallel)

    async def one(call: Awaitable[T]) -> T:
        async with gate:
            return await call

    return await asyncio.gather(*(one(call) for call in calls))


def _stored(lines: list[Line], now: float) -> list[StoredMessage]:
    return [StoredMessage(id=new_message_id(), role=role, content=text, created_at=ms(now)) for role, text in lines]


async def create_chats(
    store: ChatStore, owner: str, conversations: list[list[Line]], *, step: float = 1.0
) -> list[str]:
    """One chat per conversation, the first the most recently active (each ``step`` seconds older than the
    one before it, so the list order is the creation order); their ids in that order."""
    now = time.time()
    calls = (
        store.create(
            owner,
            NewChat(title=f"Bench chat {index}", title_auto=False, persona="maya", scope="internal"),
            _stored(lines, now - index * step),
            now - index * step,
        )
        for index, lines in enumerate(conversations)
    )
    return [summary.id for summary in await gather_bounded(calls)]


async def delete_chats(store: ChatStore, owner: str, chat_ids: list[str]) -> None:
    await gather_bounded(store.delete(owner, chat_id) for chat_id in chat_ids)
