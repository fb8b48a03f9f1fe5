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
    SourcePiece,
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


class _Token(msgspec.Struct, gc=False, rename="camel"):
    token: str = ""
    log_probability: float = 0.0


class _Top(msgspec.Struct, gc=False):
    candidates: list[_Token] = []


class _Logprobs(msgspec.Struct, gc=False, rename="camel"):
    chosen_candidates: list[_Token] = []
    top_candidates: list[_Top] = []


class _Web(msgspec.Struct, gc=False):
    uri: str = ""
    title: str = ""


class _GroundingChunk(msgspec.Struct, gc=False):
    web: _Web | None = None


class _Segment(msgspec.Struct, gc=False, rename="camel"):
    start_index: int = 0  # bytes of the answer's UTF-8 text
    end_index: int = 0


class _Support(msgspec.Struct, gc=False, rename="camel"):
    segment: _Segment | None = None
    grounding_chunk_indices: list[int] = []


class _Grounding(msgspec.Struct, gc=False, rename="camel"):
    grounding_chunks: list[_GroundingChunk] = []
    grounding_supports: list[_Support] = []


class _Candidate(msgspec.Struct, gc=False, rename="camel"):
    index: int = 0
    content: _Content | None = None
    finish_reason: str | None = None
    logprobs_result: _Logprobs | None = None
    grounding_metadata: _Grounding | None = None


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
        self.finishes: dict[int, str] = {}  # each candidate's finishReason, as sent, by its index
        self.blocked = False
        self.calls: dict[int, int] = {}  # tool calls so far, by candidate
        self.texts: dict[int, list[str]] = {}  # the answer's text so far, by candidate (for citations' offsets)
        self.grounding: dict[int, _Grounding] = {}  # the last grounding metadata, by candidate
        self.call_prefix = uuid.uuid4().hex[:16]

    @property
    def finish(self) -> str | None:
        """The first candidate's finishReason (``None``: not finished)."""
        return self.finishes.get(0)

    def reason(self, index: int = 0) -> str:
        finish = self.finishes.get(index)
        if finish is None:
            return "content_filter"  # only a blocked prompt ends without a finishReason
        if finish in _FILTERED or finish.startswith("IMAGE_"):
            return "content_filter"
        if finish == "MAX_TOKENS":
            return "length"
        return "tool_calls" if self.calls.get(index) and finish == "STOP" else "stop"

    def finish_piece(self) -> FinishPiece:
        """How each candidate finished (several: ``n > 1``, as ``candidateCount``)."""
        reasons = [self.reason(index) for index in range(max(self.finishes, default=0) + 1)]
        return FinishPiece(reasons[0], self.model, reasons if len(reasons) > 1 else [])


def _openai_token(token: _Token) -> dict[str, Any]:
    return {"token": token.token, "logprob": token.log_probability, "bytes": list(token.token.encode())}


def _openai_logprobs(result: _Logprobs) -> dict[str, Any]:
    """Gemini's ``logprobsResult`` in OpenAI's shape: per token its logprob, bytes and the top alternatives."""
    tops = result.top_candidates
    return {
        "content": [
            {
                **_openai_token(chosen),
                "top_logprobs": [_openai_token(t) for t in tops[step].candidates] if step < len(tops) else [],
            }
            for step, chosen in enumerate(result.chosen_candidates)
        ],
        "refusal": None,
    }


def _part_pieces(part: _Part, state: _State, at: int = 0) -> list[Piece]:
    pieces: list[Piece] = []
    if part.text:
        pieces.append(ReasoningPiece(part.text, at) if part.thought else TextPiece(part.text, choice=at))
    if part.function_call is not None:
        arguments = msgspec.json.encode(part.function_call.args or {}).decode()
        ordinal = state.calls.get(at, 0)
        call_id = f"call_{state.call_prefix}_{at}_{ordinal}" if at else f"call_{state.call_prefix}_{ordinal}"
        pieces.append(ToolCallPiece(ordinal, call_id, part.function_call.name, arguments, at))
        state.calls[at] = ordinal + 1
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
    for candidate in chunk.candidates:  # several with candidateCount (n > 1), each by its index
        if candidate.finish_reason:
            state.finishes[candidate.index] = candidate.finish_reason
        if candidate.grounding_metadata is not None:
            state.grounding[candidate.index] = candidate.grounding_metadata
        parts = candidate.content.parts if candidate.content else []
        found = [piece for part in parts for piece in _part_pieces(part, state, candidate.index)]
        state.texts.setdefault(candidate.index, []).extend(p.text for p in found if isinstance(p, TextPiece))
        if candidate.logprobs_result is not None:  # the chunk's tokens: with its first text
            first = next((p for p in found if isinstance(p, TextPiece)), None)
            if first is not None:
                first.logprobs = _openai_logprobs(candidate.logprobs_result)
        pieces += found
    return pieces


def sources(state: _State) -> list[Piece]:
    """Each candidate's grounding as sources: every chunk searched (``start`` -1), then each supported segment's
    citations, their byte offsets turned into the character offsets of the answer's text."""
    found: list[Piece] = []
    for index, grounding in sorted(state.grounding.items()):
        webs = [chunk.web for chunk in grounding.grounding_chunks]
        found += [SourcePiece(web.uri, web.title, choice=index) for web in webs if web is not None and web.uri]
        encoded = "".join(state.texts.get(index, [])).encode()
        for support in grounding.grounding_supports:
            segment = support.segment or _Segment()
            start = len(encoded[: segment.start_index].decode(errors="ignore"))
            end = len(encoded[: segment.end_index].decode(errors="ignore"))
            for at in support.grounding_chunk_indices:
                web = webs[at] if 0 <= at < len(webs) else None
                if web is not None and web.uri:
                    found.append(SourcePiece(web.uri, web.title, start, end, choice=index))
    return found


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
    for piece in sources(state):
        yield piece
    if state.usage is not None:
        usage = state.usage
        yield UsagePiece(
            prompt_tokens=usage.prompt_token_count,
            completion_tokens=usage.candidates_token_count + usage.thoughts_token_count,
            cached_tokens=usage.cached_content_token_count,
            reasoning_tokens=usage.thoughts_token_count,
        )
    yield state.finish_piece()
