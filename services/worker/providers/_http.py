"""Drive an HTTP adapter: send its request, map errors at the boundary, always close the response."""

from collections.abc import AsyncGenerator

import httpx

from services.worker.providers._status import transport_error
from services.worker.providers.base import Piece, ProviderAdapter, Target
from shared.jobs import GenerationJob

__all__ = ["stream_http"]


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
        if response.status_code >= 400:  # noqa: PLR2004
            body = await response.aread()
            raise adapter.to_error(response.status_code, body, response.headers, target)
        async for piece in adapter.iter_pieces(response, target):
            yield piece
    except httpx.HTTPError as exc:
        raise transport_error(target.provider, exc) from exc
    finally:
        await response.aclose()
