"""Chat histories: the ``ChatStore`` port, and the records it keeps.

A chat belongs to one user (``owner``). Every method takes the caller's user id and treats another user's
chat exactly like one that does not exist (``None`` / ``False``), so a route can answer both with one 404.

Messages are append-only and each has a stable id (``msg_…``); a chat's summary (title, pinned, times,
message count, a short preview of its last message) is kept beside them, so listing a user's chats never
reads their messages. A user's chats are listed pinned first, then by latest activity (``updated``), newest
first, with a cursor (the id of the last chat of the previous page).

At most one generation runs on a chat at a time: ``lock`` takes the chat for a job (refusing while another
job holds it), and ``finish_turn`` saves that job's reply and lets go in one step, in the worker, which is
the one process that always sees a job end.

Implementations: ``RedisChatStore`` (``services.stores.redis_chats``) and ``MemoryChatStore``
(``services.stores.memory_chats``, for unit tests only).
"""

import secrets
from collections.abc import Sequence
from typing import Literal, NamedTuple, Protocol

import msgspec

__all__ = [
    "PINNED_RANK",
    "PREVIEW_CHARS",
    "ChatLimitError",
    "decode_messages",
    "encode_messages",
    "ms",
    "ChatLimits",
    "ChatPage",
    "ChatRead",
    "ChatStore",
    "ChatSummary",
    "ForkOrigin",
    "MessageUsage",
    "NewChat",
    "StoredMessage",
    "list_rank",
    "new_chat_id",
    "new_message_id",
    "new_summary",
    "preview_of",
]

#: characters of the last message kept as a chat's preview
PREVIEW_CHARS = 120

#: added to a pinned chat's rank: above any time in ms until the year 2286, and the sum (< 2**53) is exact in
#: a double, so a Redis sorted-set score holds a rank exactly
PINNED_RANK = 10**13

MessageRole = Literal["system", "user", "assistant", "tool"]
#: ``complete``: the whole answer; ``cut_short``: the job was cancelled (or failed) after part of it
MessageStatus = Literal["complete", "cut_short"]


