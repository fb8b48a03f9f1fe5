"""The chat dialect: ``/api/v1/chat/*`` (saved chats with personas) and ``/api/v1/personas``."""

from services.api.dialect import Dialect, ResumeDoc
from services.api.dialects.chat import examples, history, responses, routes
from services.api.dialects.chat.errors import render_error
from services.api.dialects.chat.schemas import ChatError
from services.api.dialects.chat.sse import ChatEventEncoder
from services.api.dialects.chat.translate import generate_body, oneoff_body
from services.api.sse import FrameId

__all__ = ["DIALECT"]

DIALECT = Dialect(
    name="chat",
    routes=[*routes.ROUTES, *history.ROUTES],
    paths=("/api/v1/",),
    render_error=render_error,
    error_schema=ChatError,
    encoders={routes.GENERATE: ChatEventEncoder.for_view, routes.ONEOFF: ChatEventEncoder.for_view},
    bodies={routes.GENERATE: generate_body, routes.ONEOFF: oneoff_body},
    tags={"chat": "Saved chats with personas: generate (and stream) replies, list, fetch, fork, pin, rename, delete."},
    resume_doc=ResumeDoc(
        bodies=(responses.ChatGenerateResponse, responses.ChatOneOffResponse),
        frames=responses.FRAMES,
        body_examples={"a chat reply": examples.GENERATE_BODY},
        stream_examples={"a chat reply stream, after frame 3": examples.resumed_stream(FrameId(3, 0))},
    ),
)
