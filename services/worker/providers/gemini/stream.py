"""Parse a Gemini ``streamGenerateContent?alt=sse`` stream into pieces: deltas, usage, then the finish.

Gemini sends no end marker; a chunk with ``finishReason`` (or a blocked prompt) is what makes a stream
complete. Function calls arrive whole, so each becomes one ``ToolCallPiece`` with an id minted here.
"""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec

from services.worker.providers._sse import iter_sse
from services.worker.providers._status import redact
from services.worker.providers.base import (
    FinishPiece,
    ModelPiece,
    Piece,
    ReasoningPiece,
    Target,
    TextPiece,
    ToolCallPiece,
    UsagePiece,
)
from shared.errors import ErrorCode, UpstreamError

__all__ = ["iter_pieces"]

_FILTERED = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII"})
# an in-band ``{"error": {...}}`` by its canonical status -> (code, retryable)
_ERRORS = {
    "RESOURCE_EXHAUSTED": (ErrorCode.UPSTREAM_RATE_LIMITED, True),
    "UNAVAILABLE": (ErrorCode.UPSTREAM_OVERLOADED, True),
    "INTERNAL": (ErrorCode.UPSTREAM_ERROR, True),
    "DEADLINE_EXCEEDED": (ErrorCode.UPSTREAM_TIMEOUT, True),
}


class _FunctionCall(msgspec.Struct, gc=False):
    name: str = ""
    args: dict[str, Any] | None = None


class _Part(msgspec.Struct, gc=False, rename="camel"):
    text: str | None = None
    thought: bool = False
    function_call: _FunctionCall | None = None


class _Content(msgspec.Struct, gc=False):
    parts: list[_Part] = []


class _Candidate(msgspec.Struct, gc=False, rename="camel"):
    index: int = 0
    content: _Content | None = None
    finish_reason: str | None = None


class _Usage(msgspec.Struct, gc=False, rename="camel"):
    prompt_token_count: int = 0
    candidates_token_count: int = 0
    thoughts_token_count: int = 0
    cached_content_token_count: int = 0


class _Feedback(msgspec.Struct, gc=False, rename="camel"):
    block_reason: str | None = None


class _ApiError(msgspec.Struct, gc=False):
    code: int = 0
    message: str = ""
    status: str = ""


class _Chunk(msgspec.Struct, gc=False, rename="camel"):
    candidates: list[_Candidate] = []
    usage_metadata: _Usage | None = None
    prompt_feedback: _Feedback | None = None
    model_version: str = ""
    error: _ApiError | None = None


_DECODER = msgspec.json.Decoder(_Chunk)


class _State:
    def __init__(self) -> None:
        self.model = ""
        self.usage: _Usage | None = None
        self.finish: str | None = None  # Gemini's finishReason, as sent
        self.blocked = False
        self.calls = 0
        self.call_prefix = uuid.uuid4().hex[:16]

    def reason(self) -> str:
        if self.finish is None:
            return "content_filter"  # only a blocked prompt ends without a finishReason
        if self.finish in _FILTERED or self.finish.startswith("IMAGE_"):
            return "content_filter"
        if self.finish == "MAX_TOKENS":
            return "length"
        return "tool_calls" if self.calls and self.finish == "STOP" else "stop"


def _part_pieces(part: _Part, state: _State) -> list[Piece]:
    pieces: list[Piece] = []
    if part.text:
        pieces.append(ReasoningPiece(part.text) if part.thought else TextPiece(part.text))
    if part.function_call is not None:
        arguments = msgspec.json.encode(part.function_call.args or {}).decode()
        call_id = f"call_{state.call_prefix}_{state.calls}"
        pieces.append(ToolCallPiece(state.calls, call_id, part.function_call.name, arguments))
        state.calls += 1
    return pieces


def _pieces(chunk: _Chunk, state: _State) -> list[Piece]:
    """Apply one chunk to ``state``; the pieces it yields right away."""
    pieces: list[Piece] = []
    model = chunk.model_version.removeprefix("models/")
    if model and model != state.model:
        state.model = model
        pieces.append(ModelPiece(model))
    state.usage = chunk.usage_metadata or state.usage
    if chunk.prompt_feedback is not None and chunk.prompt_feedback.block_reason and not chunk.candidates:
        state.blocked = True
    candidate = next((c for c in chunk.candidates if c.index == 0), None)  # n > 1 is refused before enqueue
    if candidate is None:
        return pieces
    state.finish = candidate.finish_reason or state.finish
    parts = candidate.content.parts if candidate.content else []
    return pieces + [piece for part in parts for piece in _part_pieces(part, state)]


def _error(error: _ApiError, target: Target) -> UpstreamError:
    detail = redact(error.message or error.status or "unknown error", target.api_key)[:500]
    code, retryable = _ERRORS.get(error.status, (ErrorCode.UPSTREAM_ERROR, False))
    return UpstreamError(f"{target.provider} reported an error mid-stream: {detail}", code=code, retryable=retryable)


async def iter_pieces(response: httpx.Response, target: Target) -> AsyncIterator[Piece]:
    state = _State()
    async for sse in iter_sse(response.aiter_bytes()):
        try:
            chunk = _DECODER.decode(sse.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise UpstreamError(f"{target.provider} sent a malformed stream chunk") from exc
        if chunk.error is not None:
            raise _error(chunk.error, target)
        for piece in _pieces(chunk, state):
            yield piece
    if state.finish is None and not state.blocked:
        raise UpstreamError(
            f"{target.provider} ended the stream without a finish reason (incomplete answer)",
            code=ErrorCode.UPSTREAM_INCOMPLETE,
            retryable=True,
        )
    if state.usage is not None:
        usage = state.usage
        yield UsagePiece(
            prompt_tokens=usage.prompt_token_count,
            completion_tokens=usage.candidates_token_count + usage.thoughts_token_count,
            cached_tokens=usage.cached_content_token_count,
            reasoning_tokens=usage.thoughts_token_count,
        )
    yield FinishPiece(state.reason(), state.model)
