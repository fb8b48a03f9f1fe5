"""OpenAI requests -> canonical jobs; canonical answers -> ``chat.completion`` / ``text_completion`` bodies."""

import time
from typing import Any

import msgspec

from services.api.answer import Answer, Choice
from services.api.dialects.openai.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    ImageContent,
    Message,
    RefusalContent,
)
from services.api.wire import encode_json
from services.stores.batches import BatchRecord
from services.stores.files import FileRecord
from shared.errors import InvalidRequestError
from shared.events import Usage
from shared.jobs import (
    ChatMessage,
    ContentPart,
    ImagePart,
    SamplingParams,
    StreamView,
    TextPart,
    ToolCall,
    ToolSpec,
)

__all__ = [
    "CHAT",
    "COMPLETION",
    "answer_body",
    "batch_object",
    "chat_body",
    "completion_body",
    "file_object",
    "to_messages",
    "to_params",
    "usage_object",
]

#: the dialect's encoder and body names, in a job's StreamView (``dialect.py`` maps them to its builders)
CHAT = "openai.chat"
COMPLETION = "openai.completion"


def _content(message: Message) -> str | list[ContentPart] | None:
    if message.content is None or isinstance(message.content, str):
        return message.content
    parts: list[ContentPart] = []
    for part in message.content:
        if isinstance(part, ImageContent):
            parts.append(ImagePart(url=part.image_url.url, detail=part.image_url.detail))
        elif isinstance(part, RefusalContent):
            parts.append(TextPart(text=part.refusal))
        else:
            parts.append(TextPart(text=part.text))
    return parts


def to_messages(messages: list[Message]) -> list[ChatMessage]:
    result: list[ChatMessage] = []
    for index, message in enumerate(messages):
        if message.role == "tool" and not message.tool_call_id:
            raise InvalidRequestError("a tool message needs tool_call_id", param=f"messages.[{index}].tool_call_id")
        if message.content is None and message.role != "assistant":
            raise InvalidRequestError("content is required", param=f"messages.[{index}].content")
        result.append(
            ChatMessage(
                role="system" if message.role == "developer" else message.role,
                content=_content(message),
                name=message.name,
                tool_calls=[
                    ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
                    for c in message.tool_calls or ()
                ],
                tool_call_id=message.tool_call_id,
            )
        )
    return result


def extra_fields(raw: bytes, typed: frozenset[str]) -> dict[str, Any]:
    """The request's fields outside ``typed`` (already checked JSON), as sent; a null one means unset."""
    fields = msgspec.json.decode(raw, type=dict[str, msgspec.Raw])
    return {
        name: _extra_value(name, value)
        for name, value in fields.items()
        if name not in typed and bytes(value) != b"null"
    }


def _extra_value(name: str, value: msgspec.Raw) -> Any:
    try:
        return msgspec.json.decode(value)
    except msgspec.ValidationError as exc:  # a number beyond 64 bits or a double: the upstream could not read it
        raise InvalidRequestError(f"Invalid '{name}': {exc}", param=name) from exc


#: the most answers one request may ask for (``n``)
MAX_CHOICES = 8


def to_params(body: ChatCompletionRequest | CompletionRequest, extra: dict[str, Any] | None = None) -> SamplingParams:
    """The canonical params; ``extra`` holds the client's other fields, for the upstream (``extra_fields``)."""
    if body.n is not None and body.n > MAX_CHOICES:
        raise InvalidRequestError(f"n may be at most {MAX_CHOICES} on this gateway", param="n")
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or ())
    max_tokens = body.max_tokens
    tools: list[ToolSpec] = []
    tool_choice: str | dict[str, Any] | None = None
    response_format = None
    chat: dict[str, Any] = {}
    if isinstance(body, ChatCompletionRequest):
        max_tokens = body.max_completion_tokens or max_tokens
        tools = [
            ToolSpec(name=t.function.name, description=t.function.description, parameters=t.function.parameters)
            for t in body.tools or ()
        ]
        tool_choice, response_format = body.tool_choice, body.response_format
        chat = {
            "parallel_tool_calls": body.parallel_tool_calls,
            "reasoning_effort": body.reasoning_effort,
            "logprobs": body.logprobs,
            "top_logprobs": body.top_logprobs,
            "internet": body.internet or ("web_search_options" in (extra or {})) or None,
            "citations": body.citations,
            "raw": body.raw,
        }
    elif max_tokens is None:
        max_tokens = 16  # the legacy endpoint's documented default
    return SamplingParams(
        **chat,
        user=body.user,
        extra=extra or {},
        temperature=body.temperature,
        top_p=body.top_p,
        max_tokens=max_tokens,
        stop=stop,
        seed=body.seed,
        n=body.n,
        presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty,
        tools=tools,
        tool_choice=tool_choice,
        response_format=response_format,
    )


