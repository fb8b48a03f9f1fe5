"""``Dialect``: one public API shape, as the app, the error handlers and the resume endpoint see it.

Each ``services/api/dialects/<name>/`` package exposes one ``DIALECT``; ``dialects/registry.py`` lists them.
Adding a dialect is its own package plus one line there: its routes are mounted, its error renderer draws
every error under its path prefixes (auth, routing and provider errors alike), and a stream it started is
resumed (``GET /v1/streams/{job}``) with its own encoder and body builder, named in the job's ``StreamView``.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from litestar.handlers import BaseRouteHandler

from services.api.answer import Answer
from services.api.errors import ErrorRenderer
from services.api.sse import FrameEncoder
from shared.jobs import StreamView

__all__ = ["BodyBuilder", "Dialect", "EncoderFactory", "ResumeDoc"]

EncoderFactory = Callable[[StreamView], FrameEncoder]
BodyBuilder = Callable[[StreamView, Answer], bytes]


@dataclass(frozen=True, kw_only=True)
class ResumeDoc:
    """What the resume endpoint's documentation shows of a dialect's jobs: the Structs of its JSON bodies and of
    its stream frames' ``data``, and examples by name."""

    bodies: tuple[type, ...] = ()
    frames: tuple[type, ...] = ()
    body_examples: Mapping[str, Any] = field(default_factory=dict)
    stream_examples: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Dialect:
    name: str
    routes: Sequence[BaseRouteHandler]
    #: path prefixes whose errors this dialect draws (the longest matching prefix of any dialect wins; a ``*``
    #: stands for one path segment)
    paths: tuple[str, ...]
    render_error: ErrorRenderer
    #: the Struct documenting its error body (OpenAPI)
    error_schema: type
    #: stream encoders by the ``StreamView.dialect`` names this dialect gives its jobs
    encoders: Mapping[str, EncoderFactory]
    #: whole JSON bodies (a job requested without streaming) by the same names
    bodies: Mapping[str, BodyBuilder]
    resume_doc: ResumeDoc = field(default_factory=ResumeDoc)
    #: the OpenAPI tags its routes use: name -> description
    tags: Mapping[str, str] = field(default_factory=dict)
