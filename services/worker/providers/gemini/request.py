"""Canonical job -> ``POST {base_url}/v1beta/models/{model}:streamGenerateContent?alt=sse`` (camelCase body)."""

from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import msgspec

from services.worker.providers._fields import check_fields, search_location, unsupported
from services.worker.providers.base import Target
from shared.errors import InvalidRequestError
from shared.jobs import ChatMessage, GenerationJob, ImagePart, SamplingParams, ToolCall, message_text

__all__ = ["build_request", "to_gemini_contents"]

_MIME_BY_SUFFIX = {"jpg": "image/jpeg", "pdf": "application/pdf"} | {
    s: f"image/{s}" for s in ("jpeg", "png", "gif", "webp")
}
_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
#: reasoning_effort -> thinking budget, as Google documents for its OpenAI compatibility ("none" disables
#: thinking; "minimal" takes the smallest budget)
_THINKING_BUDGETS = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576}
#: the OpenAI fields with a Gemini equivalent (the others are refused: ``_fields``)
MAPPED = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "seed",
        "n",
        "presence_penalty",
        "frequency_penalty",
        "tools",
        "tool_choice",
        "parallel_tool_calls",  # false: the answer's first function call only (``stream_gemini``)
        "response_format",
        "reasoning_effort",
        "logprobs",
        "top_logprobs",
        "internet",
        "web_search_options",  # Google Search grounding (no location, medium context only)
        "citations",
        "raw",
    }
)


def _image(part: ImagePart) -> dict[str, Any]:
    if part.url.startswith("data:"):
        header, _, data = part.url.partition(",")
        mime_type, _, encoding = header.removeprefix("data:").partition(";")
        if encoding != "base64" or not data:
            raise InvalidRequestError("image data URLs must be base64-encoded", param="messages")
        return {"inlineData": {"mimeType": mime_type or "image/jpeg", "data": data}}
    suffix = urlsplit(part.url).path.rpartition(".")[2].lower()
    return {"fileData": {"mimeType": _MIME_BY_SUFFIX.get(suffix, "image/jpeg"), "fileUri": part.url}}


def _args(call: ToolCall) -> dict[str, Any]:
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


def _tool_output(text: str) -> Any:
    """A tool result that is a JSON object goes as that object; anything else as its text."""
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text
    return value if isinstance(value, dict) else text


def _parts(message: ChatMessage, names: dict[str, str]) -> list[dict[str, Any]]:
    if message.role == "tool":
        call_id = message.tool_call_id or ""
        response = {"output": _tool_output(message_text(message))}
        images = [_image(part) for part in message.content or () if isinstance(part, ImagePart)]
        # a tool's images follow its response in the same turn, where every Gemini model reads them
        return [{"functionResponse": {"name": names.get(call_id, call_id), "response": response}}, *images]
    content = message.content
    parts: list[dict[str, Any]] = []
    if isinstance(content, str):
        if content:
            parts.append({"text": content})
    else:
        for part in content or ():
            if isinstance(part, ImagePart):
                parts.append(_image(part))
            elif part.text:
                parts.append({"text": part.text})
    for call in message.tool_calls:
        names[call.id] = call.name
        parts.append({"functionCall": {"name": call.name, "args": _args(call)}})
    return parts


def to_gemini_contents(messages: list[ChatMessage]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(systemInstruction, contents): assistant -> ``model``, tool results -> ``user``; same-role turns merge."""
    system = "\n\n".join(message_text(m) for m in messages if m.role == "system" and message_text(m))
    names: dict[str, str] = {}  # tool_call_id -> function name, from earlier assistant turns
    contents: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "model" if message.role == "assistant" else "user"
        parts = _parts(message, names)
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return ({"parts": [{"text": system}]} if system else None), contents


def _compact(mapping: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if value is not None}


def _generation_config(params: SamplingParams) -> dict[str, Any]:
    config: dict[str, Any] = {
        "temperature": params.temperature,
        "topP": params.top_p,
        "maxOutputTokens": params.max_tokens,
        "stopSequences": list(params.stop) or None,
        "seed": params.seed,
        "presencePenalty": params.presence_penalty,
        "frequencyPenalty": params.frequency_penalty,
        "candidateCount": params.n if params.n not in (None, 1) else None,
        "responseLogprobs": True if params.logprobs else None,
        "logprobs": params.top_logprobs if params.logprobs and params.top_logprobs else None,
    }
    if params.top_logprobs is not None and not params.logprobs:
        raise unsupported("top_logprobs", "gemini", "only with logprobs: true")
    response_format = params.response_format or {}
    if response_format.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        config["responseJsonSchema"] = (response_format.get("json_schema") or {}).get("schema")
    if params.reasoning_effort is not None:
        budget = _THINKING_BUDGETS.get(params.reasoning_effort)
        if budget is None:
            raise unsupported(
                "reasoning_effort", "gemini", f"{params.reasoning_effort!r} has no thinking budget (none…high)"
            )
        # with a budget, the thoughts come back too (as ``reasoning_content``): Gemini sends none unless asked
        config["thinkingConfig"] = (
            {"thinkingBudget": budget, "includeThoughts": True} if budget else {"thinkingBudget": 0}
        )
    return _compact(config)


def _tool_config(choice: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(choice, str) and choice in _MODES:
        return {"functionCallingConfig": {"mode": _MODES[choice]}}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if isinstance(name, str) and name:
            return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    raise InvalidRequestError(f"unsupported tool_choice: {choice!r}", param="tool_choice")


def _tools(params: SamplingParams) -> dict[str, Any]:
    search: list[dict[str, Any]] = []
    if params.internet:
        search_location(params, "gemini", located=False)  # its options that ask for something are refused
        search.append({"googleSearch": {}})  # Google Search grounding
    if not params.tools:
        return {"tools": search} if search else {}  # toolConfig without tools means nothing to Gemini
    declarations = [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in params.tools]
    choice = params.tool_choice
    return _compact(
        {
            "tools": [{"functionDeclarations": [_compact(d) for d in declarations]}, *search],
            "toolConfig": _tool_config(choice) if choice is not None else None,
        }
    )


def build_request(client: httpx.AsyncClient, job: GenerationJob, target: Target) -> httpx.Request:
    check_fields(job.params, target.provider, MAPPED, target.spec.drop_params)
    system, contents = to_gemini_contents(job.messages)
    drop = set(target.spec.drop_params)  # wire names, at the top level or inside generationConfig
    config = {key: value for key, value in _generation_config(job.params).items() if key not in drop}
    body = {"contents": contents, "systemInstruction": system, "generationConfig": config or None, **_tools(job.params)}
    body = {key: value for key, value in _compact(body).items() if key not in drop}
    headers = {"content-type": "application/json", "accept": "text/event-stream", "x-request-id": job.request_id}
    if target.api_key:
        headers["x-goog-api-key"] = target.api_key  # never ?key=: URLs end up in logs
    model = quote(target.model.removeprefix("models/"), safe="")
    url = f"{target.base_url.rstrip('/')}/v1beta/models/{model}:streamGenerateContent"
    return client.build_request("POST", url, params={"alt": "sse"}, content=msgspec.json.encode(body), headers=headers)
