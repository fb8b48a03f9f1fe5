"""One asyncio loop per worker process, in a daemon thread, shared by every job the pool runs.

Pool threads hand jobs to the loop and wait; the loop holds one httpx client (connection pool) and one
Redis pool for all of them, a subscriber on the cancel channel, and the worker's presence record.
"""

import asyncio
import logging
import os
import threading
import time
from collections.abc import Coroutine
from typing import Any

import httpx
import msgspec
import redis.asyncio as aioredis
import uvloop
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from services.worker.generate import PipelineContext, run_job
from services.worker.providers.registry import build_streamers
from services.worker.publisher import RedisSink
from services.worker.settings import WorkerSettings
from shared import keys
from shared.catalog import Catalog
from shared.jobs import GenerationJob

__all__ = ["WorkerRuntime", "get_runtime", "start_runtime", "stop_runtime"]

log = logging.getLogger("conduit.worker")

PRESENCE_TTL = 15.0


def _redis(url: str, *, pooled: bool) -> "aioredis.Redis":
    """Commands share a blocking pool (a flush waits for a connection instead of failing, as redis-py's
    default pool does past its size); the cancel subscriber has its own connection with no read timeout."""
    retry = Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), 5)
    if not pooled:
        return aioredis.Redis.from_url(url, retry=retry, socket_timeout=None, health_check_interval=15)
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=128, timeout=30.0, socket_timeout=10.0, socket_connect_timeout=3.0
    )
    return aioredis.Redis(connection_pool=pool, retry=retry)


class WorkerRuntime:
    def __init__(self, settings: WorkerSettings, catalog: Catalog) -> None:
        self.settings = settings
        self.catalog = catalog
        self.pid = os.getpid()
        self.loop = uvloop.new_event_loop()
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._thread = threading.Thread(target=self.loop.run_forever, name="conduit-loop", daemon=True)
        self._thread.start()
        self._call(self._start())

    def _call(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        settings = self.settings
        self.redis = _redis(settings.redis_url, pooled=True)
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=settings.connect_timeout, read=settings.read_timeout, write=30.0, pool=30.0),
            limits=httpx.Limits(
                max_connections=settings.max_upstream_connections, max_keepalive_connections=200, keepalive_expiry=30
            ),
            trust_env=False,
            follow_redirects=False,
        )
        self.context = PipelineContext(
            settings,
            self.catalog,
            self.client,
            RedisSink(self.redis, settings.log_ttl),
            build_streamers(settings.echo_delay),
            self._cancel_requested,
        )
        self._tasks = [
            asyncio.create_task(self._listen_for_cancels(), name="cancel-listener"),
            asyncio.create_task(self._announce(), name="presence"),
        ]

    # -- jobs -------------------------------------------------------------------------------------

    async def _cancel_requested(self, job_id: str) -> bool:
        return bool(await self.redis.exists(keys.job_cancel(job_id)))

    def run(self, job: GenerationJob) -> None:
        """Run ``job`` on the loop; block the calling pool thread until it has its terminal event."""
        self._call(self._run(job))

    async def _run(self, job: GenerationJob) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._running[job.id] = task
        try:
            await run_job(job, self.context)
        except Exception:
            log.exception("job %s could not publish its outcome", job.id)
        finally:
            self._running.pop(job.id, None)

    async def _listen_for_cancels(self) -> None:
        while True:
            pubsub = _redis(self.settings.redis_url, pooled=False).pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(keys.CANCEL_CHANNEL)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._cancel(message["data"].decode())
            except asyncio.CancelledError:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                raise
            except Exception as exc:
                log.warning("cancel listener lost Redis (%s); reconnecting", exc)
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                await asyncio.sleep(1.0)

    def _cancel(self, job_id: str) -> None:
        task = self._running.get(job_id)
        if task is not None:
            log.info("job %s cancelled by its client", job_id)
            task.cancel()

    async def _announce(self) -> None:
        name = self.settings.worker_name
        info = msgspec.json.encode(
            {"pid": self.pid, "providers": sorted(self.settings.credentials), "concurrency": self.settings.concurrency}
        )
        while True:
            try:
                now = time.time()
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.zadd(keys.WORKERS, {name: now})
                    pipe.zremrangebyscore(keys.WORKERS, 0, now - PRESENCE_TTL * 4)
                    pipe.set(keys.worker_info(name), info, ex=int(PRESENCE_TTL))
                    await pipe.execute()
            except Exception as exc:
                log.warning("could not announce worker presence: %s", exc)
            await asyncio.sleep(PRESENCE_TTL / 3)

    # -- shutdown ---------------------------------------------------------------------------------

    def stop(self, grace: float = 10.0) -> None:
        try:
            self._call(self._stop(), timeout=grace + 5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)

    async def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        name = self.settings.worker_name
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zrem(keys.WORKERS, name)
                pipe.delete(keys.worker_info(name))
                await pipe.execute()
        except Exception as exc:
            log.warning("could not withdraw worker presence: %s", exc)
        await self.client.aclose()
        await self.redis.aclose()


_runtime: WorkerRuntime | None = None
_lock = threading.Lock()


def start_runtime(settings: WorkerSettings, catalog: Catalog) -> WorkerRuntime:
    """The runtime of this process, started on first use (and again in a forked child)."""
    global _runtime  # noqa: PLW0603 - one runtime per process, by design
    with _lock:
        if _runtime is None or _runtime.pid != os.getpid():
            _runtime = WorkerRuntime(settings, catalog)
        return _runtime


def get_runtime() -> WorkerRuntime:
    if _runtime is None or _runtime.pid != os.getpid():
        raise RuntimeError("the worker runtime was not started (worker_init signal)")
    return _runtime


def stop_runtime() -> None:
    global _runtime  # noqa: PLW0603
    with _lock:
        if _runtime is not None and _runtime.pid == os.getpid():
            _runtime.stop()
        _runtime = None
