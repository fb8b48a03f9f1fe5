"""The chat API's JSON bodies and stream frames, as Structs for ``/openapi.json`` (documentation only: the bodies
are built in ``translate.py``, ``sse.py`` and ``chats/personas.py``; ``docs.py`` holds examples made by them)."""

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

__all__ = [
    "FRAMES",
    "ChatFailure",
    "ChatFinalResponse",
    "ChatForkOrigin",
    "ChatGenerateResponse",
    "ChatHistoryPage",
    "ChatMetadata",
    "ChatOneOffResponse",
    "ChatResult",
    "ChatStreamError",
    "ChatStreamMetadata",
    "ChatThinkingUpdate",
    "ChatTime",
    "ChatUsage",
    "PersonaInfo",
    "PersonaList",
    "SavedChat",
    "SavedChatSummary",
    "SavedMessage",
]


class _Exact(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Documentation-only: every field the gateway sends, and nothing else."""


class ChatUsage(_Exact, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatResult(_Exact, kw_only=True):
    message: Annotated[str, Meta(description="The reply.")]
    persona: Annotated[str, Meta(description="The persona that answered.")]


class ChatGenerateResponse(_Exact, kw_only=True):
    """`POST /api/v1/chat/generate`'s answer (201); the chat holds the reply when it is sent."""

    result: ChatResult
    chatId: Annotated[str, Meta(description="The chat (new unless the request named one).")]  # noqa: N815
    title: str
    researchMode: Literal[False]  # noqa: N815
    stream: Literal[False]


class ChatTime(_Exact, kw_only=True):
    timeTaken: Annotated[int, Meta(description="Milliseconds from admission to the reply's end.")]  # noqa: N815


class ChatOneOffResponse(_Exact, kw_only=True):
    """`POST /api/v1/chat`'s answer: nothing is saved."""

    result: ChatResult
    metadata: ChatTime


class ChatForkOrigin(_Exact, kw_only=True):
    chatId: str  # noqa: N815
    messageId: str  # noqa: N815


_Ms = Annotated[int, Meta(description="Milliseconds since the Unix epoch.")]


class SavedChatSummary(_Exact, kw_only=True):
    """A saved chat, without its messages."""

    id: str
    title: str
    pinned: bool
    createdAt: _Ms  # noqa: N815
    updatedAt: Annotated[int, Meta(description="Milliseconds since the epoch of its last change.")]  # noqa: N815
    messageCount: int  # noqa: N815
    preview: Annotated[str, Meta(description="The start of its last message (120 characters).")]
    persona: str | None
    scope: str | None
    username: str | None
    source: str | None
    forkedFrom: ChatForkOrigin | UnsetType = UNSET  # noqa: N815


class SavedMessage(_Exact, kw_only=True):
    """A message of a chat; `model`, `persona`, `usage` and `status` (and `error`) are those of a reply the
    gateway wrote (an assistant message a client saved itself, with `/new` or in `chat_history`, has none)."""

    id: str
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    createdAt: _Ms  # noqa: N815
    model: str | UnsetType | None = UNSET
    persona: str | UnsetType | None = UNSET
    usage: ChatUsage | UnsetType | None = UNSET
    status: (
        Annotated[
            Literal["complete", "cut_short"],
            Meta(description="`cut_short`: the job was cancelled or failed after part of the reply."),
        ]
        | UnsetType
    ) = UNSET
    error: Annotated[str, Meta(description="Why it was cut short (`cancelled`, an error code).")] | UnsetType = UNSET


class SavedChat(SavedChatSummary, kw_only=True):
    """A saved chat with its messages, oldest first."""

    messages: list[SavedMessage]


class ChatHistoryPage(_Exact, kw_only=True):
    chats: list[SavedChatSummary]
    hasMore: bool  # noqa: N815
    nextCursor: Annotated[str | None, Meta(description="`after` for the next page (null on the last).")]  # noqa: N815


class PersonaInfo(_Exact, kw_only=True):
    name: str
    description: str
    system: Annotated[str, Meta(description="The persona's system prompt.")]
    provider: str | UnsetType = UNSET
    model: str | UnsetType = UNSET
    temperature: float | UnsetType = UNSET
    default: bool


class PersonaList(_Exact, kw_only=True):
    personas: list[PersonaInfo]
    default: Annotated[str, Meta(description="The persona of a request that names none.")]


class _Frame(_Exact, kw_only=True, tag_field="type"):
    pass


class ChatThinkingUpdate(_Frame, kw_only=True, tag="thinking_update"):
    """A note of the gateway's (a worker started the reply), or the provider's reasoning as it comes."""

    content: str


class ChatFinalResponse(_Frame, kw_only=True, tag="final_response"):
    """The next piece of the reply (joined, the pieces are the reply)."""

    content: str


class ChatMetadata(_Exact, kw_only=True):
    chatId: str | None  # noqa: N815
    title: str | None
    persona: str | None
    model: str
    usage: ChatUsage
    timeTaken: int  # noqa: N815
    finishReason: str  # noqa: N815


class ChatStreamMetadata(_Frame, kw_only=True, tag="metadata"):
    """The last frame before `[DONE]` of a reply that succeeded (`chatId` and `title` null for a one-off)."""

    content: ChatMetadata


class ChatFailure(_Exact, kw_only=True):
    code: str
    message: str


class ChatStreamError(_Frame, kw_only=True, tag="error"):
    """Instead of `metadata`: the reply failed (then `[DONE]`)."""

    content: ChatFailure


#: the Structs a stream's `data` lines hold (all but the final `[DONE]`)
FRAMES = (ChatThinkingUpdate, ChatFinalResponse, ChatStreamMetadata, ChatStreamError)