def usage_object(usage: Usage | None) -> dict[str, Any]:
    prompt = usage.prompt_tokens if usage else 0
    completion = usage.completion_tokens if usage else 0
    result: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if usage is not None:
        result["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
        result["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return result


def _tail(answer: Answer, model: str) -> tuple[str, dict[str, Any]]:
    """The model that answered (as the stream's chunks name it too) and the ``system_fingerprint`` field,
    present only when the upstream sent one."""
    fingerprint = {"system_fingerprint": answer.system_fingerprint} if answer.system_fingerprint else {}
    return answer.model or model, fingerprint


def _chat_choice(index: int, choice: Answer | Choice) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": choice.text if choice.text or not choice.tool_calls else None,
        "refusal": None,
        "annotations": choice.annotations,
    }
    if choice.search_results:  # ``raw: true``: the search results themselves (the gateway's own field)
        message["search_results"] = choice.search_results
    if choice.reasoning:
        message["reasoning_content"] = choice.reasoning
    if choice.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in choice.tool_calls
        ]
    return {"index": index, "message": message, "logprobs": choice.logprobs, "finish_reason": choice.finish_reason}


def _choices(answer: Answer) -> list[Answer | Choice]:
    """The answer's choices: its ``n`` answers, or the one it is."""
    return [*answer.choices] if answer.choices else [answer]


def chat_body(completion_id: str, model: str, answer: Answer) -> bytes:
    answered, fingerprint = _tail(answer, model)
    return encode_json(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": answered,
            "choices": [_chat_choice(index, choice) for index, choice in enumerate(_choices(answer))],
            "usage": usage_object(answer.usage),
            **fingerprint,
        }
    )


def completion_body(completion_id: str, model: str, answer: Answer) -> bytes:
    answered, fingerprint = _tail(answer, model)
    choices = [
        {"text": choice.text, "index": index, "logprobs": choice.logprobs, "finish_reason": choice.finish_reason}
        for index, choice in enumerate(_choices(answer))
    ]
    return encode_json(
        {
            "id": completion_id,
            "object": "text_completion",
            "created": int(time.time()),
            "model": answered,
            "choices": choices,
            "usage": usage_object(answer.usage),
            **fingerprint,
        }
    )


def file_object(record: FileRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "object": "file",
        "bytes": record.bytes,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "filename": record.filename,
        "purpose": record.purpose,
        "status": "processed",
    }


_STAMPS = (
    "created_at",
    "in_progress_at",
    "expires_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)


def batch_object(record: BatchRecord) -> dict[str, Any]:
    """OpenAI's batch object; a time not reached, and files and errors not there, are left out (OpenAI's
    schema types them as integers, strings and an object, and its SDKs read them as absent)."""
    errors = record.errors
    full = {
        "id": record.id,
        "object": "batch",
        "endpoint": record.endpoint,
        "errors": None
        if not errors
        else {"object": "list", "data": [msgspec.structs.asdict(error) for error in errors]},
        "input_file_id": record.input_file_id,
        "completion_window": record.completion_window,
        "status": record.status,
        "output_file_id": record.output_file_id,
        "error_file_id": record.error_file_id,
        **{stamp: getattr(record, stamp) for stamp in _STAMPS},
        "request_counts": {"total": record.total, "completed": record.completed, "failed": record.failed},
        "usage": {
            "input_tokens": record.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": record.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": record.input_tokens + record.output_tokens,
        },
        "metadata": record.metadata,
    }
    return {key: value for key, value in full.items() if value is not None or key == "metadata"}


def answer_body(view: StreamView, answer: Answer) -> bytes | None:
    """The body of the dialect's endpoint named by ``view.dialect`` (``None``: not one of this dialect's)."""
    if view.dialect == CHAT:
        return chat_body(view.id, view.model, answer)
    if view.dialect == COMPLETION:
        return completion_body(view.id, view.model, answer)
    return None
