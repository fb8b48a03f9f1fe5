"""Stream frames of the simple AI API: ``data: {"token": "..."}`` per piece of text, then ``data: [DONE]``.

The encoder gives each event's ``data`` payloads; ``services.api.sse`` frames them (with their ``id:``).
"""

from services.api.dialects.ai.errors import error_object
from services.api.wire import encode_json
from shared.events import Done, Event, Failed, TextDelta
from shared.jobs import StreamView

__all__ = ["DONE", "TokenEncoder"]

DONE = b"[DONE]"


class TokenEncoder:
    @classmethod
    def for_view(cls, view: StreamView) -> "TokenEncoder":
        return cls()

    def encode(self, event: Event) -> list[bytes]:
        match event:
            case TextDelta(text=text):
                return [b'{"token":' + encode_json(text) + b"}"]
            case Done():
                return [DONE]
            case Failed(code=code, message=message):
                return [encode_json({"error": error_object(code, message)}), DONE]
            case _:
                return []
