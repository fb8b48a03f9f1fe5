"""Bodies of the simple AI API (``/api/ai/chat``, ``/api/ai/completions``)."""

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

__all__ = ["AiChatRequest", "AiCompletionRequest", "AiMessage", "Provider"]

Provider = Literal["openai", "anthropic", "gemini", "echo"]
Temperature = Annotated[float, Meta(ge=0.0, le=2.0)]
MaxTokens = Annotated[int, Meta(ge=1, le=16384)]


class AiMessage(msgspec.Struct, kw_only=True):
    role: Literal["system", "user", "assistant"]
    content: str


class _Common(msgspec.Struct, kw_only=True):
    provider: Provider | None = None
    model: str | None = None
    temperature: Temperature = 0.7
    max_tokens: MaxTokens = 1000
    stream: bool = False


class AiChatRequest(_Common, kw_only=True):
    messages: Annotated[list[AiMessage], Meta(min_length=1)]


class AiCompletionRequest(_Common, kw_only=True):
    prompt: Annotated[str, Meta(min_length=1)]
    system_prompt: str | None = None
