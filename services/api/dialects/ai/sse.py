"""Stream frames of the simple AI API: ``data: {"token": "..."}`` per piece of text, then ``data: [DONE]``."""

import msgspec

from services.api.dialects.ai.errors import error_object
from shared.events import Done, Event, Failed, TextDelta

__all__ = ["DONE", "TokenEncoder"]

DONE = b"data: [DONE]\n\n"


class TokenEncoder:
    def encode(self, event: Event) -> bytes:
        match event:
            case TextDelta(text=text):
                return b'data: {"token":' + msgspec.json.encode(text) + b"}\n\n"
            case Done():
                return DONE
            case Failed(code=code, message=message):
                return b"data: " + msgspec.json.encode({"error": error_object(code, message)}) + b"\n\n" + DONE
            case _:
                return b""
