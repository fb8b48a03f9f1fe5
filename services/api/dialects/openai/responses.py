"""The OpenAI dialect's responses as msgspec Structs, for ``/openapi.json`` only: the bodies and chunks are
built in ``translate.py`` and ``sse.py``; the examples in ``docs.py`` are made by those, and a test holds both
them and the running gateway's answers to these Structs.

The Structs take OpenAI's names (``CreateChatCompletionResponse``, ``Model``, ``ErrorResponse``...) and
forbid unknown fields: the document lists every field the gateway sends, and nothing else.
"""

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

__all__ = [
    "Exact",
    "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse",
    "CreateCompletionResponse",
    "CreateCompletionStreamResponse",
    "ErrorResponse",
    "ListModelsResponse",
    "Model",
]


class Exact(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Documentation-only: every field the gateway sends, and nothing else."""


FinishReason = Annotated[
    str,
    Meta(
        description="Why the model stopped, in OpenAI's values: `stop`, `length`, `tool_calls`, `content_filter` "
        "(an OpenAI-compatible upstream's own value passes through)."
    ),
]
Logprobs = Annotated[
    dict[str, Any] | None,
    Meta(description="The upstream's log probabilities, in OpenAI's shape, when the request asked for them."),
]
Created = Annotated[int, Meta(description="Unix time (seconds) when the job was created.")]
AnsweringModel = Annotated[
    str, Meta(description="The model that answered, as the upstream names it (else as the request named it).")
]
Fingerprint = Annotated[str, Meta(description="The upstream's `system_fingerprint`; absent when it sent none.")]


class Error(Exact, kw_only=True):
    message: Annotated[str, Meta(description="What went wrong, for people.")]
    type: Annotated[
        str,
        Meta(description="OpenAI's error type, from the status: `invalid_request_error`, `authentication_error`, …"),
    ]
    param: Annotated[str | None, Meta(description="The request field at fault (`messages.[0].content`), if one.")]
    code: Annotated[
        str, Meta(description="A stable code: `invalid_api_key`, `model_not_found`, `rate_limit_exceeded`…")
    ]


class ErrorResponse(Exact, kw_only=True):
    """An error, as OpenAI sends them (and as an error frame of a stream, before `[DONE]`)."""

    error: Error


class Model(Exact, kw_only=True):
    """A model a client can name: `provider/model` (any name the chat endpoint takes can be retrieved)."""

    id: Annotated[str, Meta(examples=["openai/gpt-4o-mini"])]
    object: Literal["model"]
    created: Annotated[int, Meta(description="Unix time (seconds) of the model's release; 0 when not known.")]
    owned_by: Annotated[str, Meta(description="The provider serving it.")]


class ListModelsResponse(Exact, kw_only=True):
    """The models of the providers that live workers serve now, by the names to use."""

    object: Literal["list"]
    data: list[Model]


class PromptTokensDetails(Exact, kw_only=True):
    cached_tokens: int


class CompletionTokensDetails(Exact, kw_only=True):
    reasoning_tokens: int


class CompletionUsage(Exact, kw_only=True):
    """Token counts of the request (zeros, without details, when the upstream reported none)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | UnsetType = UNSET
    completion_tokens_details: CompletionTokensDetails | UnsetType = UNSET


class ToolCallFunction(Exact, kw_only=True):
    name: str
    arguments: Annotated[str, Meta(description="The arguments, as the JSON text the model wrote.")]


class MessageToolCall(Exact, kw_only=True):
    id: str
    type: Literal["function"]
    function: ToolCallFunction


class ChatCompletionResponseMessage(Exact, kw_only=True):
    role: Literal["assistant"]
    content: Annotated[str | None, Meta(description="The answer's text; null when the model only called tools.")]
    refusal: None
    annotations: list[dict[str, Any]]
    reasoning_content: str | UnsetType = UNSET
    tool_calls: list[MessageToolCall] | UnsetType = UNSET


class ChatCompletionChoice(Exact, kw_only=True):
    index: int
    message: ChatCompletionResponseMessage
    logprobs: Logprobs
    finish_reason: FinishReason


class CreateChatCompletionResponse(Exact, kw_only=True):
    """A chat completion (`stream` false or absent)."""

    id: Annotated[str, Meta(pattern="^chatcmpl-")]
    object: Literal["chat.completion"]
    created: Created
    model: AnsweringModel
    choices: list[ChatCompletionChoice]
    usage: CompletionUsage
    system_fingerprint: Fingerprint | UnsetType = UNSET


class ChunkToolCallFunction(Exact, kw_only=True):
    name: str | UnsetType = UNSET
    arguments: str


class ChunkToolCall(Exact, kw_only=True):
    """A piece of a tool call: the first one of each `index` carries `id`, `type` and the function's `name`."""

    index: int
    id: str | UnsetType = UNSET
    type: Literal["function"] | UnsetType = UNSET
    function: ChunkToolCallFunction


class ChatCompletionStreamResponseDelta(Exact, kw_only=True):
    role: Literal["assistant"] | UnsetType = UNSET
    content: str | UnsetType | None = UNSET
    refusal: UnsetType | None = UNSET
    reasoning_content: str | UnsetType = UNSET
    tool_calls: list[ChunkToolCall] | UnsetType = UNSET


class ChatCompletionStreamChoice(Exact, kw_only=True):
    index: int
    delta: ChatCompletionStreamResponseDelta
    logprobs: Logprobs
    finish_reason: FinishReason | None


class CreateChatCompletionStreamResponse(Exact, kw_only=True):
    """One `data:` frame of a chat completion stream. With `stream_options.include_usage`, the last chunk
    before `[DONE]` has no choices and carries `usage`."""

    id: Annotated[str, Meta(pattern="^chatcmpl-")]
    object: Literal["chat.completion.chunk"]
    created: Created
    model: AnsweringModel
    system_fingerprint: Fingerprint | UnsetType = UNSET
    choices: list[ChatCompletionStreamChoice]
    usage: CompletionUsage | UnsetType = UNSET


class CompletionChoice(Exact, kw_only=True):
    text: str
    index: int
    logprobs: Logprobs
    finish_reason: FinishReason


class CreateCompletionResponse(Exact, kw_only=True):
    """A legacy text completion (`stream` false or absent)."""

    id: Annotated[str, Meta(pattern="^cmpl-")]
    object: Literal["text_completion"]
    created: Created
    model: AnsweringModel
    choices: list[CompletionChoice]
    usage: CompletionUsage
    system_fingerprint: Fingerprint | UnsetType = UNSET


class CompletionStreamChoice(Exact, kw_only=True):
    text: str
    index: int
    logprobs: Logprobs
    finish_reason: FinishReason | None


class CreateCompletionStreamResponse(Exact, kw_only=True):
    """One `data:` frame of a legacy completion stream (the last, with `include_usage`, has only `usage`)."""

    id: Annotated[str, Meta(pattern="^cmpl-")]
    object: Literal["text_completion"]
    created: Created
    model: AnsweringModel
    system_fingerprint: Fingerprint | UnsetType = UNSET
    choices: list[CompletionStreamChoice]
    usage: CompletionUsage | UnsetType = UNSET
