"""Parse an Anthropic Messages SSE stream into pieces: deltas, usage, then the finish."""

from collections.abc import AsyncIterator

import httpx
import msgspec

from services.worker.providers._http import drain
from services.worker.providers._sse import iter_sse
from services.worker.providers._status import redact
from services.worker.providers.anthropic.request import ANSWER_TOOL
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
from shared.tokens import tokens_for_chars

__all__ = ["iter_pieces"]

_EVENTS = frozenset(
    {
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "error",
    }
)

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# mid-stream ``error`` event types -> (code, retryable); anything else is a non-retryable upstream_error
_ERRORS = {
    "overloaded_error": (ErrorCode.UPSTREAM_OVERLOADED, True),
    "rate_limit_error": (ErrorCode.UPSTREAM_RATE_LIMITED, True),
    "api_error": (ErrorCode.UPSTREAM_ERROR, True),
    "timeout_error": (ErrorCode.UPSTREAM_TIMEOUT, True),
}


class _Usage(msgspec.Struct, gc=False):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class _Message(msgspec.Struct, gc=False):
    model: str = ""
    usage: _Usage | None = None


class _Found(msgspec.Struct, gc=False):
    """A web search's result, or a text's citation of one (``web_search_result_location``)."""

    type: str = ""
    url: str = ""
    title: str = ""


class _Block(msgspec.Struct, gc=False):
    type: str = ""
    id: str | None = None
    name: str | None = None
    #: a ``web_search_tool_result``'s results (an error object instead when the search failed)
    content: list[_Found] | dict[str, object] | None = None


class _Delta(msgspec.Struct, gc=False):
    """Both ``content_block_delta.delta`` and ``message_delta.delta``."""

    type: str = ""
    text: str | None = None
    partial_json: str | None = None
    thinking: str | None = None
    citation: _Found | None = None
    stop_reason: str | None = None


class _Error(msgspec.Struct, gc=False):
    type: str = ""
    message: str = ""


class _Event(msgspec.Struct, gc=False):
    type: str = ""
    index: int = 0
    message: _Message | None = None
    content_block: _Block | None = None
    delta: _Delta | None = None
    usage: _Usage | None = None
    error: _Error | None = None


_DECODER = msgspec.json.Decoder(_Event)


class _State:
    """What the stream has said so far: model, latest usage counts, tool ordinals, stop reason."""

    def __init__(self) -> None:
        self.model = ""
        self.counts: dict[str, int] = {}
        self.tools: dict[int, int] = {}  # Anthropic block index -> tool call ordinal (0, 1, ...)
        self.answer: set[int] = set()  # the blocks of a structured answer's tool (read as text)
        self.chars = 0  # characters of text so far (citations' offsets)
        self.cited: dict[int, tuple[int, list[_Found]]] = {}  # text block -> (its first character, its citations)
        self.stop_reason: str | None = None
        self.thought = 0  # characters of thinking so far

    def take_usage(self, usage: _Usage | None) -> None:
        for name, value in msgspec.structs.asdict(usage or _Usage()).items():
            if value is not None:
                self.counts[name] = value

    def usage(self) -> UsagePiece | None:
        if not self.counts:
            return None
        get = self.counts.get
        prompt = get("input_tokens", 0) + get("cache_creation_input_tokens", 0) + get("cache_read_input_tokens", 0)
        output = get("output_tokens", 0)
        return UsagePiece(
            prompt_tokens=prompt,
            completion_tokens=output,
            cached_tokens=get("cache_read_input_tokens", 0),
            # Anthropic counts thinking in output_tokens and reports no figure of its own: estimated from its text
            reasoning_tokens=min(output, tokens_for_chars(self.thought)),
        )


