"""The chat dialect: ``/api/v1/chat/*`` (saved chats with personas) and ``/api/v1/personas``."""

from services.api.dialect import Dialect
from services.api.dialects.chat import history, routes
from services.api.dialects.chat.errors import render_error
from services.api.dialects.chat.schemas import ChatError
from services.api.dialects.chat.sse import ChatEventEncoder
from services.api.dialects.chat.translate import generate_body, oneoff_body

__all__ = ["DIALECT"]

DIALECT = Dialect(
    name="chat",
    routes=[*routes.ROUTES, *history.ROUTES],
    paths=("/api/v1/",),
    render_error=render_error,
    error_schema=ChatError,
    encoders={routes.GENERATE: ChatEventEncoder.for_view, routes.ONEOFF: ChatEventEncoder.for_view},
    bodies={routes.GENERATE: generate_body, routes.ONEOFF: oneoff_body},
)
