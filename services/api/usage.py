"""``GET /v1/usage``: the caller's own usage per day, provider and model, from the worker's counters.

Each day is a Redis hash (``shared.keys.usage``) of ``<provider>/<model>|<counter>`` fields, counted by
the worker when each job ends (``services.worker.accounting``), with the real usage, or the partial one of
a cancelled job. ``conduit usage --user ID`` prints the same for any user.
"""

import time
from typing import Annotated, Any, Literal, cast

import msgspec
import redis.asyncio as aioredis
from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from services.api.auth.deps import provide_principal
from services.api.dialects.openai.errors import render_error
from services.api.dialects.openai.responses import ErrorResponse
from services.api.openapi_doc import Reply, documented
from services.api.openapi_parts import ErrorCase, error_replies
from services.api.wire import encode_json
from shared import keys
from shared.errors import ErrorCode, UnavailableError
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


class ModelUsage(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One provider and model's usage on a day (documentation only: ``read_usage`` builds the body)."""

    provider: str
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int


class UsageDay(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A UTC day's totals, and per provider and model."""

    date: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", examples=["2026-12-03"])]
    requests: int
    prompt_tokens: int
    completion_tokens: int
    models: list[ModelUsage]


class UsageReport(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Your usage over the last ``days`` UTC days, today first (counted when each job ends)."""

    object: Literal["usage"]
    user: str
    days: list[UsageDay]


_EXAMPLE = {
    "object": "usage",
    "user": "alice",
    "days": [
        {
            "date": "2026-12-03",
            "requests": 3,
            "prompt_tokens": 41,
            "completion_tokens": 120,
            "models": [
                {
                    "provider": "anthropic",
                    "model": "claude-sonnet-4-5",
                    "requests": 1,
                    "prompt_tokens": 9,
                    "completion_tokens": 20,
                },
                {
                    "provider": "openai",
                    "model": "gpt-4o-mini",
                    "requests": 2,
                    "prompt_tokens": 32,
                    "completion_tokens": 100,
                },
            ],
        },
        {"date": "2026-12-02", "requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "models": []},
    ],
}
_BAD_DAYS = ErrorCase(
    "`days` is not a whole number from 1 to 90.",
    ErrorCode.INVALID_REQUEST,
    "Validation failed for GET /v1/usage?days=0",
)
_NO_REDIS = ErrorCase(
    "Redis is unreachable; try again shortly.",
    ErrorCode.UNAVAILABLE,
    "the gateway cannot reach Redis; try again shortly",
)
_REPLIES = {
    200: Reply("Your usage.", UsageReport, {"two days": _EXAMPLE}),
    **error_replies(render_error, ErrorResponse, (400, 401, 503), {400: _BAD_DAYS, 503: _NO_REDIS}),
}


@get(
    "/v1/usage",
    dependencies={"principal": Provide(provide_principal)},
    summary="Your usage per day, provider and model (requests and tokens)",
    tags=["usage"],
    operation_class=documented(replies=_REPLIES),
)
async def usage(
    request: Request[Any, Any, State],
    principal: NamedDependency[Principal],
    days: Annotated[int, QueryParameter(ge=1, le=90)] = 7,
) -> Response[bytes]:
    try:
        body = await read_usage(request.app.state.redis, principal.user_id, days)
    except Exception as exc:
        raise UnavailableError("the gateway cannot reach Redis; try again shortly") from exc
    return Response(encode_json(body), media_type="application/json")


ROUTES = [usage]
