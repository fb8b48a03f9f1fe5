"""Examples of the chat API's bodies and streams for ``/openapi.json``, made by the dialect's own functions
(``translate.py``, ``sse.py``, ``persona_object``) from sample records, so they are the bytes it sends; and
examples of its requests."""

from typing import Any

import msgspec

from services.api.answer import Answer
from services.api.chats.personas import Persona, persona_object
from services.api.dialects.chat.sse import ChatEventEncoder
from services.api.dialects.chat.translate import (
    CHAT_ID,
    PERSONA,
    TITLE,
    chat_body,
    generate_body,
    oneoff_body,
    summary_object,
)
from services.api.sse import START, FrameId, frames
from services.api.wire import encode_json
from services.stores.chats import ChatSummary, ForkOrigin, MessageUsage, StoredMessage, encode_messages, ms
from shared.errors import ErrorCode
from shared.events import Done, Event, Failed, ModelInfo, ReasoningDelta, Started, TextDelta, Usage
from shared.jobs import StreamView

__all__ = [
    "CHAT",
    "CHAT_BODIES",
    "FORK_EXAMPLES",
    "FORKED_BODY",
    "GENERATE_BODY",
    "GENERATE_EXAMPLES",
    "HISTORY_PAGES",
    "NEW_EXAMPLES",
    "ONEOFF_BODY",
    "ONEOFF_EXAMPLES",
    "ONEOFF_STREAMS",
    "PATCH_EXAMPLES",
    "PERSONA_LIST",
    "PIN_EXAMPLES",
    "STREAMS",
    "STREAM_EXAMPLES",
    "SUMMARY_BODY",
    "resumed_stream",
]

_JOB = "254f30f6bc4d4659acfe37e61f3fd3dc"
#: the sample chat's id
CHAT = "chat_5f0c2a9e41b7d38c6e1a0f42"
_NOW = 1767225600.0
_ANSWERED = "gpt-4o-mini-2024-07-18"
_QUESTION = "What is a haiku?"
_TEXT = "Five, seven, five: three lines of few syllables."

# --- streams and generation bodies ---

_VIEW = StreamView(
    dialect="chat.generate", id=_JOB, model="gpt-4o-mini", labels={CHAT_ID: CHAT, TITLE: _QUESTION, PERSONA: "maya"}
)
_ONEOFF = StreamView(dialect="chat.oneoff", id=_JOB, model="gpt-4o-mini", labels={PERSONA: "maya"})
_USAGE = Usage(seq=6, prompt_tokens=41, completion_tokens=12)
_ANSWER = Answer(text=_TEXT, usage=_USAGE, model=_ANSWERED, elapsed_ms=840)
_EVENTS: list[Event] = [
    Started(seq=1, worker="worker-1"),
    ModelInfo(seq=2, model=_ANSWERED),
    TextDelta(seq=3, text="Five, seven, five:"),
    TextDelta(seq=4, text=" three lines"),
    TextDelta(seq=5, text=" of few syllables."),
    _USAGE,
    Done(seq=7, finish_reason="stop", model=_ANSWERED, elapsed_ms=840),
]
_REASONING: list[Event] = [
    Started(seq=1),
    ReasoningDelta(seq=2, text="A haiku: 5-7-5 syllables."),
    TextDelta(seq=3, text="Five, seven, five."),
    Usage(seq=4, prompt_tokens=41, completion_tokens=30, reasoning_tokens=24),
    Done(seq=5, model="claude-sonnet-4-5", elapsed_ms=2310),
]
_FAILED: list[Event] = [
    Started(seq=1),
    TextDelta(seq=2, text="Five, seven"),
    Failed(seq=3, code=ErrorCode.UPSTREAM_CONNECTION, message="openai closed the connection mid-stream"),
]


def _stream(events: list[Event], view: StreamView = _VIEW, after: FrameId = START) -> str:
    encoder = ChatEventEncoder(view)
    return b"".join(frames(event.seq, encoder.encode(event), after) for event in events).decode()


def resumed_stream(after: FrameId) -> str:
    """The sample stream's frames after ``after`` (what ``GET /v1/streams/{job_id}`` sends)."""
    return _stream(_EVENTS, after=after)


def _json(body: bytes | object) -> Any:
    """A body as the client reads it (a handler's dict is encoded as the handler encodes it)."""
    return msgspec.json.decode(body if isinstance(body, bytes) else encode_json(body))


