"""How the simple AI API answers, for ``/openapi.json``: response Structs (documentation only: the bodies are
built in ``translate.py`` and ``sse.py``) and examples made by those same functions, so they cannot drift.
"""

from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType

from services.api.answer import Answer
from services.api.dialects.ai.errors import render_error
from services.api.dialects.ai.sse import TokenEncoder
from services.api.dialects.ai.translate import answer_body
from services.api.openapi_doc import JOB_ID, RATE_LIMIT_HEADERS, EventStream, Reply
from services.api.openapi_parts import GENERATION_ERRORS, RESUME, error_replies
from services.api.sse import frames
from shared.events import Done, Event, Failed, TextDelta, Usage

__all__ = [
    "AiChatResponse",
    "AiCompletionResponse",
    "AiError",
    "AiStreamError",
    "AiToken",
    "CHAT_EXAMPLES",
    "CHAT_REPLIES",
    "COMPLETION_EXAMPLES",
    "COMPLETION_REPLIES",
]


class _Exact(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Documentation-only: every field the gateway sends, and nothing else."""


class AiUsage(_Exact, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


_Model = Annotated[str, Meta(description="The model that answered, as the upstream names it.")]


class AiChatResponse(_Exact, kw_only=True):
    """The answer of `POST /api/ai/chat` (`stream` false)."""

    content: str
    model: _Model
    usage: AiUsage


class AiCompletionResponse(_Exact, kw_only=True):
    """The answer of `POST /api/ai/completions` (`stream` false)."""

    completion: str
    model: _Model
    usage: AiUsage


class AiError(_Exact, kw_only=True):
    """An error of the simple AI API."""

    detail: Annotated[str, Meta(description="What went wrong, for people.")]
    code: Annotated[str, Meta(description="A stable code: `invalid_request`, `authentication`, `rate_limited`...")]
    param: Annotated[str, Meta(description="The request field at fault, where there is one.")] | UnsetType = UNSET


class AiToken(_Exact, kw_only=True):
    """One `data:` frame of a stream: the next piece of text."""

    token: str


class AiStreamError(_Exact, kw_only=True):
    """The frame of a failure after the stream started (then `[DONE]`)."""

    error: AiError


_USAGE = Usage(seq=7, prompt_tokens=9, completion_tokens=3)
_ANSWER = Answer(text="Hello there!", usage=_USAGE, model="gpt-4o-mini-2024-07-18")


def _stream(events: list[Event]) -> str:
    encoder = TokenEncoder()
    return b"".join(frames(event.seq, encoder.encode(event)) for event in events).decode()


_SSE = EventStream(
    'With `stream: true`: `id:` and `data:` lines per frame. Each `data` is an `AiToken` (`{"token": ...}`), '
    "then `data: [DONE]`. Keep-alive comments (`: ping`) come while the upstream is silent. A failure after "
    "the stream started is an `AiStreamError` frame, then `[DONE]`. Resume with `GET /v1/streams/{job_id}` "
    "and `Last-Event-ID`.",
    {
        "tokens": _stream([TextDelta(seq=3, text="Hello"), TextDelta(seq=4, text=" there!"), _USAGE, Done(seq=8)]),
        "a failure mid-stream": _stream(
            [TextDelta(seq=3, text="Hello"), Failed(seq=4, code="upstream_timeout", message="openai timed out")]
        ),
    },
    (AiToken, AiStreamError),
)

_COMMON: dict[str, Any] = {"temperature": 0.7, "max_tokens": 200}
CHAT_EXAMPLES: dict[str, Any] = {
    "a question": {"messages": [{"role": "user", "content": "Say hello"}]},
    "a stream from a named provider": {
        "provider": "anthropic",
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hello"}],
        "stream": True,
        **_COMMON,
    },
}
COMPLETION_EXAMPLES: dict[str, Any] = {
    "a prompt": {"prompt": "Say hello"},
    "a model, a system prompt, a stream": {
        "model": "gemini/gemini-2.5-flash",
        "prompt": "Say hello",
        "system_prompt": "You are terse.",
        "stream": True,
        **_COMMON,
    },
}


def _replies(body: type, field: str, summary: str) -> dict[int, Reply]:
    example = msgspec.json.decode(answer_body(field, "gpt-4o-mini", _ANSWER))
    ok = Reply(summary, body, {"text": example}, _SSE, (JOB_ID, *RATE_LIMIT_HEADERS), RESUME)
    return {200: ok, **error_replies(render_error, AiError, GENERATION_ERRORS)}


CHAT_REPLIES = _replies(AiChatResponse, "content", "The answer, or with `stream: true` a stream of tokens.")
COMPLETION_REPLIES = _replies(AiCompletionResponse, "completion", "The completion, or with `stream: true` its tokens.")
