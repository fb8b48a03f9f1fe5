"""``RedisChatStore``: chats in Redis, every change one Lua script call (atomic, one round trip).

A chat is three keys (``shared.keys``): ``chat(id)``, a hash of its summary; ``chat_messages(id)``, a list
of its messages as JSON, oldest first; ``chat_lock(id)``, the id of the job generating its reply (with a
TTL). ``user_chats(user)`` is a sorted set ranking the user's chats (``list_rank``: pinned first, then
latest activity), which pages are read from: the rank of the previous page's last chat (ZREVRANK), the
next ids, and their summaries, in one script. Chats have no TTL: they are kept until deleted.

The scripts (``chat_*.lua`` beside this module) check the owner themselves, so a chat of another user's is
refused in the same step that would change it.
"""

import importlib.resources
import math
from collections.abc import Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from services.redis_calls import GroupedCalls, raised
from services.stores.chats import (
    PINNED_RANK,
    ChatLimitError,
    ChatLimits,
    ChatPage,
    ChatRead,
    ChatSummary,
    ForkOrigin,
    NewChat,
    StoredMessage,
    list_rank,
    new_summary,
    preview_of,
)
from shared import keys

__all__ = ["RedisChatStore"]

_SCRIPTS = importlib.resources.files("services.stores")
_encode = msgspec.json.Encoder().encode


def _text(value: bytes | None) -> str:
    return value.decode() if value is not None else ""


def _summary(chat_id: str, fields: dict[bytes, bytes]) -> ChatSummary:
    """A summary from its hash (HGETALL)."""
    forked_chat = _text(fields.get(b"forked_chat"))
    return ChatSummary(
        id=chat_id,
        owner=_text(fields.get(b"owner")),
        title=_text(fields.get(b"title")),
        created=float(fields[b"created"]),
        updated=float(fields[b"updated"]),
        pinned=fields.get(b"pinned") == b"1",
        message_count=int(fields.get(b"count", b"0")),
        preview=_text(fields.get(b"preview")),
        title_auto=fields.get(b"title_auto") == b"1",
        persona=_text(fields.get(b"persona")),
        scope=_text(fields.get(b"scope")),
        username=_text(fields.get(b"username")),
        source=_text(fields.get(b"source")),
        forked_from=ForkOrigin(chat_id=forked_chat, message_id=_text(fields.get(b"forked_message")))
        if forked_chat
        else None,
    )


def _pairs(flat: list[bytes] | dict[bytes, bytes]) -> dict[bytes, bytes]:
    """A hash from an HGETALL reply: a script's (field, value, field, value, ...), or a map (RESP3)."""
    if isinstance(flat, dict):
        return flat
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _hash(summary: ChatSummary) -> list[str]:
    """A new chat's summary as hash fields and values, flat."""
    origin = summary.forked_from
    fields = {
        "owner": summary.owner,
        "title": summary.title,
        "title_auto": "1" if summary.title_auto else "0",
        "pinned": "1" if summary.pinned else "0",
        "created": repr(summary.created),
        "updated": repr(summary.updated),
        "count": str(summary.message_count),
        "preview": summary.preview,
        "persona": summary.persona,
        "scope": summary.scope,
        "username": summary.username,
        "source": summary.source,
        "forked_chat": origin.chat_id if origin is not None else "",
        "forked_message": origin.message_id if origin is not None else "",
    }
    return [item for pair in fields.items() for item in pair]


def _append_call(
    owner: str, chat_id: str, messages: Sequence[StoredMessage], now: float, cap: int, job_id: str
) -> tuple[list[str], list[Any]]:
    """The keys and arguments of ``chat_append.lua``."""
    keys_ = [keys.chat(chat_id), keys.chat_messages(chat_id), keys.user_chats(owner), keys.chat_lock(chat_id)]
    args = [
        owner,
        chat_id,
        cap,
        repr(now),
        list_rank(now, pinned=False),
        PINNED_RANK,
        preview_of(messages[-1].content) if messages else "",
        job_id,
        *(_encode(message) for message in messages),
    ]
    return keys_, args


