"""OpenAI stream payloads: a ``chat.completion.chunk`` (or ``text_completion``) per ``data:`` frame, then
``[DONE]``, byte for byte; ``services.api.sse`` frames them (with their ``id:``).

Each chunk's constant head (id, object, created, model, system_fingerprint) is encoded once per stream, from
the job's ``StreamView`` and its ``ModelInfo`` event (the model that answers, as the upstream names it, and its
fingerprint: both come before the first content), so every chunk names the same model as the non-streaming
body would, and a resume on any replica renders the same bytes.
"""

from typing import Any

from services.api.answer import annotation, search_result
from services.api.dialects.openai.errors import error_object
from services.api.dialects.openai.translate import usage_object
from services.api.errors import status_for
from services.api.wire import encode_json
from shared.events import Done, Event, Failed, ModelInfo, ReasoningDelta, Source, TextDelta, ToolCallDelta, Usage
from shared.jobs import StreamView

__all__ = ["DONE", "ChatChunkEncoder", "CompletionChunkEncoder"]

DONE = b"[DONE]"
_encode = encode_json


def _error_frames(event: Failed) -> list[bytes]:
    status = status_for(event.code)
    return [_encode({"error": error_object(status, event.code, event.message)}), DONE]


def _usage_chunk(head: bytes, usage: Usage | None) -> bytes:
    return head + b',"choices":[],"usage":' + _encode(usage_object(usage)) + b"}"


def _head(completion_id: str, kind: str, created: int, model: str, fingerprint: str) -> bytes:
    """A chunk's opening fields, without the closing brace; ``system_fingerprint`` only where there is one."""
    head: dict[str, object] = {"id": completion_id, "object": kind, "created": created, "model": model}
    if fingerprint:
        head["system_fingerprint"] = fingerprint
    return _encode(head)[:-1]


def _logprobs_json(logprobs: dict[str, Any] | None) -> bytes:
    return b"null" if logprobs is None else _encode(logprobs)


