"""An OpenAI request body as the canonical job it asks for: checked, translated, its model resolved. The
synchronous endpoints and the batch lines that call them (``batch_lines.py``) share these, so a line is refused
exactly when the endpoint would refuse it."""

import msgspec

from services.api.body import decode_body
from services.api.dialects.openai.extensions import with_image, with_tone
from services.api.dialects.openai.schemas import (
    CHAT_FIELDS,
    COMPLETION_FIELDS,
    ChatCompletionRequest,
    CompletionRequest,
)
from services.api.dialects.openai.translate import CHAT, COMPLETION, extra_fields, to_messages, to_params
from services.api.generation import JobRequest, Rendering
from services.api.settings import ApiSettings
from shared.catalog import Catalog, resolve_model
from shared.jobs import ChatMessage

__all__ = ["CHAT", "COMPLETION", "chat_request", "completion_request"]


_CHAT = msgspec.json.Decoder(ChatCompletionRequest)
_COMPLETION = msgspec.json.Decoder(CompletionRequest)


def _include_usage(body: ChatCompletionRequest | CompletionRequest) -> bool:
    return bool(body.stream and body.stream_options and body.stream_options.include_usage)


def chat_request(
    raw: bytes, settings: ApiSettings, catalog: Catalog | None
) -> tuple[ChatCompletionRequest, JobRequest]:
    """``catalog`` None: the model is the upstream's own name, passed as is (a proxy endpoint's request, whose
    provider the route sets)."""
    body = decode_body(_CHAT, raw, settings)
    provider, model = resolve_model(catalog, body.model) if catalog is not None else ("", body.model)
    rendering = Rendering(CHAT, "chatcmpl-", body.model, _include_usage(body))
    messages, params = to_messages(body.messages), to_params(body, extra_fields(raw, CHAT_FIELDS))
    messages, params = with_tone(with_image(messages, body.image), params, body.tone)
    return body, JobRequest(provider, model, messages, params, bool(body.stream), rendering)


def completion_request(raw: bytes, settings: ApiSettings, catalog: Catalog) -> tuple[CompletionRequest, JobRequest]:
    body = decode_body(_COMPLETION, raw, settings)
    prompt = body.prompt if isinstance(body.prompt, str) else body.prompt[0]
    provider, model = resolve_model(catalog, body.model)
    messages = [ChatMessage(role="user", content=prompt)]
    params = to_params(body, extra_fields(raw, COMPLETION_FIELDS))
    rendering = Rendering(COMPLETION, "cmpl-", body.model, _include_usage(body))
    return body, JobRequest(provider, model, messages, params, bool(body.stream), rendering, prompt)