def _block_start(event: _Event, state: _State) -> list[Piece]:
    block = event.content_block
    if block is not None and block.type == "text":
        state.cited[event.index] = (state.chars, [])
        return []
    if block is not None and block.type == "web_search_tool_result" and isinstance(block.content, list):
        return [SourcePiece(found.url, found.title) for found in block.content if found.url]  # the results (raw)
    if block is None or block.type != "tool_use":  # server_tool_use (the search itself) included
        return []
    if block.name == ANSWER_TOOL:  # a structured answer (response_format): its input is the message's text
        state.answer.add(event.index)
        return []
    ordinal = state.tools[event.index] = len(state.tools)
    return [ToolCallPiece(ordinal, block.id, block.name, "")]


def _block_delta(event: _Event, state: _State) -> list[Piece]:
    delta = event.delta or _Delta()
    if delta.type == "text_delta" and delta.text:
        state.chars += len(delta.text)
        return [TextPiece(delta.text)]
    if delta.type == "citations_delta" and delta.citation is not None and event.index in state.cited:
        state.cited[event.index][1].append(delta.citation)
        return []
    if delta.type == "thinking_delta" and delta.thinking:
        state.thought += len(delta.thinking)
        return [ReasoningPiece(delta.thinking)]
    if delta.type == "input_json_delta" and delta.partial_json and event.index in state.answer:
        return [TextPiece(delta.partial_json)]
    if delta.type == "input_json_delta" and delta.partial_json and event.index in state.tools:
        return [ToolCallPiece(state.tools[event.index], arguments=delta.partial_json)]
    return []  # signature_delta, citations_delta, empty fragments, future delta types


def _error(event: _Event, target: Target) -> UpstreamError:
    error = event.error or _Error()
    code, retryable = _ERRORS.get(error.type, (ErrorCode.UPSTREAM_ERROR, False))
    detail = redact(error.message or error.type or "unknown error", target.api_key)[:500]
    return UpstreamError(f"{target.provider} reported an error mid-stream: {detail}", code=code, retryable=retryable)


def _pieces(event: _Event, state: _State, target: Target) -> list[Piece]:
    """Apply one event to ``state``; the pieces it yields right away."""
    if event.type == "message_start" and event.message is not None:
        state.take_usage(event.message.usage)
        if event.message.model and event.message.model != state.model:
            state.model = event.message.model
            return [ModelPiece(state.model)]
    elif event.type == "content_block_start":
        return _block_start(event, state)
    elif event.type == "content_block_delta":
        return _block_delta(event, state)
    elif event.type == "content_block_stop" and event.index in state.cited:  # a text block's citations cite it
        start, citations = state.cited.pop(event.index)
        return [SourcePiece(c.url, c.title, start, state.chars) for c in citations if c.url]
    elif event.type == "message_delta":
        state.stop_reason = (event.delta.stop_reason if event.delta else None) or state.stop_reason
        state.take_usage(event.usage)
    elif event.type == "error":
        raise _error(event, target)
    return []


async def iter_pieces(response: httpx.Response, target: Target) -> AsyncIterator[Piece]:
    state, stopped = _State(), False
    chunks = response.aiter_bytes()
    async for sse in iter_sse(chunks):
        if sse.event != "message" and sse.event not in _EVENTS:
            continue  # ping, content_block_stop and event types added after this was written
        try:
            event = _DECODER.decode(sse.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise UpstreamError(f"{target.provider} sent a malformed stream event ({sse.event})") from exc
        if event.type == "message_stop":
            stopped = True
            await drain(chunks)  # the connection goes back to the pool
            break
        for piece in _pieces(event, state, target):
            yield piece
    if not stopped:
        raise UpstreamError(
            f"{target.provider} ended the stream without message_stop (incomplete answer)",
            code=ErrorCode.UPSTREAM_INCOMPLETE,
            retryable=True,
        )
    usage = state.usage()
    if usage is not None:
        yield usage
    reason = state.stop_reason or "end_turn"
    if reason == "tool_use" and state.answer and not state.tools:  # the structured answer is the message
        reason = "end_turn"
    yield FinishPiece(_FINISH.get(reason, "stop"), state.model)
