"""The chat API's JSON: chats and messages as clients see them, and the bodies of a generation."""

from typing import Any

from services.api.answer import Answer
from services.api.wire import encode_json, escape_line_breaks
from services.stores.chats import ChatSummary
from shared.events import Usage
from shared.jobs import StreamView

__all__ = [
    "CHAT_ID",
    "PERSONA",
    "TITLE",
    "chat_body",
    "generate_body",
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


def chat_body(chat: ChatSummary, raw: bytes) -> bytes:
    """A chat with its messages (``raw``: their JSON array as stored, which is how the API shows them)."""
    return encode_json(summary_object(chat))[:-1] + b',"messages":' + escape_line_breaks(raw) + b"}"


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
