"""The job the API enqueues and the worker runs, in canonical (provider-neutral) form.

Schema evolution: new fields always get defaults and types never change, so an old worker can read a
new job during a rolling deploy (no ``forbid_unknown_fields``).
"""

from typing import Any, Literal

import msgspec

__all__ = [
    "ChatMessage",
    "ChatTurn",
    "ContentPart",
    "GenerationJob",
    "ImagePart",
    "OnDisconnect",
    "Principal",
    "Role",
    "Admission",
    "SamplingParams",
    "StreamRecord",
    "StreamView",
    "TextPart",
    "ToolCall",
    "ToolSpec",
    "TurnMessage",
    "UpstreamOverride",
    "message_text",
]

Role = Literal["system", "user", "assistant", "tool"]
#: what a client's disconnect does to its job: stop it, or let it run on so its stream can be resumed
OnDisconnect = Literal["cancel", "detach"]


class _Wire(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Base of every internal message: immutable, compact on the wire."""


class Principal(_Wire, frozen=True, kw_only=True):
    """Who asked: the authenticated user, their tier and the API key id (never the token itself)."""

    user_id: str
    tier: str
    key_id: str | None = None


class TextPart(_Wire, tag="text", tag_field="type", frozen=True, kw_only=True):
    text: str


class ImagePart(_Wire, tag="image", tag_field="type", frozen=True, kw_only=True):
    """An image by URL or ``data:`` URL; ``detail`` is OpenAI's hint (auto|low|high)."""

    url: str
    detail: str | None = None


ContentPart = TextPart | ImagePart


class ToolCall(_Wire, frozen=True, kw_only=True):
    """A tool call made by the assistant; ``arguments`` is a JSON text, as OpenAI sends it."""

    id: str
    name: str
    arguments: str = ""


class ChatMessage(_Wire, frozen=True, kw_only=True):
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] = []
    tool_call_id: str | None = None


class ToolSpec(_Wire, frozen=True, kw_only=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class SamplingParams(_Wire, frozen=True, kw_only=True):
    """What shapes the answer, in OpenAI's terms (each adapter maps it to its provider's, or refuses it).

    ``extra`` holds the client's other request fields, by their OpenAI names and as sent (``logit_bias``,
    ``metadata``, ``store``, ``service_tier``, a server's own extensions, ...): an OpenAI-compatible upstream
    gets them unchanged; other providers map the ones with a documented mapping and refuse the rest.
    """

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] = []
    seed: int | None = None
    n: int | None = None  # None: not sent
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    tools: list[ToolSpec] = []
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    #: the end user's id, for the provider's abuse monitoring
    user: str | None = None
    reasoning_effort: str | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    #: the original API's search fields: search the web with the provider's own search (``internet``; OpenAI's
    #: ``web_search_options`` asks for it too), cite the sources used (``citations``, on unless false), and list
    #: the search results themselves (``raw``)
    internet: bool | None = None
    citations: bool | None = None
    raw: bool | None = None
    extra: dict[str, Any] = {}


class UpstreamOverride(_Wire, frozen=True, kw_only=True):
    """For proxy endpoints: the upstream a client named (checked by the API against the egress policy, and
    again by the worker, which also checks every address it resolves), and the key it gave, sealed.

    ``kind``: ``openai`` (an OpenAI-compatible server, the job canonical as any) or ``gemini`` (Gemini's own
    API, the client's request passed through as ``body`` and the answer back as ``Native`` events).
    ``sealed_key``: the client's key, sealed (``services.sealing``; never in clear in a job); empty for a Gemini
    job that uses the gateway's own key, which the worker allows only for its configured Gemini base URL."""

    base_url: str
    kind: Literal["openai", "gemini"] = "openai"
    #: ``host`` or ``host:port``: the provider the job's usage and logs name
    origin: str = ""
    sealed_key: str = ""
    body: bytes = b""
    #: the request field an ``openai`` upstream gets the output cap in: the one the client used
    max_tokens_field: str = "max_tokens"
    #: the API version a ``gemini`` upstream is called with (``v1beta`` or ``v1``): the one the client used
    api_version: str = "v1beta"


class StreamView(_Wire, frozen=True, kw_only=True):
    """How the API that took the request renders the job's events, so that any replica can render a resume
    of it byte for byte: the dialect's encoder (``dialect``), the response id, the model as the client named
    it, the ``created`` time the frames carry, and whether the client asked for a usage chunk."""

    dialect: str
    id: str
    model: str
    created: int = 0
    include_usage: bool = False
    #: values a dialect's frames carry besides these (the chat dialect's ``chatId`` and ``title``)
    labels: dict[str, str] = {}


class Admission(_Wire, frozen=True, kw_only=True):
    """What the API's admission charged for a job, for the worker to settle with the real usage: the limit
    subject (``user:<id>`` or ``key:<id>``), the tokens reserved, and the subject's tokens/min (the bucket's
    size); ``lease``: the job holds one of the subject's concurrent-stream leases (the API renews and
    releases it)."""

    subject: str
    reserved: int = 0
    tokens_per_minute: int = 0
    lease: bool = False


class TurnMessage(_Wire, frozen=True, kw_only=True):
    """A message the client added to a chat with a generation, saved with the reply (``created_at``: ms)."""

    id: str
    role: Role
    content: str
    created_at: int


class ChatTurn(_Wire, frozen=True, kw_only=True):
    """A generation on a saved chat: when the job ends, the worker saves the client's new messages (``turns``)
    and its reply there, in one step (the reply as message ``reply_id``, answered as ``persona``), and lets go
    of the chat's generation lock the job holds."""

    chat_id: str
    reply_id: str
    persona: str = ""
    turns: list[TurnMessage] = []
    #: the generation that created the chat: its title may be rewritten by a model afterwards
    first: bool = False


class GenerationJob(_Wire, frozen=True, kw_only=True):
    id: str
    request_id: str
    principal: Principal
    provider: str
    model: str
    messages: list[ChatMessage]
    params: SamplingParams = SamplingParams()
    stream: bool = True
    created: float = 0.0
    deadline: float = 0.0
    upstream: UpstreamOverride | None = None
    #: pub/sub channel of the API process relaying the job (empty: nobody relays it live)
    reply_to: str = ""
    view: StreamView | None = None
    on_disconnect: OnDisconnect = "cancel"
    #: the client's own name for the job (``x-conduit-job-name``), empty if it gave none
    name: str = ""
    admission: Admission | None = None
    #: a legacy completion's prompt (``/v1/completions``): an OpenAI-compatible upstream gets it as is, at its
    #: own completions endpoint; other providers answer it as the one user message ``messages`` holds
    prompt: str | None = None
    chat: ChatTurn | None = None
    #: the W3C ``traceparent`` of the API request's span (tracing on): the worker's span is its child
    trace: str = ""


class StreamRecord(_Wire, frozen=True, kw_only=True):
    """What the worker keeps beside a job's replay log, for resumes: whose it is and how to render it."""

    owner: str
    view: StreamView
    stream: bool = True
    on_disconnect: OnDisconnect = "cancel"


def message_text(message: ChatMessage) -> str:
    """The text of a message, its text parts joined; images contribute nothing."""
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content if isinstance(part, TextPart))
