"""Simple AI requests -> canonical jobs; answers -> ``{content|completion, model, usage}``."""

from typing import Any

from services.api.answer import Answer
from services.api.dialects.ai.schemas import AiChatRequest, AiCompletionRequest
from services.api.wire import encode_json
from shared.catalog import Catalog, resolve_model
from shared.jobs import ChatMessage, SamplingParams

__all__ = ["answer_body", "choose_model", "to_messages", "to_params"]


def choose_model(
    catalog: Catalog, providers: frozenset[str], body: AiChatRequest | AiCompletionRequest
) -> tuple[str, str]:
    """(provider, model): the named provider; with none, the model's own (catalog, prefix) if a model is
    given, else openai, else echo when openai has no key."""
    if body.provider is None and body.model and body.model.strip():
        return resolve_model(catalog, body.model)
    provider = body.provider or ("openai" if "openai" in providers else "echo")
    model = (body.model or "").strip() or catalog.providers[provider].default_model
    return provider, model.removeprefix(f"{provider}/")


def to_messages(body: AiChatRequest | AiCompletionRequest) -> list[ChatMessage]:
    if isinstance(body, AiChatRequest):
        return [ChatMessage(role=m.role, content=m.content) for m in body.messages]
    messages = [ChatMessage(role="system", content=body.system_prompt)] if body.system_prompt else []
    return [*messages, ChatMessage(role="user", content=body.prompt)]


def to_params(body: AiChatRequest | AiCompletionRequest) -> SamplingParams:
    return SamplingParams(temperature=body.temperature, max_tokens=body.max_tokens)


def answer_body(field: str, model: str, answer: Answer) -> bytes:
    usage = answer.usage
    prompt = usage.prompt_tokens if usage else 0
    completion = usage.completion_tokens if usage else 0
    body: dict[str, Any] = {
        field: answer.text,
        "model": answer.model or model,
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }
    return encode_json(body)
