"""The simple AI dialect: ``/api/ai/chat`` and ``/api/ai/completions``."""

from services.api.dialect import Dialect, ResumeDoc
from services.api.dialects.ai import docs
from services.api.dialects.ai.errors import render_error
from services.api.dialects.ai.routes import ANSWER_FIELDS, CHAT, COMPLETION, ROUTES
from services.api.dialects.ai.sse import TokenEncoder
from services.api.dialects.ai.translate import answer_body

__all__ = ["DIALECT"]

DIALECT = Dialect(
    name="ai",
    routes=ROUTES,
    paths=("/api/ai/",),
    render_error=render_error,
    error_schema=docs.AiError,
    encoders={CHAT: TokenEncoder.for_view, COMPLETION: TokenEncoder.for_view},
    bodies={
        CHAT: lambda view, answer: answer_body(ANSWER_FIELDS[CHAT], view.model, answer),
        COMPLETION: lambda view, answer: answer_body(ANSWER_FIELDS[COMPLETION], view.model, answer),
    },
    tags={"ai": "The simple AI API (Pro and Enterprise tiers)."},
    resume_doc=ResumeDoc(
        bodies=(docs.AiChatResponse, docs.AiCompletionResponse), frames=(docs.AiToken, docs.AiStreamError)
    ),
)
