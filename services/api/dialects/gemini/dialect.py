"""The Gemini dialect: Gemini's own API, served by the Gemini-native proxy endpoint."""

from services.api.dialect import Dialect, ResumeDoc
from services.api.dialects.gemini import docs
from services.api.dialects.gemini.errors import render_error
from services.api.dialects.gemini.routes import ROUTES
from services.api.dialects.gemini.sse import NATIVE, NativeEncoder

__all__ = ["DIALECT"]

DIALECT = Dialect(
    name="gemini",
    routes=ROUTES,
    paths=("/api/v1/proxy/*/*/models/",),
    render_error=render_error,
    error_schema=docs.GeminiError,
    encoders={NATIVE: NativeEncoder.for_view},
    bodies={NATIVE: lambda view, answer: answer.native[0].encode() if answer.native else b"{}"},
    resume_doc=ResumeDoc(
        bodies=(docs.GenerateContentResponse,), frames=(docs.GenerateContentResponse, docs.GeminiError)
    ),
)
