"""Admission against a principal's limits, exact across every API replica: one Lua call per request.

``admission.lua`` checks requests/min (GCRA), tokens/min (a bucket: the prompt's estimate plus the
request's max_tokens is reserved; the worker settles it with the real usage when the job ends) and
concurrent streams (a lease per job, renewed by its relay while the job is queued and by its worker while
it runs, whoever is listening, released by the worker when the job ends or by the API's sweeper when the
worker dies, and running out by itself if nobody renews it), and charges all three only if all
pass. The calls made while one round trip is in flight go out together in the next (one pipeline). A
refusal is a 429 with ``Retry-After``; every answer carries OpenAI's ``x-ratelimit-*`` headers. If Redis
cannot be reached the request is refused with a 503, never admitted unlimited.
"""

import importlib.resources
import math
from typing import NamedTuple, cast

import redis.asyncio as aioredis

from services.api.metrics import count_refusal
from services.api.tiers import Limits
from services.redis_calls import ScriptCalls
from shared import keys
from shared.errors import ErrorCode, RateLimitedError, UnavailableError
from shared.jobs import Admission

__all__ = ["Admitted", "RedisLimiter", "duration", "ratelimit_headers"]

_SCRIPTS = importlib.resources.files("services.api.ratelimit")
_REFUSALS = {
    "requests": "requests per minute",
    "tokens": "tokens per minute",
    "streams": "concurrent streams",
}


class _Verdict(NamedTuple):
    admitted: bool
    refused: str
    retry_after_ms: int
    requests_remaining: int
    requests_reset_ms: int
    tokens_remaining: int
    tokens_reset_ms: int


class Admitted(NamedTuple):
    admission: Admission
    headers: dict[str, str]


def duration(ms: float) -> str:
    """A duration as OpenAI's rate-limit headers write it: ``20ms``, ``1s``, ``6m0s``, ``1h2m3.5s``."""
    if ms < 1000:  # noqa: PLR2004
        return f"{max(0, math.ceil(ms))}ms"
    seconds = ms / 1000
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"
    if minutes or hours:
        text = f"{int(minutes)}m{text}"
    if hours:
        text = f"{int(hours)}h{text}"
    return text


def ratelimit_headers(limits: Limits, verdict: _Verdict) -> dict[str, str]:
    headers: dict[str, str] = {}
    if limits.requests_per_minute:
        headers["x-ratelimit-limit-requests"] = str(limits.requests_per_minute)
        headers["x-ratelimit-remaining-requests"] = str(max(0, verdict.requests_remaining))
        headers["x-ratelimit-reset-requests"] = duration(verdict.requests_reset_ms)
    if limits.tokens_per_minute:
        headers["x-ratelimit-limit-tokens"] = str(limits.tokens_per_minute)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, verdict.tokens_remaining))
        headers["x-ratelimit-reset-tokens"] = duration(verdict.tokens_reset_ms)
    return headers


class RedisLimiter:
    def __init__(self, redis: "aioredis.Redis", lease_ttl: float) -> None:
        self._redis = redis
        self.lease_ttl_ms = max(1000, int(lease_ttl * 1000))
        self._admit = ScriptCalls(redis, _SCRIPTS.joinpath("admission.lua").read_text(), default_timeout=2.0)
        self._renew = redis.register_script(_SCRIPTS.joinpath("renew.lua").read_text())

    async def admit(self, subject: str, limits: Limits, job_id: str, cost: int) -> Admitted:
        """Admit a job of ``cost`` tokens, or raise 429 (``RateLimitedError``) / 503 (Redis unreachable)."""
        rpm, tpm = limits.requests_per_minute or 0, limits.tokens_per_minute or 0
        streams = limits.concurrent_streams or 0
        admission = Admission(subject=subject, reserved=cost if tpm else 0, tokens_per_minute=tpm, lease=streams > 0)
        if not (rpm or tpm or streams):
            return Admitted(admission, {})
        keys_ = [keys.rate_requests(subject), keys.rate_tokens(subject), keys.lease(subject)]
        try:
            raw = cast(list[object], await self._admit(keys_, [rpm, tpm, streams, cost, job_id, self.lease_ttl_ms]))
        except Exception as exc:
            raise UnavailableError("the gateway cannot reach Redis to check your limits; try again shortly") from exc
        admitted, refused, retry, *rest = raw
        verdict = _Verdict(
            bool(admitted),
            refused.decode() if isinstance(refused, bytes) else str(refused),
            int(cast(int, retry)),
            *(int(cast(int, value)) for value in rest),
        )
        headers = ratelimit_headers(limits, verdict)
        if not verdict.admitted:
            retry_after = max(1, math.ceil(verdict.retry_after_ms / 1000))
            count_refusal(verdict.refused if verdict.refused in _REFUSALS else "other")
            limit = _REFUSALS.get(verdict.refused, verdict.refused)
            raise RateLimitedError(
                f"Rate limit reached for {limit}; try again in {retry_after} s.",
                code=ErrorCode.RATE_LIMITED,
                retry_after=retry_after,
                headers=headers,
            )
        return Admitted(admission, headers)

    async def renew(self, admission: Admission, job_id: str) -> None:
        await self._renew(keys=[keys.lease(admission.subject)], args=[job_id, self.lease_ttl_ms])

    async def release(self, admission: Admission, job_id: str) -> None:
        await self._redis.zrem(keys.lease(admission.subject), job_id)
