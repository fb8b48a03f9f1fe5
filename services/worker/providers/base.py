"""The seam between the pipeline and one provider's wire format.

An adapter builds the upstream request (always streaming), parses the upstream stream into ``Piece``s,
and turns an upstream error response into a ``GatewayError``. It does no I/O of its own: the pipeline
sends the request, so adapters are tested with recorded bytes alone.
"""

from collections.abc import AsyncIterator
from typing import Any, Protocol

import httpx
import msgspec

from shared.catalog import ProviderSpec
from shared.errors import GatewayError
from shared.jobs import GenerationJob

__all__ = [
    "FinishPiece",
    "ModelPiece",
    "NativePiece",
    "SourcePiece",
    "Piece",
    "ProviderAdapter",
    "ReasoningPiece",
    "Target",
    "TextPiece",
    "ToolCallPiece",
    "UsagePiece",
]


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """Where one call goes: provider name, its catalog row, resolved base URL, key and upstream model."""

    provider: str
    spec: ProviderSpec
    base_url: str
    api_key: str
    model: str


class ModelPiece(msgspec.Struct, gc=False):
    """The model answering as the upstream names it, and its ``system_fingerprint`` (if it sends one); yielded
    when first seen, before the content it precedes."""

    model: str
    system_fingerprint: str = ""


class TextPiece(msgspec.Struct, gc=False):
    text: str
    #: the upstream's logprobs object for this text, as sent (OpenAI-compatible upstreams, when asked for)
    logprobs: dict[str, Any] | None = None
    #: which of the ``n`` answers (``choice`` of every piece of an answer: 0 for the one answer)
    choice: int = 0


class ReasoningPiece(msgspec.Struct, gc=False):
    text: str
    choice: int = 0


class ToolCallPiece(msgspec.Struct, gc=False):
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    choice: int = 0


class UsagePiece(msgspec.Struct, gc=False):
    """Token counts so far; a later UsagePiece replaces an earlier one (providers report cumulatively)."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0


class FinishPiece(msgspec.Struct, gc=False):
    """The upstream said it finished: ``reason`` in OpenAI's values, ``model`` as the upstream named it."""

    reason: str
    model: str = ""
    #: with ``n > 1``: each answer's reason, by index (``reason`` is the first's)
    reasons: list[str] = []


class SourcePiece(msgspec.Struct, gc=False):
    """A web source (``shared.events.Source``): cited for ``start``..``end`` of its answer's text (character
    offsets), or a search result (``start`` -1)."""

    url: str
    title: str = ""
    start: int = -1
    end: int = -1
    snippet: str = ""
    choice: int = 0


class NativePiece(msgspec.Struct, gc=False):
    """A piece of the answer in the upstream's own format, passed through (``shared.events.Native``), and how
    many characters of text it holds (for an estimated usage)."""

    data: str
    chars: int = 0


Piece = ModelPiece | TextPiece | ReasoningPiece | ToolCallPiece | SourcePiece | NativePiece | UsagePiece | FinishPiece


class ProviderAdapter(Protocol):
    def build_request(self, client: httpx.AsyncClient, job: GenerationJob, target: Target) -> httpx.Request:
        """The streaming upstream request for ``job`` (headers carry the key; never the URL)."""
        ...

    def iter_pieces(self, response: httpx.Response, target: Target) -> AsyncIterator[Piece]:
        """Parse a 2xx streaming response. Must end with a ``FinishPiece`` or raise ``GatewayError``
        (code ``upstream_incomplete`` when the stream ends without the provider's end marker)."""
        ...

    def to_error(self, status: int, body: bytes, headers: httpx.Headers, target: Target) -> GatewayError:
        """The error for a non-2xx upstream response, its message safe to show a client."""
        ...
