"""The chat API's stream: ``data: {"type": ..., "content": ...}`` frames, then ``data: [DONE]``.

- ``thinking_update``: the provider's reasoning as it comes (Anthropic thinking, Gemini thoughts, OpenAI
  reasoning), and short notes of the gateway's own stages (a worker started the reply);
- ``final_response``: successive pieces of the answer (joined, they are the answer);
- ``metadata``: once, last before ``[DONE]``: chatId, title, persona, model, usage, timeTaken (ms),
  finishReason;
- ``error``: ``{"code", "message"}`` instead of ``metadata`` when the reply failed.

Frames carry ``id:`` like every stream (``services.api.sse``), so they resume with ``Last-Event-ID``.
"""

from typing import Any

from services.api.dialects.chat.translate import CHAT_ID, PERSONA, TITLE, usage_object
from services.api.wire import encode_json
from shared.events import Done, Event, Failed, ModelInfo, ReasoningDelta, Started, TextDelta, Usage
from shared.jobs import StreamView

__all__ = ["DONE", "ChatEventEncoder"]

DONE = b"[DONE]"


def _frame(kind: str, content: Any) -> bytes:
    return encode_json({"type": kind, "content": content})


class ChatEventEncoder:
    def __init__(self, view: StreamView) -> None:
        self._view = view
        self._model = view.model
        self._usage: Usage | None = None

    @classmethod
    def for_view(cls, view: StreamView) -> "ChatEventEncoder":
        return cls(view)

    def encode(self, event: Event) -> list[bytes]:
        match event:
            case Started():
                return [_frame("thinking_update", f"Writing a reply with {self._view.model}")]
            case ReasoningDelta(text=text):
                return [_frame("thinking_update", text)]
            case TextDelta(text=text):
                return [_frame("final_response", text)]
            case ModelInfo(model=model):
                self._model = model or self._model
                return []
            case Usage():
                self._usage = event
                return []
            case Done(finish_reason=reason, model=model, elapsed_ms=elapsed):
                return [_frame("metadata", self._metadata(model, reason, elapsed)), DONE]
            case Failed(code=code, message=message):
                return [_frame("error", {"code": code, "message": message}), DONE]
            case _:
                return []

    def _metadata(self, model: str, reason: str, elapsed: int) -> dict[str, Any]:
        labels = self._view.labels
        return {
            "chatId": labels.get(CHAT_ID) or None,
            "title": labels.get(TITLE) or None,
            "persona": labels.get(PERSONA) or None,
            "model": model or self._model,
            "usage": usage_object(self._usage),
            "timeTaken": elapsed,
            "finishReason": reason,
        }
