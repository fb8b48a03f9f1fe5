"""How the OpenAI dialect answers, for ``/openapi.json``: every reply of each route (the response Structs are in
``responses.py``), with examples made by the dialect's own encoders (so they cannot drift from what it sends),
and the rules of its requests that the request Structs cannot state.
"""

from collections.abc import Iterable
from typing import Any

import msgspec

from services.api.answer import Answer
from services.api.dialects.openai.errors import render_error
from services.api.dialects.openai.responses import (
    CreateChatCompletionResponse,
    CreateChatCompletionStreamResponse,
    CreateCompletionResponse,
    CreateCompletionStreamResponse,
    ErrorResponse,
    ListModelsResponse,
    Model,
)
from services.api.dialects.openai.sse import ChatChunkEncoder, CompletionChunkEncoder
from services.api.dialects.openai.translate import chat_body, completion_body
from services.api.openapi_doc import JOB_ID, RATE_LIMIT_HEADERS, EventStream, JsonSchema, Refinement, Reply
from services.api.openapi_parts import GENERATION_ERRORS, REDIS_DOWN, RESUME, ErrorCase, error_replies
from services.api.sse import START, FrameId, frames
from shared.errors import ErrorCode
from shared.events import Done, Event, Failed, ModelInfo, TextDelta, ToolCallDelta, Usage
from shared.jobs import ToolCall

__all__ = [
    "CHAT_EXAMPLES",
    "CHAT_REFINEMENTS",
    "CHAT_REPLIES",
    "COMPLETION_EXAMPLES",
    "COMPLETION_REFINEMENTS",
    "COMPLETION_REPLIES",
    "LIST_MODELS_REPLIES",
    "RETRIEVE_MODEL_REPLIES",
    "resumed_chat_stream",
]

# --- examples, made by the dialect's own encoders ---

_CREATED = 1767225600
_JOB = "254f30f6bc4d4659acfe37e61f3fd3dc"
_ANSWERED = "gpt-4o-mini-2024-07-18"
_FINGERPRINT = "fp_c0ndu1t"
_USAGE = Usage(seq=5, prompt_tokens=9, completion_tokens=3)


def _json(raw: bytes) -> Any:
    body = msgspec.json.decode(raw)
    if isinstance(body, dict) and "created" in body:
        body["created"] = _CREATED
    return body


def _answer(text: str = "", tool_calls: list[ToolCall] | None = None, finish: str = "stop") -> Answer:
    usage = msgspec.structs.replace(_USAGE, completion_tokens=3 if text else 17)
    return Answer(
        text=text,
        tool_calls=tool_calls or [],
        usage=usage,
        finish_reason=finish,
        model=_ANSWERED,
        system_fingerprint=_FINGERPRINT,
    )


def _sse(encoder: ChatChunkEncoder | CompletionChunkEncoder, events: Iterable[Event], after: FrameId = START) -> str:
    return b"".join(frames(event.seq, encoder.encode(event), after) for event in events).decode()


_WEATHER = ToolCall(id="call_a1b2c3", name="get_weather", arguments='{"city":"Paris"}')
_TEXT_EVENTS: list[Event] = [
    ModelInfo(seq=2, model=_ANSWERED, system_fingerprint=_FINGERPRINT),
    TextDelta(seq=3, text="Hello"),
    TextDelta(seq=4, text=" there!"),
    _USAGE,
    Done(seq=6, finish_reason="stop", model=_ANSWERED),
]
_TOOL_EVENTS: list[Event] = [
    ModelInfo(seq=2, model=_ANSWERED, system_fingerprint=_FINGERPRINT),
    ToolCallDelta(seq=3, index=0, id=_WEATHER.id, name=_WEATHER.name, arguments='{"city":'),
    ToolCallDelta(seq=4, index=0, arguments='"Paris"}'),
    _USAGE,
    Done(seq=6, finish_reason="tool_calls", model=_ANSWERED),
]
_FAILED_EVENTS: list[Event] = [
    ModelInfo(seq=2, model=_ANSWERED, system_fingerprint=_FINGERPRINT),
    TextDelta(seq=3, text="Hello"),
    Failed(seq=4, code=ErrorCode.UPSTREAM_CONNECTION, message="openai closed the connection mid-stream"),
]


def _chat_stream(events: list[Event], include_usage: bool, after: FrameId = START) -> str:
    return _sse(ChatChunkEncoder(f"chatcmpl-{_JOB}", "gpt-4o-mini", include_usage, _CREATED), events, after)


def resumed_chat_stream(after: FrameId) -> str:
    """The example chat stream's frames after ``after`` (what ``GET /v1/streams/{job_id}`` sends)."""
    return _chat_stream(_TEXT_EVENTS, include_usage=True, after=after)


