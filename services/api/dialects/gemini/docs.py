"""What ``/docs`` shows of the Gemini-native proxy endpoint: Google's response and error shapes (as much of
them as a client reads; the upstream's answer is passed through whole, so other fields appear as Google adds
them), the replies, and an example request."""

from typing import Any

import msgspec

from services.api.dialects.gemini.errors import render_error
from services.api.openapi_doc import JOB_ID, RATE_LIMIT_HEADERS, EventStream, Reply
from services.api.openapi_parts import GENERATION_ERRORS, error_replies

__all__ = ["GEMINI_EXAMPLES", "GEMINI_REPLIES", "GeminiError", "GenerateContentBody", "GenerateContentResponse"]


class GenerateContentBody(msgspec.Struct, rename="camel", omit_defaults=True):
    """Gemini's ``GenerateContentRequest``, as the document shows it: its top level (``schemas.py`` holds the whole
    request, which the endpoint checks as Google does; nested that deep, it is more than fuzzers can walk)."""

    contents: list[dict[str, Any]]
    system_instruction: dict[str, Any] | None = None
    generation_config: dict[str, Any] | None = None
    safety_settings: list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_config: dict[str, Any] | None = None
    cached_content: str | None = None


class _Status(msgspec.Struct):
    code: int
    message: str
    status: str
    details: list[dict[str, Any]] | None = None


class GeminiError(msgspec.Struct):
    """Google's error body."""

    error: _Status


class _Part(msgspec.Struct, rename="camel"):
    text: str | None = None
    thought: bool | None = None
    function_call: dict[str, Any] | None = None


class _Content(msgspec.Struct):
    parts: list[_Part] = []
    role: str | None = None


class _Candidate(msgspec.Struct, rename="camel"):
    content: _Content | None = None
    finish_reason: str | None = None
    index: int | None = None
    safety_ratings: list[dict[str, Any]] | None = None


class _UsageMetadata(msgspec.Struct, rename="camel"):
    prompt_token_count: int | None = None
    candidates_token_count: int | None = None
    total_token_count: int | None = None
    thoughts_token_count: int | None = None


class GenerateContentResponse(msgspec.Struct, rename="camel"):
    """Gemini's answer (``:generateContent``), or one frame of its stream (``:streamGenerateContent``)."""

    candidates: list[_Candidate] = []
    usage_metadata: _UsageMetadata | None = None
    model_version: str | None = None
    response_id: str | None = None
    prompt_feedback: dict[str, Any] | None = None


_ANSWER = {
    "candidates": [
        {"content": {"parts": [{"text": "Hello there!"}], "role": "model"}, "finishReason": "STOP", "index": 0}
    ],
    "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 3, "totalTokenCount": 6},
    "modelVersion": "gemini-2.5-flash",
    "responseId": "mK4zaJ2cKsWr1dkP0Y6n6AE",
}
_FRAME = msgspec.json.encode(_ANSWER).decode()
GEMINI_EXAMPLES = {
    "text": {"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]},
    "with settings": {
        "systemInstruction": {"parts": [{"text": "Answer briefly."}]},
        "contents": [{"role": "user", "parts": [{"text": "Say hello"}]}],
        "generationConfig": {"temperature": 0.2, "maxOutputTokens": 64},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}],
    },
}
GEMINI_REPLIES = {
    200: Reply(
        "Gemini's answer as Gemini sent it: a `GenerateContentResponse` (`:generateContent`), or with "
        "`:streamGenerateContent?alt=sse` a stream of them, one per `data:` frame.",
        GenerateContentResponse,
        {"text": _ANSWER},
        EventStream(
            "One `GenerateContentResponse` per `data:` frame, as Gemini sent it (no `id:` lines, no comments)",
            {"a stream": f"data: {_FRAME}\r\n\r\n"},
            (GenerateContentResponse, GeminiError),
            numbered=False,
        ),
        (JOB_ID, *RATE_LIMIT_HEADERS),
    ),
    **error_replies(render_error, GeminiError, GENERATION_ERRORS),
}
