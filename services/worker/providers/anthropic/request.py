"""Canonical job -> ``POST {base_url}/v1/messages`` (Anthropic Messages API) with ``stream: true``."""

from typing import Any

import httpx
import msgspec

from services.worker.providers._fields import check_fields, search_location, unsupported
from services.worker.providers.base import Target
from shared.errors import InvalidRequestError
from shared.jobs import ChatMessage, GenerationJob, ImagePart, SamplingParams, ToolCall, message_text

__all__ = ["build_request", "to_anthropic_messages", "to_anthropic_params"]

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; OpenAI-shaped callers often omit it
_NAMED_CHOICES = {"auto": "auto", "required": "any", "none": "none"}
#: the OpenAI fields with an Anthropic equivalent (the others are refused: ``_fields``); temperature is capped at
#: 1, as Anthropic's own OpenAI compatibility layer documents
MAPPED = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "user",
        "reasoning_effort",
        "response_format",
        "internet",
        "web_search_options",  # the web_search tool, with its user_location
        "citations",
        "raw",
    }
)
#: Anthropic's server-side web search tool (its results and citations stream back: ``stream.py``)
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
#: reasoning_effort -> extended thinking's budget_tokens (Anthropic's least is 1,024); "none": no thinking
THINKING_BUDGETS = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576}
MIN_BUDGET = 1024
#: the tool a structured answer (``response_format``) is asked for with: forced, its input is the answer, and the
#: stream reads it back as message text (``stream.py``)
ANSWER_TOOL = "conduit_structured_answer"


def _image(part: ImagePart) -> dict[str, Any]:
    if part.url.startswith("data:"):
        header, _, data = part.url.partition(",")
        media_type, _, encoding = header.removeprefix("data:").partition(";")
        if encoding != "base64" or not data:
            raise InvalidRequestError("image data URLs must be base64-encoded", param="messages")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if part.url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": part.url}}
    raise InvalidRequestError("image URLs must be http(s) or base64 data: URLs", param="messages")


def _tool_input(call: ToolCall) -> dict[str, Any]:
    if not call.arguments.strip():
        return {}
    try:
        value = msgspec.json.decode(call.arguments)
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(
            f"tool call {call.id!r} has arguments that are not valid JSON", param="messages"
        ) from exc
    if not isinstance(value, dict):
        raise InvalidRequestError(f"tool call {call.id!r} arguments must be a JSON object", param="messages")
    return value


