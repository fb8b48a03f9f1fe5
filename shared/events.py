"""What a worker publishes about a job: a tagged union of frozen Structs.

Every event carries ``seq``, a number increasing by one per event of a job, starting at 1.
Each job ends with exactly one terminal event: ``Done`` or ``Failed``.
"""

from typing import Any

import msgspec

__all__ = [
    "Done",
    "Event",
    "Failed",
    "Heartbeat",
    "ModelInfo",
    "Native",
    "Source",
    "ReasoningDelta",
    "Started",
    "TextDelta",
    "ToolCallDelta",
    "Usage",
    "is_terminal",
]


class EventBase(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="type"):
    seq: int


class Started(EventBase, tag="started", frozen=True, kw_only=True):
    """A worker took the job (the queue deadline no longer applies)."""

    worker: str = ""


class TextDelta(EventBase, tag="text_delta", frozen=True, kw_only=True):
    text: str
    #: the upstream's logprobs object for this text, in OpenAI's shape, when the client asked for them
    logprobs: dict[str, Any] | None = None
    #: which of the ``n`` answers it belongs to (a request with ``n > 1``); 0 for the one answer
    choice: int = 0


class ReasoningDelta(EventBase, tag="reasoning_delta", frozen=True, kw_only=True):
    text: str
    choice: int = 0


class ToolCallDelta(EventBase, tag="tool_call_delta", frozen=True, kw_only=True):
    """A fragment of tool call ``index``: the first carries id and name, the rest argument text."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    choice: int = 0


class Usage(EventBase, tag="usage", frozen=True, kw_only=True):
    """Token counts: the upstream's own, or, for a job cut short before the upstream reported any
    (``estimated``), counted from the text the worker saw (``shared.tokens``)."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False


class ModelInfo(EventBase, tag="model_info", frozen=True, kw_only=True):
    """The model answering, as the upstream names it (after a fallback: the fallback's), and the upstream's
    ``system_fingerprint`` where it sends one. Published once, just before the answer's first content (or
    its end), so every frame of a stream can carry the same model."""

    model: str
    system_fingerprint: str = ""


class Source(EventBase, tag="source", frozen=True, kw_only=True):
    """A web source the answer drew on (a search the provider ran): cited for the text between ``start`` and
    ``end`` (character offsets into the answer's text), or, with ``start`` -1, a search result listed (its
    ``snippet`` where the provider gives one)."""

    url: str
    title: str = ""
    start: int = -1
    end: int = -1
    snippet: str = ""
    choice: int = 0


class Native(EventBase, tag="native", frozen=True, kw_only=True):
    """A piece of the upstream's answer in its own format, passed through as it came (a native proxy
    endpoint's): a stream frame's data, or a whole answer's JSON body."""

    data: str


class Heartbeat(EventBase, tag="heartbeat", frozen=True, kw_only=True):
    """The worker is alive but the upstream is silent; keeps the relay's idle deadline from firing."""


class Done(EventBase, tag="done", frozen=True, kw_only=True):
    """Terminal: success. ``finish_reason`` uses OpenAI's values; ``model`` is the model that answered."""

    finish_reason: str = "stop"
    model: str = ""
    #: milliseconds from the job's admission (``GenerationJob.created``) to its end, by the worker's clock
    elapsed_ms: int = 0
    #: with ``n > 1``: each answer's finish reason, by its index (``finish_reason`` is the first's)
    finish_reasons: list[str] = []


class Failed(EventBase, tag="failed", frozen=True, kw_only=True):
    """Terminal: failure, with an ``ErrorCode`` value and a message safe to show the client."""

    code: str
    message: str
    retryable: bool = False
    upstream_status: int | None = None
    #: the request field at fault, where there is one (an unsupported field, say)
    param: str | None = None


Event = (
    Started
    | ModelInfo
    | TextDelta
    | ReasoningDelta
    | ToolCallDelta
    | Source
    | Native
    | Usage
    | Heartbeat
    | Done
    | Failed
)


def is_terminal(event: Event) -> bool:
    return isinstance(event, Done | Failed)
