"""``ChatService``: a generation's turn on a saved chat, and the reads and edits of a user's chats.

A turn: ``begin`` takes the chat for the job (a new chat is created holding the client's messages; an
existing one is locked, 409 while another job holds it unless that job has ended, and its new messages
found), ``abandon`` undoes ``begin`` for a job that will never run. The new messages travel in the job
(``ChatTurn.turns``), and the worker saves them with the reply when the job ends, in one step.
"""

import secrets
import time
from collections.abc import Sequence
from typing import NamedTuple

from services.api.chats.personas import Personas
from services.api.chats.turns import Said, new_lines
from services.api.ports import JobStarter
from services.stores.chats import (
    ChatLimitError,
    ChatPage,
    ChatRead,
    ChatStore,
    ChatSummary,
    ForkOrigin,
    NewChat,
    StoredMessage,
    ms,
    new_message_id,
)
from shared.errors import ErrorCode, GatewayError, InvalidRequestError

__all__ = ["ChatService", "Turn", "job_time", "new_job_id"]


class Turn(NamedTuple):
    chat: ChatSummary
    #: the chat's messages the model sees (saved ones, then the new ones)
    history: list[StoredMessage]
    #: the client's new messages, saved with the reply (none for a new chat: it was created holding them)
    pending: list[StoredMessage]
    created: bool


def new_job_id() -> str:
    """A chat job's id: 32 hex digits like every job's, the first 11 its creation time in ms, so a chat's lock
    (which holds its job's id) tells how old it is."""
    return f"{int(time.time() * 1000):011x}{secrets.token_hex(11)[:21]}"


def job_time(job_id: str) -> float:
    """When a chat job was created (``new_job_id``); 0 for an id of another form."""
    try:
        return int(job_id[:11], 16) / 1000 if len(job_id) == 32 else 0.0  # noqa: PLR2004
    except ValueError:
        return 0.0


def _need_user(messages: Sequence[Said | StoredMessage]) -> None:
    if not any(message.role == "user" for message in messages):
        raise InvalidRequestError("chat_history needs a user message for the model to answer", param="chat_history")


def missing(chat_id: str) -> InvalidRequestError:
    return InvalidRequestError(f"no chat {chat_id!r}", code=ErrorCode.NOT_FOUND, param="chatId")


def limit_error(exc: ChatLimitError) -> GatewayError:
    if exc.limit == "chats":
        return GatewayError(
            f"you have {exc.cap} chats, the most allowed; delete some first", code=ErrorCode.PERMISSION_DENIED
        )
    return GatewayError(f"a chat may hold at most {exc.cap} messages", code=ErrorCode.REQUEST_TOO_LARGE)


def stored(lines: Sequence[Said], now: float) -> list[StoredMessage]:
    """Messages a client sent, as a chat keeps them (new ids, created ``now``)."""
    created = ms(now)
    return [
        StoredMessage(id=new_message_id(), role=line.role, content=line.content, created_at=created) for line in lines
    ]


class ChatService:
    def __init__(
        self, store: ChatStore, jobs: JobStarter, personas: Personas, *, max_messages: int, lock_ttl: float
    ) -> None:
        self.store = store
        self.personas = personas
        self._jobs = jobs
        self.max_messages = max_messages
        self._lock_ttl = lock_ttl

    async def begin(self, owner: str, chat_id: str | None, lines: Sequence[Said], new: NewChat, job_id: str) -> Turn:
        now = time.time()
        if not chat_id:
            _need_user(lines)
            messages = stored(lines, now)
            try:
                chat = await self.store.create(owner, new, messages, now)
            except ChatLimitError as exc:
                raise limit_error(exc) from None
            await self.store.lock(chat.id, job_id, self._lock_ttl)
            return Turn(chat, messages, [], created=True)
        opened = await self.store.open_turn(owner, chat_id, job_id, self._lock_ttl)
        if opened is not None and opened.holder is not None:
            await self._take_over(chat_id, opened.holder, job_id)
            opened = await self.store.read(owner, chat_id)
        if opened is None:
            await self.store.unlock(chat_id, job_id)  # deleted meanwhile (a no-op when the lock is not ours)
            raise missing(chat_id)
        chat, saved = opened.chat, opened.messages
        try:
            pending = stored(new_lines(saved, lines), now)
            _need_user([*saved, *pending])
            if self.max_messages and len(saved) + len(pending) + 1 > self.max_messages:
                raise GatewayError(
                    f"a chat may hold at most {self.max_messages} messages; this one holds {len(saved)}",
                    code=ErrorCode.REQUEST_TOO_LARGE,
                )
        except BaseException:
            await self.store.unlock(chat_id, job_id)
            raise
        return Turn(chat, [*saved, *pending], pending, created=False)

    async def _take_over(self, chat_id: str, holder: str, job_id: str) -> None:
        """Take the chat from ``holder`` if its job has ended; else 409."""
        if await self._jobs.ended(holder, job_time(holder)):  # it ended without letting go (its worker died)
            if await self.store.steal(chat_id, holder, job_id, self._lock_ttl):
                return
            if await self.store.lock(chat_id, job_id, self._lock_ttl) is None:  # it ran out meanwhile
                return
        raise GatewayError(
            f"chat {chat_id!r} is generating a reply already; wait for it to finish", code=ErrorCode.CONFLICT
        )

    async def abandon(self, owner: str, turn: Turn, job_id: str) -> None:
        """The job will never run: a chat the turn created goes; an existing one is let go."""
        if turn.created:
            await self.store.delete(owner, turn.chat.id)
        else:
            await self.store.unlock(turn.chat.id, job_id)

    async def read(self, owner: str, chat_id: str) -> ChatRead:
        found = await self.store.read(owner, chat_id)
        if found is None:
            raise missing(chat_id)
        return found

    async def require(self, owner: str, chat_id: str) -> ChatSummary:
        chat = await self.store.summary(owner, chat_id)
        if chat is None:
            raise missing(chat_id)
        return chat

    async def page(self, owner: str, limit: int, after: str | None) -> ChatPage:
        page = await self.store.page(owner, limit, after)
        if page is None:
            raise InvalidRequestError(f"no chat {after!r} to list after (it may have been deleted)", param="after")
        return page

    async def fork(self, owner: str, chat_id: str, message_id: str) -> tuple[ChatSummary, list[StoredMessage]]:
        found = await self.read(owner, chat_id)
        chat, messages = found.chat, found.messages
        index = next((i for i, m in enumerate(messages) if m.id == message_id), None)
        if index is None:
            raise InvalidRequestError(
                f"chat {chat_id!r} has no message {message_id!r}", code=ErrorCode.NOT_FOUND, param="messageId"
            )
        kept = messages[: index + 1]
        origin = ForkOrigin(chat_id=chat_id, message_id=message_id)
        new = NewChat(
            title=chat.title,
            title_auto=chat.title_auto,
            persona=chat.persona,
            scope=chat.scope,
            username=chat.username,
            source=chat.source,
            forked_from=origin,
        )
        return await self.create(owner, new, kept), kept

    async def create(self, owner: str, new: NewChat, messages: list[StoredMessage]) -> ChatSummary:
        try:
            return await self.store.create(owner, new, messages, time.time())
        except ChatLimitError as exc:
            raise limit_error(exc) from None