def _blocks(message: ChatMessage) -> list[dict[str, Any]]:
    if message.role == "tool":
        if not message.tool_call_id:
            raise InvalidRequestError("a tool message needs a tool_call_id", param="messages")
        parts = message.content if isinstance(message.content, list) else []
        if not any(isinstance(part, ImagePart) for part in parts):
            return [{"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message_text(message)}]
        result = [  # a tool's result with images: text and image blocks, in order
            _image(part) if isinstance(part, ImagePart) else {"type": "text", "text": part.text}
            for part in parts
            if isinstance(part, ImagePart) or part.text
        ]
        return [{"type": "tool_result", "tool_use_id": message.tool_call_id, "content": result}]
    content = message.content
    blocks: list[dict[str, Any]] = []
    if isinstance(content, str):
        content_parts: list[Any] = [content]
    else:
        content_parts = list(content or ())
    for part in content_parts:
        if isinstance(part, ImagePart):
            blocks.append(_image(part))
        else:
            text = part if isinstance(part, str) else part.text
            if text:  # Anthropic rejects empty text blocks
                blocks.append({"type": "text", "text": text})
    blocks.extend(
        {"type": "tool_use", "id": call.id, "name": call.name, "input": _tool_input(call)}
        for call in message.tool_calls
    )
    return blocks


def to_anthropic_messages(messages: list[ChatMessage]) -> tuple[str, list[dict[str, Any]]]:
    """(system text, messages): tool results ride in user turns and same-role turns merge (roles must alternate)."""
    system = "\n\n".join(message_text(m) for m in messages if m.role == "system" and message_text(m))
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        blocks = turn["content"]
        if len(blocks) == 1 and blocks[0]["type"] == "text":
            turn["content"] = blocks[0]["text"]
    return system, turns


def _tool_choice(choice: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(choice, str) and choice in _NAMED_CHOICES:
        return {"type": _NAMED_CHOICES[choice]}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if isinstance(name, str) and name:
            return {"type": "tool", "name": name}
    raise InvalidRequestError(f"unsupported tool_choice: {choice!r}", param="tool_choice")


def _answer_tool(response_format: dict[str, Any]) -> dict[str, Any] | None:
    """``response_format`` as a forced tool whose input is the answer (``None`` for plain text)."""
    kind = response_format.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        schema: dict[str, Any] = {"type": "object"}
        described = "Give your whole answer as this tool's input: one JSON object."
    elif kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        given = spec.get("schema")
        schema = given if isinstance(given, dict) else {"type": "object"}
        if schema.get("type") != "object":
            raise unsupported("response_format", "anthropic", "a JSON schema whose top level is an object only")
        described = spec.get("description") or f"Give your whole answer as this tool's input ({spec.get('name')})."
    else:
        raise InvalidRequestError(f"unknown response_format type {kind!r}", param="response_format")
    return {"name": ANSWER_TOOL, "description": described, "input_schema": schema}


def _thinking(params: SamplingParams, body: dict[str, Any]) -> None:
    """``reasoning_effort`` as extended thinking, within ``max_tokens`` (Anthropic: the budget below it)."""
    effort = params.reasoning_effort
    if effort is None:
        return
    budget = THINKING_BUDGETS.get(effort)
    if budget is None:
        raise unsupported("reasoning_effort", "anthropic", f"{effort!r} has no thinking budget (none…high)")
    if not budget:
        return
    budget = min(budget, body["max_tokens"] - 1)
    if budget < MIN_BUDGET:
        raise unsupported("reasoning_effort", "anthropic", f"extended thinking needs max_tokens above {MIN_BUDGET}")
    if params.temperature is not None and params.temperature != 1:
        raise unsupported("temperature", "anthropic", "extended thinking takes no temperature but 1")
    body.pop("temperature", None)
    choice = body.get("tool_choice", {}).get("type")
    if choice in ("any", "tool"):
        raise unsupported("tool_choice", "anthropic", "extended thinking cannot be forced to use a tool")
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}


def to_anthropic_params(params: SamplingParams) -> dict[str, Any]:
    body: dict[str, Any] = {"max_tokens": params.max_tokens if params.max_tokens is not None else DEFAULT_MAX_TOKENS}
    if params.temperature is not None:
        body["temperature"] = min(params.temperature, 1.0)  # Anthropic's range is 0..1, OpenAI's 0..2
    if params.top_p is not None:
        body["top_p"] = params.top_p
    if params.stop:
        body["stop_sequences"] = list(params.stop)
    if params.tools:
        body["tools"] = [
            {
                "name": tool.name,
                **({"description": tool.description} if tool.description else {}),
                "input_schema": tool.parameters or {"type": "object", "properties": {}},
            }
            for tool in params.tools
        ]
        choice = _tool_choice(params.tool_choice) if params.tool_choice is not None else None
        if params.parallel_tool_calls is False and (choice or {}).get("type") != "none":
            choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
        if choice is not None:  # Anthropic rejects tool_choice without tools
            body["tool_choice"] = choice
    if params.user:
        body["metadata"] = {"user_id": params.user}
    if params.internet:
        location = search_location(params, "anthropic", located=True)
        search = WEB_SEARCH | {"user_location": {"type": "approximate", **location}} if location else WEB_SEARCH
        body["tools"] = [*body.get("tools", []), search]
    _structured(params, body)
    _thinking(params, body)
    return body


def _structured(params: SamplingParams, body: dict[str, Any]) -> None:
    """``response_format`` as the forced answer tool (alone: not with tools, thinking or a web search)."""
    answer = _answer_tool(params.response_format or {})
    if answer is None:
        return
    for field, given in (
        ("tools", params.tools),
        ("reasoning_effort", params.reasoning_effort not in (None, "none")),
        ("internet", params.internet),
    ):
        if given:
            raise unsupported("response_format", "anthropic", f"not together with {field}")
    body["tools"], body["tool_choice"] = [answer], {"type": "tool", "name": ANSWER_TOOL}


def build_request(client: httpx.AsyncClient, job: GenerationJob, target: Target) -> httpx.Request:
    check_fields(job.params, target.provider, MAPPED, target.spec.drop_params)
    system, messages = to_anthropic_messages(job.messages)
    body: dict[str, Any] = {"model": target.model, "messages": messages, "stream": True}
    if system:
        body["system"] = system
    body.update(to_anthropic_params(job.params))
    for name in target.spec.drop_params:
        body.pop(name, None)
    headers = {
        "anthropic-version": API_VERSION,
        "content-type": "application/json",
        "accept": "text/event-stream",
        "x-request-id": job.request_id,
    }
    if target.api_key:
        headers["x-api-key"] = target.api_key
    url = f"{target.base_url.rstrip('/')}/v1/messages"
    return client.build_request("POST", url, content=msgspec.json.encode(body), headers=headers)
