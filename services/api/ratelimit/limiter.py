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

import asyncio
import contextlib
import hashlib
import importlib.resources
import math
from typing import NamedTuple, cast

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.connection import AbstractConnection

from services.api.tiers import Limits
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


class _GroupedCalls:
    """Group commit of one script's calls: those made while a round trip is in flight go out together in the
    next one (EVALSHA after EVALSHA in one write), so a burst of requests costs a few round trips, not one
    each. (The worker's ``RedisSink`` does the same with its flushes.)"""

    def __init__(self, redis: "aioredis.Redis", script: str) -> None:
        self._redis = redis
        self._script = script
        self._sha = hashlib.sha1(script.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1
        self._waiting: list[tuple[list[str], list[str | int], asyncio.Future[object]]] = []
        self._task: asyncio.Task[None] | None = None
        self._connection: AbstractConnection | None = None
        self._timeout = redis.connection_pool.connection_kwargs.get("socket_timeout") or 2.0

    async def __call__(self, keys: list[str], args: list[str | int]) -> object:
        done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._waiting.append((keys, args, done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="redis-script-calls")
        return await done

    async def _run(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                results = await self._execute(batch)
            except Exception as exc:  # Redis unreachable: every caller of the batch learns it
                for *_, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for (*_, done), result in zip(batch, results, strict=True):
                if done.done():
                    continue
                if isinstance(result, Exception):
                    done.set_exception(result)
                else:
                    done.set_result(result)

    async def _execute(self, batch: list[tuple[list[str], list[str | int], "asyncio.Future[object]"]]) -> list[object]:
        commands = [("EVALSHA", self._sha, len(keys_), *keys_, *args) for keys_, args, _ in batch]
        results = await self._round_trip(commands)
        if any(isinstance(result, redis.exceptions.NoScriptError) for result in results):
            await self._round_trip([("SCRIPT", "LOAD", self._script)])  # a new (or restarted) Redis
            results = await self._round_trip(commands)
        return results

    async def _round_trip(self, commands: list[tuple[str | int, ...]]) -> list[object]:
        """All ``commands`` in one write on a connection of this caller's own, then their replies (an error
        reply in its place): redis-py's pipeline objects cost more than the script's own work here."""
        connection = self._connection
        if connection is None:
            pool = self._redis.connection_pool
            options = {**pool.connection_kwargs, "socket_timeout": None}  # one deadline for the whole trip
            connection = self._connection = pool.connection_class(**options)
        try:
            async with asyncio.timeout(self._timeout):
                await connection.send_packed_command(connection.pack_commands(commands), check_health=False)
                return [await _reply(connection) for _ in commands]
        except BaseException:  # replies left unread would answer the next batch: start afresh
            self._connection = None
            with contextlib.suppress(Exception):
                await connection.disconnect()
            raise

    async def aclose(self) -> None:
        if self._connection is not None:
            await self._connection.disconnect()
            self._connection = None


async def _reply(connection: AbstractConnection) -> object:
    try:
        reply: object = await connection.read_response()
    except redis.exceptions.ResponseError as exc:
        return exc
    return reply


class RedisLimiter:
    def __init__(self, redis: "aioredis.Redis", lease_ttl: float) -> None:
        self._redis = redis
        self.lease_ttl_ms = max(1000, int(lease_ttl * 1000))
        self._admit = _GroupedCalls(redis, _SCRIPTS.joinpath("admission.lua").read_text())
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
