"""Google Gemini API (``:streamGenerateContent?alt=sse``): camelCase bodies, ``model`` role, whole function calls."""

from services.worker.providers.gemini.errors import to_error
from services.worker.providers.gemini.request import build_request
from services.worker.providers.gemini.stream import iter_pieces

__all__ = ["GeminiAdapter"]


class GeminiAdapter:
    build_request = staticmethod(build_request)
    iter_pieces = staticmethod(iter_pieces)
    to_error = staticmethod(to_error)
