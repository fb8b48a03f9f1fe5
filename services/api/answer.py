"""A job's whole answer, gathered from its events (for non-streaming replies and the dialects' body builders).

Pure: the translators and body builders import this, never the orchestrator (``services.api.generation``).
"""

from collections.abc import AsyncIterator, Iterable
from typing import Any

import msgspec

from shared.errors import ErrorCode, GatewayError
from shared.events import Done, Event, Failed, ModelInfo, Native, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from shared.jobs import ToolCall

__all__ = ["Answer", "answer_of", "failure_error", "gather_answer"]


class Answer(msgspec.Struct, kw_only=True):
    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = []
    usage: Usage | None = None
    finish_reason: str = "stop"
    model: str = ""
    system_fingerprint: str = ""
    #: the upstream's logprobs objects of the whole text, their lists joined (when the client asked for them)
    logprobs: dict[str, Any] | None = None
    #: milliseconds from the job's admission to its end, as the worker measured it
    elapsed_ms: int = 0
    #: the upstream's own answer, passed through (a native proxy endpoint's job): its frames' data, in order
    native: list[str] = []


def failure_error(failed: Failed) -> GatewayError:
    try:
        code = ErrorCode(failed.code)
    except ValueError:
        code = ErrorCode.INTERNAL
    return GatewayError(
        failed.message,
        code=code,
        retryable=failed.retryable,
        upstream_status=failed.upstream_status,
        param=failed.param,
    )


def _join_logprobs(answer: Answer, logprobs: dict[str, Any]) -> None:
    if answer.logprobs is None:
        answer.logprobs = {}
    for key, value in logprobs.items():
        if isinstance(value, list) and isinstance(answer.logprobs.get(key), list):
            answer.logprobs[key] = answer.logprobs[key] + value
        elif value is not None or key not in answer.logprobs:
            answer.logprobs[key] = value


def _add(answer: Answer, event: Event, parts: list[str], calls: dict[int, list[str]]) -> None:
    match event:
        case TextDelta(text=text, logprobs=logprobs):
            parts.append(text)
            if logprobs is not None:
                _join_logprobs(answer, logprobs)
        case ModelInfo(model=model, system_fingerprint=fingerprint):
            answer.model, answer.system_fingerprint = model or answer.model, fingerprint
        case ReasoningDelta(text=text):
            answer.reasoning += text
        case ToolCallDelta(index=index, id=call_id, name=name, arguments=arguments):
            slot = calls.setdefault(index, ["", "", ""])
            slot[0] = call_id or slot[0]
            slot[1] = name or slot[1]
            slot[2] += arguments
        case Native(data=data):
            answer.native.append(data)
        case Usage():
            answer.usage = event
        case Done(finish_reason=reason, model=model, elapsed_ms=elapsed):
            answer.finish_reason, answer.model, answer.elapsed_ms = reason, model or answer.model, elapsed
        case Failed():
            raise failure_error(event)


def answer_of(events: Iterable[Event | None], model: str) -> Answer:
    """A whole answer from a job's events (a ``Failed`` raises its error)."""
    answer = Answer(model=model)
    parts: list[str] = []
    calls: dict[int, list[str]] = {}
    for event in events:
        if event is not None:
            _add(answer, event, parts, calls)
    answer.text = "".join(parts)
    answer.tool_calls = [ToolCall(id=c[0], name=c[1], arguments=c[2]) for _, c in sorted(calls.items())]
    return answer


async def gather_answer(events: AsyncIterator[Event | None], model: str) -> Answer:
    """``answer_of`` a live job's events, as they come (they end with its terminal one)."""
    return answer_of([event async for event in events], model)
