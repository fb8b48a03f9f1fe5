"""OpenAI request bodies as msgspec Structs (unknown fields tolerated, ranges from the OpenAI spec)."""

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from services.api.images import check_image_url
from services.api.settings import ApiSettings

__all__ = [
    "CHAT_FIELDS",
    "COMPLETION_FIELDS",
    "ChatCompletionRequest",
    "CompletionRequest",
    "Message",
]


class _Lenient(msgspec.Struct, kw_only=True):
    """Request Structs ignore unknown fields: vendors add fields often and SDKs send them."""


class ImageURL(_Lenient, kw_only=True):
    url: str
    detail: str | None = None


class TextContent(_Lenient, tag="text", tag_field="type"):
    text: str


class ImageContent(_Lenient, tag="image_url", tag_field="type"):
    image_url: ImageURL


class RefusalContent(_Lenient, tag="refusal", tag_field="type"):
    refusal: str


ContentPart = TextContent | ImageContent | RefusalContent


class FunctionCall(_Lenient, kw_only=True):
    name: str
    arguments: str = ""


class ToolCallIn(_Lenient, kw_only=True):
    id: str
    function: FunctionCall
    type: str = "function"


class Message(_Lenient, kw_only=True):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None


class FunctionSpec(_Lenient, kw_only=True):
    name: Annotated[str, Meta(pattern=r"^[a-zA-Z0-9_-]{1,64}$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(_Lenient, kw_only=True):
    type: Literal["function"] = "function"
    function: FunctionSpec


class StreamOptions(_Lenient, kw_only=True):
    include_usage: bool | None = None


Temperature = Annotated[float, Meta(ge=0, le=2)]
TopP = Annotated[float, Meta(ge=0, le=1)]
Penalty = Annotated[float, Meta(ge=-2, le=2)]
#: token counts fit an int32 and seeds an int64 upstream: larger numbers are a 400 here, not an upstream's error
PositiveInt = Annotated[int, Meta(ge=1, le=2**31 - 1)]
Int64 = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
Stop = str | Annotated[list[str], Meta(max_length=4)]


class _Sampling(_Lenient, kw_only=True):
    model: str
    temperature: Temperature | None = None
    top_p: TopP | None = None
    n: Annotated[int, Meta(ge=1, le=128)] | None = None
    max_tokens: PositiveInt | None = None
    stop: Stop | None = None
    seed: Int64 | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    user: str | None = None


class ChatCompletionRequest(_Sampling, kw_only=True):
    messages: Annotated[list[Message], Meta(min_length=1)]
    max_completion_tokens: PositiveInt | None = None
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: str | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Meta(ge=0, le=20)] | None = None
    #: the original API's extensions (``extensions.py``): a tone's instruction and sampling, and an image for
    #: the last user message
    tone: Literal["precise", "balanced", "creative"] | None = None
    image: Annotated[str, Meta(min_length=1)] | None = None
    #: and its search fields: the provider's web search, the sources it cites, the search results themselves
    internet: bool | None = None
    citations: bool | None = None
    raw: bool | None = None

    def check_limits(self, settings: ApiSettings) -> None:
        """Image URLs: https, http or a bounded ``data:image`` (``services.api.images``)."""
        if self.image is not None:
            check_image_url(self.image, settings.max_image_bytes, "image")
        for index, message in enumerate(self.messages):
            if isinstance(message.content, list):
                for part_index, part in enumerate(message.content):
                    if isinstance(part, ImageContent):
                        param = f"messages.[{index}].content.[{part_index}].image_url.url"
                        check_image_url(part.image_url.url, settings.max_image_bytes, param)


class CompletionRequest(_Sampling, kw_only=True):
    prompt: str | Annotated[list[str], Meta(min_length=1, max_length=1)]
    echo: bool | None = None
    suffix: str | None = None
    logprobs: Annotated[int, Meta(ge=0, le=5)] | None = None
    best_of: Annotated[int, Meta(ge=0, le=20)] | None = None
    logit_bias: dict[str, Int64] | None = None


#: the fields a chat request's canonical job holds in typed slots; any other field the client sends travels
#: in ``SamplingParams.extra`` under its own name (``stream`` and ``stream_options`` are the gateway's own)
CHAT_FIELDS = frozenset(ChatCompletionRequest.__struct_fields__)
#: likewise for a legacy completion: its own fields (``echo``, ``suffix``, ``logprobs``, ...) go as sent
COMPLETION_FIELDS = frozenset(_Sampling.__struct_fields__) | {"prompt"}


class ExpiresAfter(_Lenient, kw_only=True):
    anchor: Literal["created_at"]
    seconds: Annotated[int, Meta(ge=3600, le=2_592_000)]


class CreateBatchRequest(_Lenient, kw_only=True):
    """A batch of the requests in an uploaded file (`POST /v1/files`, `purpose=batch`)."""

    input_file_id: Annotated[str, Meta(max_length=64)]
    endpoint: Literal["/v1/chat/completions", "/v1/completions"]
    completion_window: Literal["24h"]
    metadata: dict[str, str] | None = None
    #: how long the output and error files are kept (default 30 days)
    output_expires_after: ExpiresAfter | None = None
