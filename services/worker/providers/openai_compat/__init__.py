"""OpenAI Chat Completions and every server that speaks it (vLLM, Groq, Together, ... via catalog rows)."""

from services.worker.providers.openai_compat.errors import to_error
from services.worker.providers.openai_compat.request import build_request
from services.worker.providers.openai_compat.stream import iter_pieces

__all__ = ["OpenAICompatAdapter"]


class OpenAICompatAdapter:
    build_request = staticmethod(build_request)
    iter_pieces = staticmethod(iter_pieces)
    to_error = staticmethod(to_error)
