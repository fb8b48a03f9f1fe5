"""``/healthz`` (the process answers) and ``/readyz`` (Redis reachable, the reply channel subscribed, and at
least one worker alive)."""

import asyncio
from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import State

__all__ = ["ROUTES"]


@get("/healthz", summary="Liveness", tags=["health"], sync_to_thread=False, security=[])
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", summary="Readiness: Redis reachable and a worker alive", tags=["health"], security=[])
async def readyz(request: Request[Any, Any, State]) -> Response[dict[str, Any]]:
    state = request.app.state
    try:
        async with asyncio.timeout(2.0):
            await state.redis.ping()
            await state.directory.refresh()
    except Exception as exc:
        return Response(
            {"status": "unavailable", "reason": f"Redis is unreachable ({type(exc).__name__})"}, status_code=503
        )
    if not state.gateway.hub.ready:
        return Response({"status": "unavailable", "reason": "not subscribed to its reply channel yet"}, status_code=503)
    directory = state.directory
    if not directory.workers:
        return Response({"status": "unavailable", "reason": "no worker is alive"}, status_code=503)
    body = {"status": "ready", "workers": len(directory.workers), "providers": sorted(directory.providers)}
    return Response(body, status_code=200)


ROUTES = [healthz, readyz]