class _Record(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    pass


class MessageUsage(_Record, frozen=True, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class StoredMessage(_Record, frozen=True, kw_only=True, rename={"created_at": "createdAt"}):
    """One message of a chat. Its JSON is the message as the API shows it (``GET /api/v1/chat/fetch``), so a chat
    is answered with its stored messages as they are. ``model``, ``persona``, ``usage`` and ``status`` are an
    assistant reply's (absent from other messages)."""

    id: str
    role: MessageRole
    content: str
    #: when it was saved, in milliseconds since the Unix epoch
    created_at: int
    model: str | None = None
    persona: str | None = None
    usage: MessageUsage | None = None
    status: MessageStatus | None = None
    #: why a reply was cut short (the job's error code: ``cancelled``, ``upstream_timeout``, ...)
    error: str | None = None


class ForkOrigin(_Record, frozen=True, kw_only=True):
    chat_id: str
    message_id: str


class ChatSummary(_Record, frozen=True, kw_only=True):
    id: str
    owner: str
    title: str
    created: float
    updated: float
    pinned: bool = False
    message_count: int = 0
    #: the first ``PREVIEW_CHARS`` characters of the last message
    preview: str = ""
    #: the title was made from the first user message (a model may replace it later); False once a user set one
    title_auto: bool = False
    persona: str = ""
    scope: str = ""
    username: str = ""
    source: str = ""
    forked_from: ForkOrigin | None = None


class NewChat(_Record, frozen=True, kw_only=True):
    """What ``create`` needs besides the messages."""

    title: str
    title_auto: bool = False
    persona: str = ""
    scope: str = ""
    username: str = ""
    source: str = ""
    forked_from: ForkOrigin | None = None


class ChatPage(_Record, frozen=True, kw_only=True):
    chats: list[ChatSummary]
    has_more: bool = False


class ChatRead(NamedTuple):
    """A chat with its messages, read in one step (``read``, ``open_turn``)."""

    chat: ChatSummary
    #: its messages, oldest first, as one JSON array (``StoredMessage``'s JSON: what the API shows)
    raw: bytes
    #: ``open_turn`` only: the job holding the chat, when it was refused (then ``raw`` is ``[]``)
    holder: str | None = None

    @property
    def messages(self) -> list[StoredMessage]:
        return decode_messages(self.raw)


_decode_messages = msgspec.json.Decoder(list[StoredMessage]).decode
encode_messages = msgspec.json.Encoder().encode


def decode_messages(raw: bytes) -> list[StoredMessage]:
    """Messages from their JSON array (``ChatRead.raw``)."""
    return _decode_messages(raw)


def ms(seconds: float) -> int:
    """Unix seconds as the milliseconds a message's ``created_at`` holds."""
    return int(seconds * 1000)


class ChatLimits(_Record, frozen=True, kw_only=True):
    """Caps enforced by the store (0: none)."""

    max_chats: int = 0
    max_messages: int = 0


class ChatLimitError(Exception):
    """A cap would be passed: ``limit`` is ``"chats"`` or ``"messages"``, ``cap`` its value."""

    def __init__(self, limit: str, cap: int) -> None:
        super().__init__(f"{limit} cap {cap} reached")
        self.limit = limit
        self.cap = cap


def new_summary(owner: str, chat: NewChat, messages: Sequence[StoredMessage], now: float) -> ChatSummary:
    """The summary of a chat ``create`` makes (a new id; ``created`` and ``updated`` are ``now``)."""
    return ChatSummary(
        id=new_chat_id(),
        owner=owner,
        title=chat.title,
        created=now,
        updated=now,
        message_count=len(messages),
        preview=preview_of(messages[-1].content) if messages else "",
        title_auto=chat.title_auto,
        persona=chat.persona,
        scope=chat.scope,
        username=chat.username,
        source=chat.source,
        forked_from=chat.forked_from,
    )


def new_chat_id() -> str:
    return "chat_" + secrets.token_hex(12)


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def preview_of(content: str) -> str:
    return content[:PREVIEW_CHARS]


def list_rank(updated: float, pinned: bool) -> int:
    """A chat's place in its owner's list, highest first: ``updated`` in whole ms, plus ``PINNED_RANK`` when
    pinned. Chats of equal rank are listed by id, greatest first (as a Redis sorted set reversed lists them)."""
    return int(updated * 1000) + (PINNED_RANK if pinned else 0)


class ChatStore(Protocol):
    async def create(self, owner: str, chat: NewChat, messages: list[StoredMessage], now: float) -> ChatSummary:
        """A new chat holding ``messages``; ``ChatLimitError`` past ``max_chats`` or ``max_messages``."""
        ...

    async def summary(self, owner: str, chat_id: str) -> ChatSummary | None: ...

    async def messages(self, owner: str, chat_id: str) -> list[StoredMessage] | None:
        """The chat's messages, oldest first; None if it is not the owner's (or does not exist)."""
        ...

    async def read(self, owner: str, chat_id: str) -> ChatRead | None:
        """The chat and its messages in one step; None if it is not the owner's (or does not exist)."""
        ...

    async def open_turn(self, owner: str, chat_id: str, job_id: str, ttl: float) -> ChatRead | None:
        """``lock`` and ``read`` in one step: the chat taken for ``job_id`` with its messages, or (another job
        holding it) the holder's id and no messages; None if it is not the owner's (or does not exist)."""
        ...

    async def page(self, owner: str, limit: int, after: str | None = None) -> ChatPage | None:
        """Up to ``limit`` chats after the chat ``after`` (pinned first, then newest activity first); None when
        ``after`` is not one of the owner's chats."""
        ...

    async def update(
        self, owner: str, chat_id: str, *, title: str | None = None, pinned: bool | None = None, now: float
    ) -> ChatSummary | None:
        """Set the title (no longer automatic) and/or pinned; ``updated`` moves only with a title change."""
        ...

    async def delete(self, owner: str, chat_id: str) -> bool: ...

    async def append(self, owner: str, chat_id: str, messages: list[StoredMessage], now: float) -> ChatSummary | None:
        """Add ``messages`` at the end; ``ChatLimitError`` past ``max_messages``."""
        ...

    async def lock(self, chat_id: str, job_id: str, ttl: float) -> str | None:
        """Take the chat for ``job_id`` for at most ``ttl`` seconds; the holder's job id if another job holds it.
        A job that holds the chat already keeps it, for ``ttl`` from now. The chat need not exist (a lock is
        taken by job, not by owner)."""
        ...

    async def steal(self, chat_id: str, holder: str, job_id: str, ttl: float) -> bool:
        """Take the chat from ``holder`` (a job known to have ended) if it still holds it: a compare-and-set,
        so False when another job (or nobody) holds it now."""
        ...

    async def unlock(self, chat_id: str, job_id: str) -> None:
        """Let go of the chat if ``job_id`` holds it."""
        ...

    async def finish_turn(
        self, owner: str, chat_id: str, job_id: str, messages: Sequence[StoredMessage], now: float
    ) -> None:
        """A generation's end, in one step: append ``messages`` (the turn's new messages and its reply; never
        refused by ``max_messages``, their place was checked when the turn began) and let go of the chat if
        ``job_id`` holds it. A chat deleted meanwhile stays deleted (the messages are dropped)."""
        ...

    async def retitle(self, owner: str, chat_id: str, title: str) -> bool:
        """Replace an automatic title (a model's better one); False if a user set the title, or the chat is gone.
        ``updated`` does not move."""
        ...
