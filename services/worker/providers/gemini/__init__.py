"""Google Gemini API (``:streamGenerateContent?alt=sse``): camelCase bodies, ``model`` role, whole function calls."""

import contextlib
from collections.abc import AsyncGenerator

import httpx

from services.worker.providers._http import stream_http
from services.worker.providers.base import Piece, Target, ToolCallPiece
from services.worker.providers.gemini.errors import to_error
from services.worker.providers.gemini.request import build_request
from services.worker.providers.gemini.stream import iter_pieces
from shared.jobs import GenerationJob

__all__ = ["GeminiAdapter", "stream_gemini"]


class GeminiAdapter:
    build_request = staticmethod(build_request)
    iter_pieces = staticmethod(iter_pieces)
    to_error = staticmethod(to_error)


_ADAPTER = GeminiAdapter()


def stream_gemini(client: httpx.AsyncClient, job: GenerationJob, target: Target) -> AsyncGenerator[Piece, None]:
    """Gemini's pieces; with ``parallel_tool_calls: false`` each answer's first function call only. Gemini has no
    such switch, and it sends each call whole, so the calls after the first are left out as they come."""
    pieces = stream_http(_ADAPTER, client, job, target)
    return _first_calls(pieces) if job.params.parallel_tool_calls is False else pieces


async def _first_calls(pieces: AsyncGenerator[Piece, None]) -> AsyncGenerator[Piece, None]:
    async with contextlib.aclosing(pieces):
        async for piece in pieces:
            if not (isinstance(piece, ToolCallPiece) and piece.index):
                yield piece
