"""Gemini's own API passed through (the Gemini-native proxy endpoint): the client's ``generateContent`` body,
validated by the API, goes upstream byte for byte, and the upstream's answer comes back as it was sent:
``:generateContent`` for a whole answer (one ``NativePiece``, its JSON body), or
``:streamGenerateContent?alt=sse`` for a stream (one ``NativePiece`` per SSE frame's data).

The frames are still read, as the Gemini adapter reads them (``stream.py``), for what the gateway needs of
them: whether content went out (nothing is retried after it), the usage to count, the finish, and the errors
Gemini sends in-band. An answer larger than ``max_bytes`` ends the job with an error, not a worker's memory.
"""

from collections.abc import AsyncIterator

import httpx
import msgspec

from services.worker.providers._sse import iter_sse
from services.worker.providers.base import NativePiece, Piece, Target, UsagePiece
from services.worker.providers.gemini.errors import to_error
from services.worker.providers.gemini.stream import _DECODER, _Chunk, _error, _pieces, _State
from shared.errors import ErrorCode, UpstreamError
from shared.jobs import GenerationJob

__all__ = ["GeminiNativeAdapter"]

#: the largest answer passed through, stream or whole body
MAX_BYTES = 32 * 1024 * 1024


def _chars(chunk: _Chunk) -> int:
    return sum(len(part.text or "") for c in chunk.candidates if c.content for part in c.content.parts)


class GeminiNativeAdapter:
    to_error = staticmethod(to_error)

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self._max_bytes = max_bytes

    def build_request(self, client: httpx.AsyncClient, job: GenerationJob, target: Target) -> httpx.Request:
        upstream = job.upstream
        if upstream is None or not upstream.body:
            raise UpstreamError("a Gemini-native job carries its request body", code=ErrorCode.INTERNAL)
        task = "streamGenerateContent" if job.stream else "generateContent"
        url = f"{target.base_url}/{upstream.api_version}/models/{target.model}:{task}"
        return client.build_request(
            "POST",
            url,
            params={"alt": "sse"} if job.stream else None,
            headers={"x-goog-api-key": target.api_key, "content-type": "application/json"},
            content=upstream.body,
        )

    async def iter_pieces(self, response: httpx.Response, target: Target) -> AsyncIterator[Piece]:
        state, seen = _State(), 0
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            async for sse in iter_sse(response.aiter_bytes()):
                seen += len(sse.data)
                if seen > self._max_bytes:
                    raise UpstreamError(f"{target.provider} sent more than {self._max_bytes} bytes")
                chunk = self._chunk(sse.data, target)
                _pieces(chunk, state)
                yield NativePiece(sse.data, _chars(chunk))
        else:
            body = bytearray()
            async for data in response.aiter_bytes():
                body += data
                if len(body) > self._max_bytes:
                    raise UpstreamError(f"{target.provider} sent more than {self._max_bytes} bytes")
            chunk = self._chunk(bytes(body), target)
            _pieces(chunk, state)
            yield NativePiece(body.decode(), _chars(chunk))
        if state.finish is None and not state.blocked:
            raise UpstreamError(
                f"{target.provider} ended the answer without a finish reason (incomplete answer)",
                code=ErrorCode.UPSTREAM_INCOMPLETE,
                retryable=True,
            )
        if state.usage is not None:
            usage = state.usage
            yield UsagePiece(
                prompt_tokens=usage.prompt_token_count,
                completion_tokens=usage.candidates_token_count + usage.thoughts_token_count,
                cached_tokens=usage.cached_content_token_count,
                reasoning_tokens=usage.thoughts_token_count,
            )
        yield state.finish_piece()

    @staticmethod
    def _chunk(data: bytes | str, target: Target) -> _Chunk:
        try:
            chunk = _DECODER.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise UpstreamError(f"{target.provider} sent a malformed answer") from exc
        if chunk.error is not None:
            raise _error(chunk.error, target)
        return chunk