_CHAT_SSE = EventStream(
    "With `stream: true`: `id:` and `data:` lines per frame. Each `data` is a `CreateChatCompletionStreamResponse` "
    "chunk: the first has the role, then one per piece of text (or of a tool call), then one with the "
    "`finish_reason`, then (with `stream_options.include_usage`) one with `usage` and no choices, then "
    "`data: [DONE]`. Keep-alive comments (`: ping`) come while the upstream is silent. A failure after the "
    "stream started is a frame holding an `ErrorResponse`, then `[DONE]`. Resume with "
    "`GET /v1/streams/{job_id}` and `Last-Event-ID`.",
    {
        "text, with usage": _chat_stream(_TEXT_EVENTS, include_usage=True),
        "a tool call": _chat_stream(_TOOL_EVENTS, include_usage=False),
        "a failure mid-stream": _chat_stream(_FAILED_EVENTS, include_usage=False),
    },
    (CreateChatCompletionStreamResponse, ErrorResponse),
)
_COMPLETION_SSE = EventStream(
    "With `stream: true`: `id:` and `data:` lines per frame. Each `data` is a `CreateCompletionStreamResponse` "
    "holding the new text, then one with the `finish_reason` (and, with `stream_options.include_usage`, one "
    "with `usage`), then `data: [DONE]`. Errors after the start: an `ErrorResponse` frame, then `[DONE]`.",
    {"text": _sse(CompletionChunkEncoder(f"cmpl-{_JOB}", "gpt-3.5-turbo-instruct", False, _CREATED), _TEXT_EVENTS)},
    (CreateCompletionStreamResponse, ErrorResponse),
)

CHAT_EXAMPLES: dict[str, Any] = {
    "a question": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}]},
    "a stream, with usage": {
        "model": "anthropic/claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello"},
        ],
        "max_tokens": 200,
        "stream": True,
        "stream_options": {"include_usage": True},
    },
    "tools": {
        "model": "openai/gpt-4o",
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "The current weather in a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
                },
            }
        ],
    },
}
COMPLETION_EXAMPLES: dict[str, Any] = {
    "a prompt": {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hello", "max_tokens": 16},
    "a stream": {"model": "openai/gpt-3.5-turbo-instruct", "prompt": "Say hello", "stream": True},
}

# --- rules the request Structs cannot state (the handlers check them) ---

_CHOICES: JsonSchema = {
    "anyOf": [{"type": "integer", "minimum": 1, "maximum": 8}, {"type": "null"}],
    "description": "How many choices to generate (at most 8): natively where the provider can (OpenAI `n`, Gemini "
    "`candidateCount`), else as that many calls at once (Anthropic).",
}
_MESSAGE_RULES: JsonSchema = {
    "allOf": [
        {
            "description": "Every message but an assistant's has content.",
            "if": {"required": ["role"], "properties": {"role": {"not": {"const": "assistant"}}}},
            "then": {"required": ["content"], "properties": {"content": {"not": {"type": "null"}}}},
        },
        {
            "description": "A tool message names the tool call it answers.",
            "if": {"required": ["role"], "properties": {"role": {"const": "tool"}}},
            "then": {"required": ["tool_call_id"], "properties": {"tool_call_id": {"type": "string", "minLength": 1}}},
        },
    ]
}
_MODEL: JsonSchema = {
    "type": "string",
    "pattern": "\\S",
    "description": "`provider/model` (as `GET /v1/models` lists them), a catalog id, or a bare name whose prefix "
    "picks the provider.",
    "examples": ["gpt-4o-mini", "anthropic/claude-sonnet-4-5"],
}
_SAMPLING = {"model": _MODEL, "n": _CHOICES}
CHAT_REFINEMENTS = (Refinement("ChatCompletionRequest", _SAMPLING), Refinement("Message", extra=_MESSAGE_RULES))
COMPLETION_REFINEMENTS = (Refinement("CompletionRequest", _SAMPLING),)

# --- replies ---

CHAT_REPLIES = {
    200: Reply(
        "The answer: one `CreateChatCompletionResponse`, or with `stream: true` a stream of chunks.",
        CreateChatCompletionResponse,
        {
            "text": _json(chat_body(f"chatcmpl-{_JOB}", "gpt-4o-mini", _answer("Hello there!"))),
            "tool calls": _json(
                chat_body(f"chatcmpl-{_JOB}", "gpt-4o", _answer(tool_calls=[_WEATHER], finish="tool_calls"))
            ),
        },
        _CHAT_SSE,
        (JOB_ID, *RATE_LIMIT_HEADERS),
        RESUME,
    ),
    **error_replies(render_error, ErrorResponse, GENERATION_ERRORS),
}
COMPLETION_REPLIES = {
    200: Reply(
        "The completion: one `CreateCompletionResponse`, or with `stream: true` a stream of them.",
        CreateCompletionResponse,
        {"text": _json(completion_body(f"cmpl-{_JOB}", "gpt-3.5-turbo-instruct", _answer("Hello there!")))},
        _COMPLETION_SSE,
        (JOB_ID, *RATE_LIMIT_HEADERS),
        RESUME,
    ),
    **error_replies(render_error, ErrorResponse, GENERATION_ERRORS),
}

_MODELS = [
    {"id": "openai/gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "openai"},
    {"id": "anthropic/claude-sonnet-4-5", "object": "model", "created": 1759104000, "owned_by": "anthropic"},
    {"id": "echo/echo", "object": "model", "created": 1767225600, "owned_by": "echo"},
]
_NO_MODEL = ErrorCase(
    "No model of that name, or no live worker serves its provider.",
    ErrorCode.MODEL_NOT_FOUND,
    "The model `gpt-9` does not exist or you do not have access to it.",
    "model",
)
LIST_MODELS_REPLIES = {
    200: Reply("The models.", ListModelsResponse, {"models": {"object": "list", "data": _MODELS}}),
    **error_replies(render_error, ErrorResponse, (401, 503), {503: REDIS_DOWN}),
}
RETRIEVE_MODEL_REPLIES = {
    200: Reply("The model.", Model, {"a model": _MODELS[1]}),
    **error_replies(render_error, ErrorResponse, (401, 404, 503), {404: _NO_MODEL, 503: REDIS_DOWN}),
}
