"""Canonical job -> ``POST {base_url}/chat/completions`` (or ``/completions`` for a legacy completion) with
``stream: true``. Every field the client sent goes upstream unchanged; the gateway's own (``model``, ``stream``,
``stream_options``) are set here, and the catalog's ``drop_params`` are left out."""

from typing import Any

import httpx
import msgspec

from services.worker.providers.base import Target
from shared.jobs import ChatMessage, GenerationJob, ImagePart, SamplingParams

__all__ = ["build_request", "to_openai_messages", "to_openai_params"]


def _content(message: ChatMessage) -> str | list[dict[str, Any]] | None:
    if message.content is None or isinstance(message.content, str):
        return message.content
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, ImagePart):
            image: dict[str, Any] = {"url": part.url}
            if part.detail:
                image["detail"] = part.detail
            parts.append({"type": "image_url", "image_url": image})
        else:
            parts.append({"type": "text", "text": part.text})
    return parts


def to_openai_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for message in messages:
        item: dict[str, Any] = {"role": message.role, "content": _content(message)}
        if message.name:
            item["name"] = message.name
        if message.tool_calls:
            item["tool_calls"] = [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
                for call in message.tool_calls
            ]
        if message.tool_call_id:
            item["tool_call_id"] = message.tool_call_id
        result.append(item)
    return result


_SCALARS = (
    "temperature",
    "top_p",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "response_format",
    "parallel_tool_calls",
    "user",
    "reasoning_effort",
    "logprobs",
    "top_logprobs",
)


def to_openai_params(params: SamplingParams, max_tokens_field: str) -> dict[str, Any]:
    body: dict[str, Any] = dict(params.extra)
    for name in _SCALARS:
        value = getattr(params, name)
        if value is not None:
            body[name] = value
    if params.max_tokens is not None:
        body[max_tokens_field] = params.max_tokens
    if params.stop:
        body["stop"] = list(params.stop)
    if params.n is not None:
        body["n"] = params.n
    if params.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    key: value
                    for key, value in (("name", t.name), ("description", t.description), ("parameters", t.parameters))
                    if value is not None
                },
            }
            for t in params.tools
        ]
    if params.tool_choice is not None:
        body["tool_choice"] = params.tool_choice
    if params.internet and "web_search_options" not in body:  # OpenAI's web search (its search models)
        body["web_search_options"] = {}
    return body


def build_request(client: httpx.AsyncClient, job: GenerationJob, target: Target) -> httpx.Request:
    if job.prompt is None:
        path, head = "chat/completions", {"model": target.model, "messages": to_openai_messages(job.messages)}
        params = to_openai_params(job.params, target.spec.max_tokens_field)
    else:  # the legacy endpoint knows max_tokens only
        path, head = "completions", {"model": target.model, "prompt": job.prompt}
        params = to_openai_params(job.params, "max_tokens")
    body = {**head, **params, "stream": True, "stream_options": {"include_usage": True}}
    for name in target.spec.drop_params:
        body.pop(name, None)
    headers = {"content-type": "application/json", "accept": "text/event-stream", "x-request-id": job.request_id}
    if target.api_key:
        headers["authorization"] = f"Bearer {target.api_key}"
    url = f"{target.base_url.rstrip('/')}/{path}"
    return client.build_request("POST", url, content=msgspec.json.encode(body), headers=headers)
