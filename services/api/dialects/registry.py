"""Every dialect the API serves, in one explicit tuple: ``app.py``, the error handlers and the resume
endpoint read it. A new dialect is a package under ``dialects/`` plus one line here."""

from collections.abc import Iterator

from litestar.handlers import BaseRouteHandler

from services.api.answer import Answer
from services.api.dialect import Dialect
from services.api.dialects.ai.dialect import DIALECT as AI
from services.api.dialects.chat.dialect import DIALECT as CHAT
from services.api.dialects.gemini.dialect import DIALECT as GEMINI
from services.api.dialects.openai.dialect import DIALECT as OPENAI
from services.api.errors import ErrorRenderer
from services.api.metrics import handler_key
from services.api.sse import FrameEncoder
from shared.jobs import StreamView

__all__ = [
    "DIALECTS",
    "FALLBACK",
    "body_for",
    "encoder_for",
    "error_renderers",
    "handler_dialects",
    "route_handlers",
    "tags",
]

DIALECTS: tuple[Dialect, ...] = (
    OPENAI,
    AI,
    CHAT,
    GEMINI,
)
#: draws the errors of paths no dialect claims (``/v1/streams``, ``/healthz``, an unknown path)
FALLBACK = OPENAI


def route_handlers() -> Iterator[BaseRouteHandler]:
    for dialect in DIALECTS:
        yield from dialect.routes


def handler_dialects() -> Iterator[tuple[str, str]]:
    """(``metrics.handler_key`` of a route handler, its dialect's name), for the metrics' ``dialect`` label."""
    for dialect in DIALECTS:
        for handler in dialect.routes:
            yield handler_key(handler), dialect.name


def tags() -> Iterator[tuple[str, str]]:
    """The dialects' OpenAPI tags, (name, description)."""
    for dialect in DIALECTS:
        yield from dialect.tags.items()


def error_renderers() -> list[tuple[str, ErrorRenderer]]:
    """(path prefix, renderer), longest prefix first."""
    pairs = [(prefix, dialect.render_error) for dialect in DIALECTS for prefix in dialect.paths]
    return sorted(pairs, key=lambda pair: len(pair[0]), reverse=True)


def encoder_for(view: StreamView) -> FrameEncoder | None:
    for dialect in DIALECTS:
        factory = dialect.encoders.get(view.dialect)
        if factory is not None:
            return factory(view)
    return None


def body_for(view: StreamView, answer: Answer) -> bytes | None:
    for dialect in DIALECTS:
        build = dialect.bodies.get(view.dialect)
        if build is not None:
            return build(view, answer)
    return None
