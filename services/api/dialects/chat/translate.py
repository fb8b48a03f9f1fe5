"""The chat API's JSON: chats and messages as clients see them, and the bodies of a generation."""

from typing import Any

from services.api.answer import Answer
from services.api.wire import encode_json
from services.stores.chats import ChatSummary, StoredMessage
from shared.events import Usage
from shared.jobs import StreamView

__all__ = [
    "CHAT_ID",
    "PERSONA",
    "TITLE",
    "chat_object",
    "generate_body",
    "message_object",
    "oneoff_body",
    "summary_object",
    "usage_object",
]

#: the labels of a chat job's StreamView
CHAT_ID, TITLE, PERSONA = "chatId", "title", "persona"


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def summary_object(chat: ChatSummary) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": chat.id,
        "title": chat.title,
        "pinned": chat.pinned,
        "createdAt": _ms(chat.created),
        "updatedAt": _ms(chat.updated),
        "messageCount": chat.message_count,
        "preview": chat.preview,
        "persona": chat.persona or None,
        "scope": chat.scope or None,
        "username": chat.username or None,
        "source": chat.source or None,
    }
    if chat.forked_from is not None:
        body["forkedFrom"] = {"chatId": chat.forked_from.chat_id, "messageId": chat.forked_from.message_id}
    return body


def message_object(message: StoredMessage) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": message.id,
        "role": message.role,
        "content": message.content,
        "createdAt": _ms(message.created),
    }
    if message.role == "assistant":
        usage = message.usage
        body["model"] = message.model or None
        body["persona"] = message.persona or None
        body["usage"] = (
            {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            }
            if usage is not None
            else None
        )
        body["status"] = message.status
        if message.error:
            body["error"] = message.error
    return body


def chat_object(chat: ChatSummary, messages: list[StoredMessage]) -> dict[str, Any]:
    return {**summary_object(chat), "messages": [message_object(m) for m in messages]}


def usage_object(usage: Usage | None) -> dict[str, int]:
    prompt, completion = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def generate_body(view: StreamView, answer: Answer) -> bytes:
    """``POST /api/v1/chat/generate``'s 201 body."""
    labels = view.labels
    return encode_json(
        {
            "result": {"message": answer.text, "persona": labels.get(PERSONA, "")},
            "chatId": labels.get(CHAT_ID, ""),
            "title": labels.get(TITLE, ""),
            "researchMode": False,
            "stream": False,
        }
    )


def oneoff_body(view: StreamView, answer: Answer) -> bytes:
    """``POST /api/v1/chat``'s body."""
    return encode_json(
        {
            "result": {"message": answer.text, "persona": view.labels.get(PERSONA, "")},
            "metadata": {"timeTaken": answer.elapsed_ms},
        }
    )
