"""``MemoryChatStore``: the ``ChatStore`` port in dicts, with ``RedisChatStore``'s semantics, for unit tests only.

Locks run out by ``time.monotonic``. Nothing awaits inside a method, so each one is atomic as a script is.
"""

import time
from collections.abc import Sequence

import msgspec

from services.stores.chats import (
    ChatLimitError,
    ChatLimits,
    ChatPage,
    ChatRead,
    ChatSummary,
    NewChat,
    StoredMessage,
    encode_messages,
    list_rank,
    new_summary,
    preview_of,
)

__all__ = ["MemoryChatStore"]


class MemoryChatStore:
    def __init__(self, limits: ChatLimits) -> None:
        self._limits = limits
        self._chats: dict[str, ChatSummary] = {}
        self._messages: dict[str, list[StoredMessage]] = {}
        #: chat id -> (job id, when the hold runs out on the monotonic clock)
        self._locks: dict[str, tuple[str, float]] = {}

    def _own(self, owner: str, chat_id: str) -> ChatSummary | None:
        chat = self._chats.get(chat_id)
        return chat if chat is not None and chat.owner == owner else None

    def _listed(self, owner: str) -> list[ChatSummary]:
        chats = [chat for chat in self._chats.values() if chat.owner == owner]
        return sorted(chats, key=lambda chat: (list_rank(chat.updated, chat.pinned), chat.id), reverse=True)

    async def create(self, owner: str, chat: NewChat, messages: list[StoredMessage], now: float) -> ChatSummary:
        limits = self._limits
        if limits.max_chats and sum(1 for held in self._chats.values() if held.owner == owner) >= limits.max_chats:
            raise ChatLimitError("chats", limits.max_chats)
        if limits.max_messages and len(messages) > limits.max_messages:
            raise ChatLimitError("messages", limits.max_messages)
        summary = new_summary(owner, chat, messages, now)
        self._chats[summary.id] = summary
        self._messages[summary.id] = list(messages)
        return summary

    async def summary(self, owner: str, chat_id: str) -> ChatSummary | None:
        return self._own(owner, chat_id)

    async def messages(self, owner: str, chat_id: str) -> list[StoredMessage] | None:
        return list(self._messages[chat_id]) if self._own(owner, chat_id) is not None else None

    async def read(self, owner: str, chat_id: str) -> ChatRead | None:
        chat = self._own(owner, chat_id)
        return None if chat is None else ChatRead(chat, encode_messages(self._messages[chat_id]))

    async def open_turn(self, owner: str, chat_id: str, job_id: str, ttl: float) -> ChatRead | None:
        chat = self._own(owner, chat_id)
        if chat is None:
            return None
        holder = await self.lock(chat_id, job_id, ttl)
        if holder is not None:
            return ChatRead(chat, b"[]", holder)
        return ChatRead(chat, encode_messages(self._messages[chat_id]))

    async def page(self, owner: str, limit: int, after: str | None = None) -> ChatPage | None:
        chats = self._listed(owner)
        start = 0
        if after:
            ids = [chat.id for chat in chats]
            if after not in ids:
                return None
            start = ids.index(after) + 1
        end = start + max(limit, 0)
        return ChatPage(chats=chats[start:end], has_more=len(chats) > end)

    async def update(
        self, owner: str, chat_id: str, *, title: str | None = None, pinned: bool | None = None, now: float
    ) -> ChatSummary | None:
        chat = self._own(owner, chat_id)
        if chat is None:
            return None
        if title is not None:
            chat = msgspec.structs.replace(chat, title=title, title_auto=False, updated=now)
        if pinned is not None:
            chat = msgspec.structs.replace(chat, pinned=pinned)
        self._chats[chat_id] = chat
        return chat

    async def delete(self, owner: str, chat_id: str) -> bool:
        if self._own(owner, chat_id) is None:
            return False
        del self._chats[chat_id], self._messages[chat_id]
        self._locks.pop(chat_id, None)
        return True

    async def append(self, owner: str, chat_id: str, messages: list[StoredMessage], now: float) -> ChatSummary | None:
        return self._add(owner, chat_id, messages, now, self._limits.max_messages)

    def _add(self, owner: str, chat_id: str, messages: list[StoredMessage], now: float, cap: int) -> ChatSummary | None:
        chat = self._own(owner, chat_id)
        if chat is None or not messages:
            return chat
        if cap and chat.message_count + len(messages) > cap:
            raise ChatLimitError("messages", cap)
        self._messages[chat_id].extend(messages)
        chat = msgspec.structs.replace(
            chat,
            message_count=chat.message_count + len(messages),
            updated=now,
            preview=preview_of(messages[-1].content),
        )
        self._chats[chat_id] = chat
        return chat

    def _holder(self, chat_id: str) -> str | None:
        held = self._locks.get(chat_id)
        if held is None or held[1] <= time.monotonic():
            self._locks.pop(chat_id, None)
            return None
        return held[0]

    async def lock(self, chat_id: str, job_id: str, ttl: float) -> str | None:
        holder = self._holder(chat_id)
        if holder is not None and holder != job_id:
            return holder
        self._locks[chat_id] = (job_id, time.monotonic() + ttl)
        return None

    async def steal(self, chat_id: str, holder: str, job_id: str, ttl: float) -> bool:
        if self._holder(chat_id) != holder:
            return False
        self._locks[chat_id] = (job_id, time.monotonic() + ttl)
        return True

    async def unlock(self, chat_id: str, job_id: str) -> None:
        if self._holder(chat_id) == job_id:
            del self._locks[chat_id]

    async def finish_turn(
        self, owner: str, chat_id: str, job_id: str, messages: Sequence[StoredMessage], now: float
    ) -> None:
        held = self._messages.get(chat_id) or []
        if not (messages and held and held[-1] == messages[-1]):  # else sent twice: saved already
            self._add(owner, chat_id, list(messages), now, 0)
        await self.unlock(chat_id, job_id)

    async def retitle(self, owner: str, chat_id: str, title: str) -> bool:
        chat = self._own(owner, chat_id)
        if chat is None or not chat.title_auto:
            return False
        self._chats[chat_id] = msgspec.structs.replace(chat, title=title)
        return True
