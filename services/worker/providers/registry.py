"""Which code streams each kind of provider: an explicit dict, no discovery."""

import functools
from collections.abc import AsyncGenerator, Callable

import httpx

from services.worker.providers._http import stream_http
from services.worker.providers.anthropic import AnthropicAdapter
from services.worker.providers.base import Piece, Target
from services.worker.providers.echo import stream_echo
from services.worker.providers.gemini import stream_gemini
from services.worker.providers.gemini.native import GeminiNativeAdapter
from services.worker.providers.openai_compat import OpenAICompatAdapter
from shared.jobs import GenerationJob

__all__ = ["NATIVE", "Streamer", "build_streamers"]

#: the streamer of Gemini's own API passed through (the Gemini-native proxy endpoint's jobs)
NATIVE = "gemini_native"

Streamer = Callable[[httpx.AsyncClient, GenerationJob, Target], AsyncGenerator[Piece, None]]


def build_streamers(echo_delay: float) -> dict[str, Streamer]:
    """Provider kind (the catalog's ``kind``) -> streamer."""
    return {
        "openai_compat": functools.partial(stream_http, OpenAICompatAdapter()),
        "anthropic": functools.partial(stream_http, AnthropicAdapter()),
        "gemini": stream_gemini,
        "echo": functools.partial(stream_echo, delay=echo_delay),
        NATIVE: functools.partial(stream_http, GeminiNativeAdapter()),
    }
