"""A job's whole answer, gathered from its events (for non-streaming replies and the dialects' body builders).

Pure: the translators and body builders import this, never the orchestrator (``services.api.generation``).
"""

from collections.abc import AsyncIterator, Iterable
from typing import Any

import msgspec

from shared.errors import ErrorCode, GatewayError
from shared.events import (
    Done,
    Event,
    Failed,
    ModelInfo,
    Native,
    ReasoningDelta,
    Source,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from shared.jobs import ToolCall

__all__ = ["Answer", "Choice", "annotation", "answer_of", "failure_error", "gather_answer", "search_result"]


class Choice(msgspec.Struct, kw_only=True):
    """One of the ``n`` answers of a request with ``n > 1``."""

    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = []
    finish_reason: str = "stop"
    logprobs: dict[str, Any] | None = None
    #: web search's sources: ``url_citation`` annotations (OpenAI's shape), and the search results (``raw``)
    annotations: list[dict[str, Any]] = []
    search_results: list[dict[str, Any]] = []


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
    #: with ``n > 1``: every answer by index (the first one's are the fields above too); empty for one answer
    choices: list[Choice] = []
    annotations: list[dict[str, Any]] = []
    search_results: list[dict[str, Any]] = []


def annotation(source: Source) -> dict[str, Any]:
    """A cited source as OpenAI's ``url_citation`` annotation."""
    cited = {"end_index": source.end, "start_index": source.start, "title": source.title, "url": source.url}
    return {"type": "url_citation", "url_citation": cited}


def search_result(source: Source) -> dict[str, Any]:
    """A search result (``raw``): its title, url and snippet."""
    return {"title": source.title, "url": source.url, "snippet": source.snippet}


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


def _join_logprobs(choice: Choice, logprobs: dict[str, Any]) -> None:
    if choice.logprobs is None:
        choice.logprobs = {}
    for key, value in logprobs.items():
        if isinstance(value, list) and isinstance(choice.logprobs.get(key), list):
            choice.logprobs[key] = choice.logprobs[key] + value
        elif value is not None or key not in choice.logprobs:
            choice.logprobs[key] = value


class _Gathering:
    """Each answer's pieces as they come, by its index."""

    def __init__(self) -> None:
        self.choices: dict[int, Choice] = {}
        self.parts: dict[int, list[str]] = {}
        self.calls: dict[int, dict[int, list[str]]] = {}
        self.reasons: list[str] = []

    def choice(self, index: int) -> Choice:
        if index not in self.choices:
            self.choices[index], self.parts[index], self.calls[index] = Choice(), [], {}
        return self.choices[index]

    def done(self) -> list[Choice]:
        count = max(len(self.reasons), max(self.choices, default=0) + 1)
        for index in range(count):
            choice = self.choice(index)
            choice.text = "".join(self.parts[index])
            calls = sorted(self.calls[index].items())
            choice.tool_calls = [ToolCall(id=c[0], name=c[1], arguments=c[2]) for _, c in calls]
            if index < len(self.reasons):
                choice.finish_reason = self.reasons[index]
        return [self.choices[index] for index in range(count)]


def _add(answer: Answer, event: Event, gathering: _Gathering) -> None:
    match event:
        case TextDelta(text=text, logprobs=logprobs, choice=index):
            gathering.choice(index)
            gathering.parts[index].append(text)
            if logprobs is not None:
                _join_logprobs(gathering.choices[index], logprobs)
        case ModelInfo(model=model, system_fingerprint=fingerprint):
            answer.model, answer.system_fingerprint = model or answer.model, fingerprint
        case ReasoningDelta(text=text, choice=index):
            gathering.choice(index).reasoning += text
        case ToolCallDelta(index=index, id=call_id, name=name, arguments=arguments, choice=at):
            gathering.choice(at)
            slot = gathering.calls[at].setdefault(index, ["", "", ""])
            slot[0] = call_id or slot[0]
            slot[1] = name or slot[1]
            slot[2] += arguments
        case Source(choice=index):
            into = gathering.choice(index)
            if event.start >= 0:
                into.annotations = [*into.annotations, annotation(event)]
            else:
                into.search_results = [*into.search_results, search_result(event)]
        case Native(data=data):
            answer.native.append(data)
        case Usage():
            answer.usage = event
        case Done(finish_reason=reason, model=model, elapsed_ms=elapsed, finish_reasons=reasons):
            answer.finish_reason, answer.model, answer.elapsed_ms = reason, model or answer.model, elapsed
            gathering.reasons = list(reasons) or [reason]
        case Failed():
            raise failure_error(event)


def answer_of(events: Iterable[Event | None], model: str) -> Answer:
    """A whole answer from a job's events (a ``Failed`` raises its error)."""
    answer = Answer(model=model)
    gathering = _Gathering()
    for event in events:
        if event is not None:
            _add(answer, event, gathering)
    choices = gathering.done()
    first = choices[0]
    answer.text, answer.reasoning, answer.tool_calls = first.text, first.reasoning, first.tool_calls
    answer.logprobs = first.logprobs
    answer.annotations, answer.search_results = first.annotations, first.search_results
    if len(choices) > 1:
        answer.choices = choices
    return answer


async def gather_answer(events: AsyncIterator[Event | None], model: str) -> Answer:
    """``answer_of`` a live job's events, as they come (they end with its terminal one)."""
    return answer_of([event async for event in events], model)