class ChatChunkEncoder:
    """Chunks of each answer (``choice``; several with ``n > 1``): its role chunk first, its deltas, and at the end
    a finish chunk per answer, then the usage chunk when asked for, then ``[DONE]``."""

    def __init__(self, completion_id: str, model: str, include_usage: bool, created: int) -> None:
        self._id, self._created = completion_id, created
        self._model(model, "")
        self._include_usage = include_usage
        self._usage: Usage | None = None
        self._started: set[int] = set()
        self._calls: set[tuple[int, int]] = set()

    @classmethod
    def for_view(cls, view: StreamView) -> "ChatChunkEncoder":
        return cls(view.id, view.model, view.include_usage, view.created)

    def _model(self, model: str, fingerprint: str) -> None:
        self._head = _head(self._id, "chat.completion.chunk", self._created, model, fingerprint)
        self._prefix = self._head + b',"choices":[{"index":'

    def _chunk(
        self,
        choice: int,
        delta: dict[str, Any],
        finish: str | None = None,
        logprobs: dict[str, Any] | None = None,
    ) -> bytes:
        finish_json = b"null" if finish is None else _encode(finish)
        tail = b',"logprobs":' + _logprobs_json(logprobs) + b',"finish_reason":' + finish_json + b"}]}"
        return self._prefix + b"%d" % choice + b',"delta":' + _encode(delta) + tail

    def _role(self, choice: int, content: str | None) -> dict[str, Any]:
        if choice in self._started:
            return {}
        self._started.add(choice)
        return {"role": "assistant", "content": content, "refusal": None}

    def encode(self, event: Event) -> list[bytes]:
        match event:
            case TextDelta(text=text, logprobs=logprobs, choice=choice):
                role = self._role(choice, "")
                chunk = self._chunk(choice, {"content": text}, logprobs=logprobs)
                return [self._chunk(choice, role), chunk] if role else [chunk]
            case ModelInfo(model=model, system_fingerprint=fingerprint):
                if not self._started and model:  # it comes first: every chunk carries the same head
                    self._model(model, fingerprint)
                return []
            case ReasoningDelta(text=text, choice=choice):
                return [self._chunk(choice, {**self._role(choice, None), "reasoning_content": text})]
            case Source():
                return [self._source(event)]
            case ToolCallDelta(choice=choice):
                return [self._chunk(choice, {**self._role(choice, None), "tool_calls": [self._tool_call(event)]})]
            case Usage():
                self._usage = event
                return []
            case Done():
                return self._end(event)
            case Failed():
                return _error_frames(event)
            case _:
                return []

    def _source(self, event: Source) -> bytes:
        """A cited source as an ``annotations`` delta; a search result (``raw``) as a ``search_results`` one."""
        found = {"annotations": [annotation(event)]} if event.start >= 0 else None
        delta = found or {"search_results": [search_result(event)]}
        return self._chunk(event.choice, {**self._role(event.choice, ""), **delta})

    def _end(self, event: Done) -> list[bytes]:
        """A finish chunk per answer (a role chunk first for one that said nothing), the usage, ``[DONE]``."""
        frames = []
        for choice, finish in enumerate(event.finish_reasons or [event.finish_reason]):
            role = self._role(choice, "")
            if role:
                frames.append(self._chunk(choice, role))
            frames.append(self._chunk(choice, {}, finish))
        if self._include_usage:
            frames.append(_usage_chunk(self._head, self._usage))
        return [*frames, DONE]

    def _tool_call(self, event: ToolCallDelta) -> dict[str, Any]:
        if (event.choice, event.index) in self._calls:
            return {"index": event.index, "function": {"arguments": event.arguments}}
        self._calls.add((event.choice, event.index))
        return {
            "index": event.index,
            "id": event.id or f"call_{event.index}",
            "type": "function",
            "function": {"name": event.name or "", "arguments": event.arguments},
        }


class CompletionChunkEncoder:
    """Legacy ``text_completion`` chunks: each a whole completion object holding the new text only."""

    def __init__(self, completion_id: str, model: str, include_usage: bool, created: int) -> None:
        self._id, self._created = completion_id, created
        self._model(model, "")
        self._include_usage = include_usage
        self._usage: Usage | None = None
        self._started = False

    @classmethod
    def for_view(cls, view: StreamView) -> "CompletionChunkEncoder":
        return cls(view.id, view.model, view.include_usage, view.created)

    def _model(self, model: str, fingerprint: str) -> None:
        self._head = _head(self._id, "text_completion", self._created, model, fingerprint)
        self._prefix = self._head + b',"choices":[{"text":'

    def _chunk(
        self, text: str, finish: str | None = None, logprobs: dict[str, Any] | None = None, choice: int = 0
    ) -> bytes:
        self._started = True
        finish_json = b"null" if finish is None else _encode(finish)
        tail = b',"logprobs":' + _logprobs_json(logprobs) + b',"finish_reason":' + finish_json + b"}]}"
        return self._prefix + _encode(text) + b',"index":%d' % choice + tail

    def encode(self, event: Event) -> list[bytes]:
        match event:
            case TextDelta(text=text, logprobs=logprobs, choice=choice):
                return [self._chunk(text, logprobs=logprobs, choice=choice)]
            case ModelInfo(model=model, system_fingerprint=fingerprint):
                if not self._started and model:
                    self._model(model, fingerprint)
                return []
            case Usage():
                self._usage = event
                return []
            case Done(finish_reason=reason, finish_reasons=reasons):
                frames = [self._chunk("", finish, choice=choice) for choice, finish in enumerate(reasons or [reason])]
                if self._include_usage:
                    frames.append(_usage_chunk(self._head, self._usage))
                return [*frames, DONE]
            case Failed():
                return _error_frames(event)
            case _:
                return []
