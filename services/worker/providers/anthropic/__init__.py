"""Anthropic Messages API (``POST /v1/messages``): system on top, tool results in user turns, typed SSE events."""

from services.worker.providers.anthropic.errors import to_error
from services.worker.providers.anthropic.request import build_request
from services.worker.providers.anthropic.stream import iter_pieces

__all__ = ["AnthropicAdapter"]


class AnthropicAdapter:
    build_request = staticmethod(build_request)
    iter_pieces = staticmethod(iter_pieces)
    to_error = staticmethod(to_error)