STREAMS = {
    "a reply": _stream(_EVENTS),
    "with the provider's reasoning": _stream(_REASONING),
    "a failure mid-stream": _stream(_FAILED),
}
ONEOFF_STREAMS = {"a reply": _stream(_EVENTS, _ONEOFF)}
GENERATE_BODY = _json(generate_body(_VIEW, _ANSWER))
ONEOFF_BODY = _json(oneoff_body(_ONEOFF, _ANSWER))

# --- saved chats and personas ---

_SUMMARY = ChatSummary(
    id=CHAT,
    owner="ana",
    title=_QUESTION,
    created=_NOW,
    updated=_NOW + 2.5,
    message_count=2,
    preview=_TEXT,
    persona="maya",
    scope="internal",
    username="ana",
    source="web",
)
_MESSAGES = [
    StoredMessage(id="msg_0e6b1d2c7a9f4e3b5c8d1a20", role="user", content=_QUESTION, created_at=ms(_NOW)),
    StoredMessage(
        id="msg_9a4c3e7b2d1f6a8e0b5c4d31",
        role="assistant",
        content=_TEXT,
        created_at=ms(_NOW + 2.5),
        model=_ANSWERED,
        usage=MessageUsage(prompt_tokens=41, completion_tokens=12, total_tokens=53),
        persona="maya",
        status="complete",
    ),
]
_CUT = msgspec.structs.replace(_MESSAGES[1], content="Five, seven", status="cut_short", error="cancelled")
_FORKED = msgspec.structs.replace(
    _SUMMARY, id="chat_0b8e6d4f2a1c9e7b5d3f1a08", forked_from=ForkOrigin(chat_id=CHAT, message_id=_MESSAGES[1].id)
)
CHAT_BODIES = {
    "a chat": _json(chat_body(_SUMMARY, encode_messages(_MESSAGES))),
    "a reply cut short": _json(chat_body(_SUMMARY, encode_messages([_MESSAGES[0], _CUT]))),
}
FORKED_BODY = _json(chat_body(_FORKED, encode_messages(_MESSAGES)))
SUMMARY_BODY = _json(summary_object(msgspec.structs.replace(_SUMMARY, pinned=True)))
HISTORY_PAGES = {
    "a page": {"chats": [_json(summary_object(_SUMMARY))], "hasMore": True, "nextCursor": CHAT},
    "the last page": {"chats": [_json(summary_object(_FORKED))], "hasMore": False, "nextCursor": None},
}
_PERSONAS = [
    Persona(
        name="coder", description="A precise programming assistant", system="You are an engineer.", temperature=0.2
    ),
    Persona(name="maya", description="A warm, concise general assistant", system="You are Maya.", temperature=0.7),
    Persona(name="scout", description="On OpenAI's larger model", system="You are Scout.", model="openai/gpt-4o"),
]
PERSONA_LIST = _json({"personas": [persona_object(p, p.name == "maya") for p in _PERSONAS], "default": "maya"})

# --- requests ---

_HAIKU = [{"role": "user", "content": _QUESTION}]
_NEXT = [*_HAIKU, {"role": "assistant", "content": _TEXT}, {"role": "user", "content": "Write one about rain."}]
ONEOFF_EXAMPLES: dict[str, Any] = {
    "a question": {"chat_history": _HAIKU},
    "as a persona, streamed": {"chat_history": _HAIKU, "persona": "tutor", "stream": True},
}
STREAM_EXAMPLES: dict[str, Any] = {
    "a new chat": {"chat_history": _HAIKU},
    "the next turn, the whole conversation resent": {"chatId": CHAT, "chat_history": _NEXT},
}
GENERATE_EXAMPLES: dict[str, Any] = {
    **STREAM_EXAMPLES,
    "a persona, a model, context and scope": {
        "chat_history": _HAIKU,
        "persona": "tutor",
        "model": "openai/gpt-4o-mini",
        "fastContext": ["The learner is 10.", {"topic": "poetry"}],
        "scope": "class-5b",
        "tools": {"research": False, "internet": False},
    },
    "streamed": {"chat_history": _HAIKU, "stream": True},
}
FORK_EXAMPLES: dict[str, Any] = {"at a reply": {"chatId": CHAT, "messageId": _MESSAGES[1].id}}
PIN_EXAMPLES: dict[str, Any] = {"pin": {"pinned": True}, "unpin": {"pinned": False}}
PATCH_EXAMPLES: dict[str, Any] = {"rename": {"title": "Haiku"}, "rename and pin": {"title": "Haiku", "pinned": True}}
NEW_EXAMPLES: dict[str, Any] = {
    "an empty chat": {"title": "Notes"},
    "a conversation from elsewhere": {"messages": _NEXT[:2], "persona": "tutor"},
}
