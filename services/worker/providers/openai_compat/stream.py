"""Parse a Chat Completions SSE stream into pieces: deltas, usage, then the finish."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec

from services.worker.providers._http import drain
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


class _Function(msgspec.Struct, gc=False):
    name: str | None = None
    arguments: str | None = None


class _ToolDelta(msgspec.Struct, gc=False):
    index: int = 0
    id: str | None = None
    function: _Function | None = None


class _Citation(msgspec.Struct, gc=False):
    url: str = ""
    title: str = ""
    start_index: int = -1
    end_index: int = -1


class _Annotation(msgspec.Struct, gc=False):
    type: str = ""
    url_citation: _Citation | None = None


class _Delta(msgspec.Struct, gc=False):
    content: str | None = None
    reasoning_content: str | None = None
    refusal: str | None = None
    tool_calls: list[_ToolDelta] | None = None
    annotations: list[_Annotation] | None = None


class _Choice(msgspec.Struct, gc=False):
    index: int = 0
    delta: _Delta | None = None
    text: str | None = None  # a legacy completion's chunk
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class _Details(msgspec.Struct, gc=False):
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None


class _Usage(msgspec.Struct, gc=False):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_tokens_details: _Details | None = None
    completion_tokens_details: _Details | None = None


class _Chunk(msgspec.Struct, gc=False):
    model: str = ""
    system_fingerprint: str | None = None
    choices: list[_Choice] = []
    usage: _Usage | None = None
    error: dict[str, Any] | str | None = None


_DECODER = msgspec.json.Decoder(_Chunk)


def _usage(usage: _Usage) -> UsagePiece:
    prompt_details, completion_details = usage.prompt_tokens_details, usage.completion_tokens_details
    return UsagePiece(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=(prompt_details.cached_tokens or 0) if prompt_details else 0,
        reasoning_tokens=(completion_details.reasoning_tokens or 0) if completion_details else 0,
    )


def _choice_pieces(choice: _Choice, listed: set[tuple[int, str]]) -> list[Piece]:
    """A choice's text (with its logprobs, when the client asked for them), reasoning, tool calls and citations.
    OpenAI lists no search results of its own: each source it cites stands in for one (``raw``), the first time
    (``listed``: the answers' sources so far)."""
    at = choice.index
    if choice.text:
        return [TextPiece(choice.text, choice.logprobs, at)]
    delta = choice.delta
    if delta is None:
        return []
    pieces: list[Piece] = []
    if delta.reasoning_content:
        pieces.append(ReasoningPiece(delta.reasoning_content, at))
    if delta.content:
        pieces.append(TextPiece(delta.content, choice.logprobs, at))
    if delta.refusal:
        pieces.append(TextPiece(delta.refusal, choice.logprobs, at))
    for call in delta.tool_calls or ():
        function = call.function or _Function()
        pieces.append(ToolCallPiece(call.index, call.id, function.name, function.arguments or "", at))
    for note in delta.annotations or ():  # web search's citations (OpenAI's search models)
        cited = note.url_citation
        if note.type == "url_citation" and cited is not None and cited.url:
            pieces.append(SourcePiece(cited.url, cited.title, cited.start_index, cited.end_index, choice=at))
            if (at, cited.url) not in listed:
                listed.add((at, cited.url))
                pieces.append(SourcePiece(cited.url, cited.title, choice=at))
    return pieces


_MIDSTREAM: dict[str, tuple[ErrorCode, bool]] = {
    "server_error": (ErrorCode.UPSTREAM_ERROR, True),
    "rate_limit_error": (ErrorCode.UPSTREAM_RATE_LIMITED, True),
    "rate_limit_exceeded": (ErrorCode.UPSTREAM_RATE_LIMITED, True),
    "overloaded_error": (ErrorCode.UPSTREAM_OVERLOADED, True),
}


def _midstream_error(error: dict[str, Any] | str, target: Target) -> UpstreamError:
    """An ``{"error": ...}`` frame after HTTP 200, mapped by its ``type`` (or ``code``)."""
    if isinstance(error, str):
        error = {"message": error}
    kind = str(error.get("type") or error.get("code") or "")
    code, retryable = _MIDSTREAM.get(kind, (ErrorCode.UPSTREAM_ERROR, False))
    detail = redact(str(error.get("message") or kind or "unknown error"), target.api_key)
    return UpstreamError(f"{target.provider} reported an error mid-stream: {detail}", code=code, retryable=retryable)


async def iter_pieces(response: httpx.Response, target: Target) -> AsyncIterator[Piece]:
    model, fingerprint = "", ""
    finishes: dict[int, str] = {}  # each choice's finish reason, by index (n > 1: several)
    listed: set[tuple[int, str]] = set()  # the sources each choice cited so far
    chunks = response.aiter_bytes()
    async for sse in iter_sse(chunks):
        if sse.data.startswith("[DONE]"):
            await drain(chunks)  # the connection goes back to the pool
            break
        try:
            chunk = _DECODER.decode(sse.data)
        except msgspec.DecodeError as exc:
            raise UpstreamError(f"{target.provider} sent a malformed stream chunk", retryable=False) from exc
        if chunk.error is not None:
            raise _midstream_error(chunk.error, target)
        if (chunk.model and chunk.model != model) or (chunk.system_fingerprint or fingerprint) != fingerprint:
            model, fingerprint = chunk.model or model, chunk.system_fingerprint or fingerprint
            yield ModelPiece(model, fingerprint)
        for choice in chunk.choices:
            for piece in _choice_pieces(choice, listed):
                yield piece
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
        if chunk.usage is not None:
            yield _usage(chunk.usage)
    if 0 not in finishes or len(finishes) != max(finishes) + 1:
        raise UpstreamError(
            f"{target.provider} ended the stream without a finish reason (incomplete answer)",
            code=ErrorCode.UPSTREAM_INCOMPLETE,
            retryable=True,
        )
    reasons = [finishes[index] for index in range(len(finishes))]
    yield FinishPiece(reasons[0], model, reasons if len(reasons) > 1 else [])
