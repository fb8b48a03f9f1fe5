"""Frames of Gemini's own stream, passed through: each ``Native`` event's data is one ``data:`` frame, as the
upstream sent it (``services.api.sse.PlainFrames``: no ``id:``, no comments, CRLF CRLF after each); a failure
is one frame of Google's error object, as Gemini sends one in-band."""

from services.api.dialects.gemini.errors import google_status
from services.api.errors import status_for
from services.api.sse import Payload, PlainFrames
from services.api.wire import encode_json
from shared.events import Event, Failed, Native
from shared.jobs import StreamView

__all__ = ["NATIVE", "NativeEncoder", "error_frame"]

#: the ``StreamView.dialect`` of a Gemini-native proxy job
NATIVE = "gemini.native"


def error_frame(status: int, message: str) -> bytes:
    """Google's error object on one line (a stream frame's data)."""
    return encode_json({"error": {"code": status, "message": message, "status": google_status(status)}})


class NativeEncoder(PlainFrames):
    @classmethod
    def for_view(cls, view: StreamView) -> "NativeEncoder":
        return cls()

    def encode(self, event: Event) -> list[Payload]:
        match event:
            case Native(data=data):
                return [data.encode()]
            case Failed(code=code, message=message):
                return [error_frame(status_for(code), message)]
            case _:
                return []
