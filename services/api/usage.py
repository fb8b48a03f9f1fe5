"""``GET /v1/usage``: the caller's own usage per day, provider and model, from the worker's counters.

Each day is a Redis hash (``shared.keys.usage``) of ``<provider>/<model>|<counter>`` fields, counted by
the worker when each job ends (``services.worker.accounting``), with the real usage, or the partial one of
a cancelled job. ``conduit usage --user ID`` prints the same for any user.
"""

import time
from typing import Annotated, Any, cast

import redis.asyncio as aioredis
from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.params import Parameter

from services.api.auth.deps import provide_principal
from services.api.wire import encode_json
from shared import keys
from shared.errors import UnavailableError
from shared.jobs import Principal

__all__ = ["ROUTES", "read_usage"]


def _days(count: int, now: float) -> list[str]:
    return [time.strftime("%Y-%m-%d", time.gmtime(now - 86400 * back)) for back in range(count)]


async def read_usage(redis: "aioredis.Redis", user_id: str, days: int = 7) -> dict[str, Any]:
    """The usage of ``user_id`` over the last ``days`` UTC days (today first), per provider and model."""
    dates = _days(days, time.time())
    async with redis.pipeline(transaction=False) as pipe:
        for date in dates:
            pipe.hgetall(keys.usage(user_id, date))
        hashes = cast(list[dict[bytes, bytes]], await pipe.execute())
    out = []
    for date, fields in zip(dates, hashes, strict=True):
        models: dict[str, dict[str, Any]] = {}
        for field, value in fields.items():
            name, _, counter = field.decode().rpartition("|")
            provider, _, model = name.partition("/")
            entry = models.setdefault(
                name, {"provider": provider, "model": model, **dict.fromkeys(keys.USAGE_COUNTERS, 0)}
            )
            entry[counter] = int(value)
        rows = sorted(models.values(), key=lambda row: (row["provider"], row["model"]))
        totals = {counter: sum(row[counter] for row in rows) for counter in keys.USAGE_COUNTERS}
        out.append({"date": date, **totals, "models": rows})
    return {"object": "usage", "user": user_id, "days": out}


@get(
    "/v1/usage",
    dependencies={"principal": Provide(provide_principal)},
    summary="Your usage per day, provider and model (requests and tokens)",
    tags=["usage"],
)
async def usage(
    request: Request[Any, Any, State], principal: Principal, days: Annotated[int, Parameter(ge=1, le=90)] = 7
) -> Response[bytes]:
    try:
        body = await read_usage(request.app.state.redis, principal.user_id, days)
    except Exception as exc:
        raise UnavailableError("the gateway cannot reach Redis; try again shortly") from exc
    return Response(encode_json(body), media_type="application/json")


ROUTES = [usage]
