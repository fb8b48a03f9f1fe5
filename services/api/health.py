"""``/healthz`` (the process answers) and ``/readyz`` (Redis reachable, the reply channel subscribed, and at
least one worker alive)."""

import asyncio
from typing import Any, Literal

import msgspec
from litestar import Request, Response, get
from litestar.datastructures import State

from services.api.errors import RETRY_UNAVAILABLE
from services.api.openapi_doc import Reply, documented

__all__ = ["ROUTES"]

#: not ready is a 503, and every 503 says when to ask again
_RETRY = {"retry-after": str(RETRY_UNAVAILABLE)}


class Alive(msgspec.Struct, forbid_unknown_fields=True):
    """The process answers (documentation only, as the other Structs here)."""

    status: Literal["ok"]


class Ready(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Redis answers, the reply channel is subscribed, and at least one worker is alive."""

    status: Literal["ready"]
    workers: int
    providers: list[str]


class NotReady(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    status: Literal["unavailable"]
    reason: str


_ALIVE = documented(replies={200: Reply("Alive.", Alive, {"alive": {"status": "ok"}})}, public=True)
_READY = documented(
    replies={
        200: Reply(
            "Ready to serve.",
            Ready,
            {"ready": {"status": "ready", "workers": 2, "providers": ["anthropic", "echo", "openai"]}},
        ),
        503: Reply(
            "Not ready: Redis is unreachable, the reply channel is not subscribed yet, or no worker is alive.",
            NotReady,
            {"no worker": {"status": "unavailable", "reason": "no worker is alive"}},
        ),
    },
    public=True,
)


@get("/healthz", summary="Liveness", tags=["health"], sync_to_thread=False, operation_class=_ALIVE)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", summary="Readiness: Redis reachable and a worker alive", tags=["health"], operation_class=_READY)
async def readyz(request: Request[Any, Any, State]) -> Response[dict[str, Any]]:
    state = request.app.state
    try:
        async with asyncio.timeout(2.0):
            await state.redis.ping()
            await state.directory.refresh()
    except Exception as exc:
        return Response(
            {"status": "unavailable", "reason": f"Redis is unreachable ({type(exc).__name__})"},
            status_code=503,
            headers=_RETRY,
        )
    if not state.gateway.hub.ready:
        return Response(
            {"status": "unavailable", "reason": "not subscribed to its reply channel yet"},
            status_code=503,
            headers=_RETRY,
        )
    directory = state.directory
    if not directory.workers:
        return Response({"status": "unavailable", "reason": "no worker is alive"}, status_code=503, headers=_RETRY)
    body = {"status": "ready", "workers": len(directory.workers), "providers": sorted(directory.providers)}
    return Response(body, status_code=200)


ROUTES = [healthz, readyz]
