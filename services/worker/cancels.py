"""Redis clients of a worker process, and the cancel listener: it hears every job id the API announces as
cancelled (its client left) and cancels that job's task if this process runs it, or remembers it for a job
still queued here."""

import asyncio
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from shared import keys
from shared.jobs import GenerationJob

__all__ = ["CancelListener", "redis_client"]

log = logging.getLogger("conduit.worker")

CANCEL_MEMORY = 600.0  # seconds a heard cancel is remembered (the API's cancel flag lives as long)


def redis_client(url: str, *, pooled: bool) -> "aioredis.Redis":
    """Commands share a blocking pool (a flush waits for a connection instead of failing, as redis-py's
    default pool does past its size); the cancel subscriber has its own connection with no read timeout."""
    retry = Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), 5)
    if not pooled:
        return aioredis.Redis.from_url(url, retry=retry, socket_timeout=None, health_check_interval=15)
    # the retry must be the pool's: pooled connections retry with their own, not the client's (a connection left
    # from before a Redis restart failed its first command, and that job ended `internal`)
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=128, timeout=30.0, socket_timeout=10.0, socket_connect_timeout=3.0, retry=retry
    )
    return aioredis.Redis(connection_pool=pool, retry=retry)


class CancelListener:
    def __init__(self, url: str, redis: "aioredis.Redis", running: dict[str, "asyncio.Task[Any]"]) -> None:
        self._url = url
        self._redis = redis
        self._running = running
        self._cancelled: dict[str, float] = {}  # job id -> when its cancel was heard (monotonic)
        self._listening_since = 0.0  # unix time from which the listener has heard every cancel

    async def requested(self, job: GenerationJob) -> bool:
        """Whether ``job``'s client left while it was queued. The cancel listener hears every cancel, so a
        job created while it was listening needs no Redis round trip; otherwise the job's cancel flag says."""
        if job.id in self._cancelled:
            return True
        if self._listening_since and job.created > self._listening_since:
            return False
        return bool(await self._redis.exists(keys.job_cancel(job.id)))

    async def listen(self) -> None:
        while True:
            pubsub = redis_client(self._url, pooled=False).pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(keys.CANCEL_CHANNEL)
                self._listening_since = time.time() + 1.0  # margin for clock skew between API and worker
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self.cancel(message["data"].decode())
            except asyncio.CancelledError:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                raise
            except Exception as exc:
                self._listening_since = 0.0
                log.warning("cancel listener lost Redis (%s); reconnecting", exc)
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                await asyncio.sleep(1.0)

    def cancel(self, job_id: str) -> None:
        now = time.monotonic()
        self._cancelled[job_id] = now
        while self._cancelled:  # forget cancels older than any job could wait in the queue
            oldest, at = next(iter(self._cancelled.items()))
            if now - at < CANCEL_MEMORY:
                break
            del self._cancelled[oldest]
        task = self._running.get(job_id)
        if task is not None:
            log.info("job %s cancelled by its client", job_id)
            task.cancel()