def _source(name: str) -> str:
    return _SCRIPTS.joinpath(name).read_text()


def _ms(ttl: float) -> int:
    return max(1, math.ceil(ttl * 1000))


class RedisChatStore:
    def __init__(self, redis: "aioredis.Redis", limits: ChatLimits) -> None:
        self._redis = redis
        self._limits = limits
        self._create = self._script("chat_create.lua")
        self._append = self._script("chat_append.lua")
        self._update = self._script("chat_update.lua")
        self._delete = self._script("chat_delete.lua")
        self._retitle = self._script("chat_retitle.lua")
        self._lock = self._script("lock.lua")
        self._page = self._script("ranked_page.lua")
        self._open = self._script("chat_open.lua")
        # the reads a request waits for go grouped, on a connection of their own (no pipeline object, no pool
        # checkout: those were 40 % of a fetch's time); each may run twice (taking the lock again is a no-op
        # for the job holding it), so a connection Redis closed (a restart) costs a resend, not an error
        self._reads = GroupedCalls(redis, scripts=[_source("chat_open.lua"), _source("ranked_page.lua")], resend=True)

    async def aclose(self) -> None:
        """Close the reads' own connection (the client is the caller's)."""
        await self._reads.aclose()

    def _script(self, name: str) -> AsyncScript:
        return self._redis.register_script(_source(name))

    async def create(self, owner: str, chat: NewChat, messages: list[StoredMessage], now: float) -> ChatSummary:
        summary = new_summary(owner, chat, messages, now)
        fields = _hash(summary)
        refused: bytes = await self._create(
            keys=[keys.chat(summary.id), keys.chat_messages(summary.id), keys.user_chats(owner)],
            args=[
                summary.id,
                list_rank(now, pinned=False),
                self._limits.max_chats,
                self._limits.max_messages,
                len(fields),
                *fields,
                *(_encode(message) for message in messages),
            ],
        )
        if refused:
            limit = refused.decode()
            raise ChatLimitError(limit, self._limits.max_chats if limit == "chats" else self._limits.max_messages)
        return summary

    async def summary(self, owner: str, chat_id: str) -> ChatSummary | None:
        (flat,) = raised(await self._reads([("HGETALL", keys.chat(chat_id))]))
        fields = _pairs(flat)
        if fields.get(b"owner") != owner.encode():
            return None
        return _summary(chat_id, fields)

    async def messages(self, owner: str, chat_id: str) -> list[StoredMessage] | None:
        found = await self.read(owner, chat_id)
        return None if found is None else found.messages

    async def read(self, owner: str, chat_id: str) -> ChatRead | None:
        return await self._read(owner, chat_id, "", 0.0)

    async def open_turn(self, owner: str, chat_id: str, job_id: str, ttl: float) -> ChatRead | None:
        return await self._read(owner, chat_id, job_id, ttl)

    async def _read(self, owner: str, chat_id: str, job_id: str, ttl: float) -> ChatRead | None:
        """One round trip: (the lock, by a script that checks the owner first,) the summary and the messages.
        Plain reads, not a script: Redis copies a list into a script's Lua and back, which costs more than the
        round trip (a chat of 200 messages: 2.5 ms through a script, 0.8 ms as LRANGE)."""
        lock = [("EVALSHA", self._open.sha, 2, keys.chat(chat_id), keys.chat_lock(chat_id), owner, job_id, _ms(ttl))]
        reads = [("HGETALL", keys.chat(chat_id)), ("LRANGE", keys.chat_messages(chat_id), 0, -1)]
        *taken, flat, messages = raised(await self._reads([*lock, *reads] if job_id else reads))
        fields = _pairs(flat)
        if fields.get(b"owner") != owner.encode() or (taken and taken[0] == -1):
            return None
        summary = _summary(chat_id, fields)
        if taken and taken[0] != 0:
            return ChatRead(summary, b"[]", taken[0].decode())
        return ChatRead(summary, b"[" + b",".join(messages) + b"]")

    async def page(self, owner: str, limit: int, after: str | None = None) -> ChatPage | None:
        (reply,) = raised(
            await self._reads(
                [("EVALSHA", self._page.sha, 1, keys.user_chats(owner), after or "", max(limit, 0), keys.chat(""))]
            )
        )
        if reply is None:
            return None
        chats = [_summary(chat_id.decode(), _pairs(flat)) for chat_id, flat in reply[1:]]
        return ChatPage(chats=chats, has_more=reply[0] == 1)

    async def update(
        self, owner: str, chat_id: str, *, title: str | None = None, pinned: bool | None = None, now: float
    ) -> ChatSummary | None:
        pin = "" if pinned is None else "1" if pinned else "0"
        flat: list[bytes] | None = await self._update(
            keys=[keys.chat(chat_id), keys.user_chats(owner)],
            args=[
                owner,
                chat_id,
                "0" if title is None else "1",
                title or "",
                pin,
                repr(now),
                list_rank(now, pinned=False),
                PINNED_RANK,
            ],
        )
        return None if flat is None else _summary(chat_id, _pairs(flat))

    async def delete(self, owner: str, chat_id: str) -> bool:
        deleted: int = await self._delete(
            keys=[keys.chat(chat_id), keys.chat_messages(chat_id), keys.chat_lock(chat_id), keys.user_chats(owner)],
            args=[owner, chat_id],
        )
        return deleted == 1

    async def append(self, owner: str, chat_id: str, messages: list[StoredMessage], now: float) -> ChatSummary | None:
        return await self._add(owner, chat_id, messages, now, self._limits.max_messages, job_id="")

    async def _add(
        self, owner: str, chat_id: str, messages: Sequence[StoredMessage], now: float, cap: int, job_id: str
    ) -> ChatSummary | None:
        call = _append_call(owner, chat_id, messages, now, cap, job_id)
        reply: bytes | list[bytes] | None = await self._append(*call)
        if isinstance(reply, bytes):
            raise ChatLimitError(reply.decode(), cap)
        return None if reply is None else _summary(chat_id, _pairs(reply))

    async def lock(self, chat_id: str, job_id: str, ttl: float) -> str | None:
        holder: bytes | None = await self._lock(keys=[keys.chat_lock(chat_id)], args=["take", job_id, _ms(ttl)])
        return None if holder is None else holder.decode()

    async def steal(self, chat_id: str, holder: str, job_id: str, ttl: float) -> bool:
        taken: int = await self._lock(keys=[keys.chat_lock(chat_id)], args=["steal", job_id, _ms(ttl), holder])
        return taken == 1

    async def unlock(self, chat_id: str, job_id: str) -> None:
        await self._lock(keys=[keys.chat_lock(chat_id)], args=["drop", job_id])

    async def finish_turn(
        self, owner: str, chat_id: str, job_id: str, messages: Sequence[StoredMessage], now: float
    ) -> None:
        await self._redis.execute_command(*self.finish_turn_command(owner, chat_id, job_id, messages, now))  # type: ignore[no-untyped-call]

    def finish_turn_command(
        self, owner: str, chat_id: str, job_id: str, messages: Sequence[StoredMessage], now: float
    ) -> tuple[Any, ...]:
        """``finish_turn`` as one command, for a caller that sends it in a round trip of its own: the worker,
        ahead of the job's terminal event. ``EVAL``, not ``EVALSHA``: it needs no script loaded beforehand
        (Redis caches the script by its digest all the same). Sent twice (a retried round trip), it saves
        nothing twice."""
        keys_, args = _append_call(owner, chat_id, messages, now, 0, job_id)
        return ("EVAL", self._append.script, len(keys_), *keys_, *args)

    async def retitle(self, owner: str, chat_id: str, title: str) -> bool:
        replaced: int = await self._retitle(keys=[keys.chat(chat_id)], args=[owner, title])
        return replaced == 1
