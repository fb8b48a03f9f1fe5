"""Drive an HTTP adapter: send its request, map errors at the boundary, always close the response."""

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

import httpx

from services.worker.providers._status import transport_error
from services.worker.providers.base import Piece, ProviderAdapter, Target
from shared.jobs import GenerationJob

__all__ = ["drain", "stream_http"]

DRAIN_TIMEOUT = 0.5


async def stream_http(
    adapter: ProviderAdapter, client: httpx.AsyncClient, job: GenerationJob, target: Target
) -> AsyncGenerator[Piece, None]:
    """Pieces of one upstream call; closing the generator closes the upstream connection."""
    request = adapter.build_request(client, job, target)
    try:
        response = await client.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise transport_error(target.provider, exc) from exc
    try:
        if not response.is_success:  # a redirect too: never followed, it is the upstream's error
            body = await response.aread()
            raise adapter.to_error(response.status_code, body, response.headers, target)
        async for piece in adapter.iter_pieces(response, target):
            yield piece
    except httpx.HTTPError as exc:
        raise transport_error(target.provider, exc) from exc
    finally:
        await response.aclose()


async def drain(chunks: AsyncIterator[bytes], timeout: float = DRAIN_TIMEOUT) -> None:
    """Read what is left of a body after its last event, so the connection goes back to the pool.

    The end of the body (the terminating chunk) usually arrives with the last event; stopping short of
    it would close the connection, and the next call would pay for a new TCP (and TLS) handshake. An
    upstream that keeps the body open after its last event only costs ``timeout``, then the connection
    is closed as before; the answer is complete either way.
    """
    with contextlib.suppress(TimeoutError, httpx.HTTPError):
        async with asyncio.timeout(timeout):
            async for _ in chunks:
                pass
